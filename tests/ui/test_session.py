"""The page's logic without Streamlit: errors in words, uploads, reports out of answers, the brain, downloads."""

from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from test_charts import CANDIDATES, make_report

from assistant.events import Reply, ToolRecord
from optimizer.errors import NotFoundError
from ui.session import (
    JobView,
    absorb_reply,
    build_downloads,
    error_text,
    exception_text,
    mentions_model,
    package_zip,
    register_upload,
    safe_filename,
    save_upload,
    use_llm,
)

JOB = "0123456789abcdef"


def record(name: str, result: dict[str, Any] | None, *, ok: bool = True) -> ToolRecord:
    return ToolRecord(call_id=f"c-{name}", name=name, ok=ok, result=result)


def reply(*records: ToolRecord) -> Reply:
    return Reply(text="answer", outcome="met", brain="offline-planner", tool_calls=list(records))


def report_record(**report_kw: Any) -> ToolRecord:
    report = make_report(**report_kw)
    return record(
        "get_pareto_report",
        {
            "job_id": JOB,
            "state": "succeeded",
            "report": report.model_dump(mode="json"),
            "best_artifact": f"{JOB}/best.onnx",
            "chart_artifact": None,
            "candidate_artifacts": {c.id: f"{JOB}/candidates/{c.id}.onnx" for c in report.candidates if c.ok},
        },
    )


# --------------------------------------------------------------------------- errors and names


def test_error_text_shows_the_message_code_and_hint() -> None:
    text = error_text({"code": "model_invalid", "message": "not an ONNX model", "hint": "export it again"})
    assert text == "not an ONNX model (`model_invalid`)\n\nHint: export it again"


def test_error_text_falls_back_when_there_is_no_error_envelope() -> None:
    assert error_text(None, "the tool failed") == "the tool failed"


def test_exception_text_reads_the_projects_errors_without_their_repr() -> None:
    text = exception_text(NotFoundError("no model 'x'", hint="list_models shows them"))
    assert text.startswith("no model 'x' (`not_found`)") and "Hint: list_models shows them" in text
    assert exception_text(ValueError("bad\nvalue")) == "ValueError: bad value"


def test_safe_filename_keeps_the_extension_and_drops_paths_and_odd_characters() -> None:
    assert safe_filename("../../etc/my model (v2).ONNX") == "my-model-v2.onnx"
    assert safe_filename("...npz") == "upload.npz"
    assert safe_filename("ok_name-1.pt2") == "ok_name-1.pt2"


def test_save_upload_writes_into_a_private_folder(tmp_path: Path) -> None:
    path = save_upload(tmp_path / "uploads", "a b.npz", b"data")
    assert path == tmp_path / "uploads" / "a-b.npz" and path.read_bytes() == b"data"
    assert (path.parent.stat().st_mode & 0o077) == 0


def test_mentions_model_matches_whole_names_only() -> None:
    assert mentions_model("make Digits-CNN smaller", ["digits-cnn"])
    assert not mentions_model("make digits-cnn2 smaller", ["digits-cnn"])
    assert not mentions_model("make it smaller", ["digits-cnn", ""])


# --------------------------------------------------------------------------- reports out of answers


def test_absorb_reply_keeps_the_report_its_job_and_the_sensitivity_ranking() -> None:
    jobs: dict[str, JobView] = {}
    job_id, report, _ = absorb_reply(reply(report_record()), jobs)
    assert job_id == JOB and report is not None
    assert report.recommended == make_report().recommended
    assert jobs[JOB].best_artifact == f"{JOB}/best.onnx"
    assert set(jobs[JOB].candidate_artifacts) == {c.id for c in CANDIDATES if c.ok}


def test_absorb_reply_reranks_a_known_report_for_a_recommend_result() -> None:
    jobs: dict[str, JobView] = {}
    absorb_reply(reply(report_record()), jobs)
    recommendation = {
        "recommended": "b",
        "reason": "b is the best balance",
        "feasible": ["b"],
        "nearest": [],
    }
    goal = {"objective": "accuracy", "max_accuracy_drop_pct": 2.0}
    rerank = record("recommend", {"job_id": JOB, "goal": goal, "recommendation": recommendation})
    job_id, report, _ = absorb_reply(reply(rerank), jobs)
    assert job_id == JOB and report is not None
    assert report.recommended == "b" and report.reason == "b is the best balance"
    assert report.goal is not None and report.goal.max_accuracy_drop_pct == 2.0
    assert [c.id for c in report.candidates] == [c.id for c in CANDIDATES]  # nothing measured again


def test_absorb_reply_ignores_failed_and_unknown_results() -> None:
    jobs: dict[str, JobView] = {}
    failed = record("get_pareto_report", None, ok=False)
    orphan = record("recommend", {"job_id": "f" * 16, "goal": {}, "recommendation": {}})
    assert absorb_reply(reply(failed, orphan), jobs) == (None, None, None)
    assert jobs == {}


# --------------------------------------------------------------------------- the brain


def fake_assistant(**settings: Any) -> Any:
    from assistant.planner import OfflinePlanner
    from assistant.settings import AssistantSettings

    planner = OfflinePlanner()
    inner = SimpleNamespace(
        settings=AssistantSettings(llm="offline", **settings),
        planner=planner,
        brain=planner,
        tools=SimpleNamespace(transport="in-process"),
    )
    return SimpleNamespace(inner=inner)


def test_use_llm_gives_the_key_to_the_brain_only() -> None:
    a = fake_assistant()
    before = dict(os.environ)
    name = use_llm(a, "anthropic/claude-3-5-haiku-latest", "key-123", "http://127.0.0.1:9/v1")
    assert name == "anthropic/claude-3-5-haiku-latest"
    assert a.inner.brain.api_key == "key-123" and a.inner.brain.api_base == "http://127.0.0.1:9/v1"
    assert dict(os.environ) == before


def test_use_llm_returns_to_the_offline_planner_for_an_empty_model() -> None:
    a = fake_assistant()
    use_llm(a, "openai/gpt-4o-mini", "k")
    assert use_llm(a, "  ") == "offline-planner" and a.inner.brain is a.inner.planner


# --------------------------------------------------------------------------- uploads to a remote server


def test_register_upload_sends_the_file_inline_to_a_remote_server(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    a = fake_assistant()
    a.inner.tools.transport = "http http://127.0.0.1:8000/mcp/"
    a.call_tool = lambda name, args, cid: calls.append((name, args)) or record(name, {"data": {"id": "d"}})
    path = save_upload(tmp_path, "eval.npz", b"\x00" * 10)
    assert register_upload(a, path, "data").ok
    name, args = calls[0]
    assert name == "register_data" and args["filename"] == "eval.npz"
    assert base64.b64decode(args["content_base64"]) == b"\x00" * 10 and "path" not in args


# --------------------------------------------------------------------------- downloads


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

    def call_tool(name: str, args: dict[str, Any], cid: str) -> ToolRecord:
        asked.append(args["artifact_id"])
        return record(name, {"content_base64": base64.b64encode(model).decode(), "download_path": "/x"})

    a = fake_assistant()
    a.call_tool = call_tool
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
    a.call_tool = lambda name, args, cid: record(name, {"content_base64": base64.b64encode(model).decode()})
    jobs: dict[str, JobView] = {}
    impossible = Goal(max_size_mb=0.001, max_accuracy_drop_pct=0.01, objective="size", text="tiny")
    _, report, _ = absorb_reply(reply(report_record(goal=impossible)), jobs)
    assert report is not None and report.recommended is None and report.nearest
    files = build_downloads(a, jobs[JOB], report)
    assert files.recommended is False
    assert files.candidate_id == report.nearest[0].candidate_id and files.model_bytes == model
