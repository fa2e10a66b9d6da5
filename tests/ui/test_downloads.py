"""Downloads: the chosen candidate's model through the assistant's one download method, the report, a package."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from sessionkit import JOB, fake_assistant, reply, report_record
from test_charts import make_report

from ui.downloads import build_downloads, package_zip
from ui.results import JobView, absorb_reply


def test_package_zip_holds_a_runnable_package_of_the_candidate(zoo_dir: Path) -> None:
    model = (zoo_dir / "digits-cnn" / "model.onnx").read_bytes()
    data = package_zip(make_report(), "a", model)
    z = zipfile.ZipFile(io.BytesIO(data))
    names = set(z.namelist())
    assert {
        "a-package/model.onnx",
        "a-package/run.py",
        "a-package/README.md",
        "a-package/recipe.json",
    } <= names
    assert z.read("a-package/model.onnx") == model


def test_build_downloads_fetches_the_recommended_model_and_says_what_failed(zoo_dir: Path) -> None:
    model = (zoo_dir / "digits-cnn" / "model.onnx").read_bytes()
    asked: list[str] = []

    def download(artifact_id: str) -> bytes:
        asked.append(artifact_id)
        return model

    a = fake_assistant()
    a.download = download
    jobs: dict[str, JobView] = {}
    _, report, _ = absorb_reply(reply(report_record()), jobs)
    assert report is not None and report.recommended == "a"
    files = build_downloads(a, jobs[JOB], report)
    assert asked == [f"{JOB}/candidates/a.onnx"]
    assert files.recommended and files.model_bytes == model and files.model_name == "a.onnx"
    assert files.package_bytes and files.package_name == "a-package.zip" and not files.problems
    assert b'"recommended": "a"' in files.report_bytes

    jobs[JOB].candidate_artifacts.clear()
    jobs[JOB].best_artifact = None
    missing = build_downloads(a, jobs[JOB], report)
    assert missing.model_bytes is None and missing.problems == ["the server kept no model file for a"]


def test_build_downloads_offers_the_nearest_candidate_when_nothing_meets_the_goal(zoo_dir: Path) -> None:
    from optimizer.types import Goal

    model = (zoo_dir / "digits-cnn" / "model.onnx").read_bytes()
    a = fake_assistant()
    a.download = lambda artifact_id: model
    jobs: dict[str, JobView] = {}
    impossible = Goal(max_size_mb=0.001, max_accuracy_drop_pct=0.01, objective="size", text="tiny")
    _, report, _ = absorb_reply(reply(report_record(goal=impossible)), jobs)
    assert report is not None and report.recommended is None and report.nearest
    files = build_downloads(a, jobs[JOB], report)
    assert files.recommended is False
    assert files.candidate_id == report.nearest[0].candidate_id and files.model_bytes == model


def test_build_downloads_says_why_a_model_could_not_be_downloaded(zoo_dir: Path) -> None:
    from assistant.connection import DownloadError

    def download(artifact_id: str) -> bytes:
        raise DownloadError("payload_too_large", f"{artifact_id} is too large", "connect over HTTP")

    a = fake_assistant()
    a.download = download
    jobs: dict[str, JobView] = {}
    _, report, _ = absorb_reply(reply(report_record()), jobs)
    assert report is not None
    files = build_downloads(a, jobs[JOB], report)
    assert files.model_bytes is None and files.package_bytes is None and len(files.problems) == 1
    assert (
        f"{JOB}/candidates/a.onnx is too large" in files.problems[0]
        and "connect over HTTP" in files.problems[0]
    )
    assert files.report_bytes  # the report is still offered
