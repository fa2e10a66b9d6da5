"""Downloads: the files of a result (the chosen candidate's model, the report, a deployable package) as bytes.

The model comes through the assistant's one download method (:meth:`assistant.agent.Assistant.download`): inline
when it is small, over the server's download route when it is not. The deployable package is built here with
:func:`optimizer.package.package_candidate` from the downloaded model (there is no packaging tool on the server yet).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optimizer.search.pareto import ParetoReport
from ui.chat import exception_text
from ui.results import JobView

if TYPE_CHECKING:
    from assistant.agent import Assistant

__all__ = ["DownloadSet", "build_downloads", "package_zip"]


@dataclass
class DownloadSet:
    """The files of one result: the chosen candidate's model, the report, and a deployable package (zip)."""

    candidate_id: str | None
    recommended: bool
    model_name: str = ""
    model_bytes: bytes | None = None
    report_bytes: bytes = b""
    package_name: str = ""
    package_bytes: bytes | None = None
    problems: list[str] = field(default_factory=list)


def _zip_folder(folder: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"{top}/{p.relative_to(folder)}")
    return buf.getvalue()


def package_zip(report: ParetoReport, candidate_id: str, model_bytes: bytes) -> bytes:
    """The deployable package of one candidate (model, runnable example, contract, metrics, recipe, README)
    as a zip. Raises the optimizer's errors (NotFoundError, InputError) and OSError.
    """
    from optimizer.package import package_candidate

    tmp = Path(tempfile.mkdtemp(prefix="quanttaas-package-"))
    try:
        (tmp / "candidates").mkdir()
        (tmp / "candidates" / f"{candidate_id}.onnx").write_bytes(model_bytes)
        # the report names the server's paths; keep only the file downloaded here
        local = report.model_copy(
            update={
                "candidates": [
                    c.model_copy(update={"model_path": None}) if c.id == candidate_id else c
                    for c in report.candidates
                ]
            }
        )
        (tmp / "report.json").write_text(local.model_dump_json(indent=2))
        out = tmp / "package"
        package_candidate(tmp / "report.json", candidate_id, out)
        return _zip_folder(out, f"{candidate_id}-package")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_downloads(assistant: Assistant, job: JobView | None, report: ParetoReport) -> DownloadSet:
    """The files of a result: the recommended candidate (or, when nothing meets the goal, the nearest one).

    Failures become readable ``problems``; raises nothing.
    """
    cid = report.recommended or (report.nearest[0].candidate_id if report.nearest else None)
    files = DownloadSet(candidate_id=cid, recommended=report.recommended is not None)
    files.report_bytes = report.model_dump_json(indent=2).encode()
    if cid is None:
        files.problems.append("no candidate was measured successfully, so there is no model to download")
        return files
    artifact = None
    if job is not None:
        artifact = job.candidate_artifacts.get(cid)
        if artifact is None and job.best_artifact and job.report().recommended == cid:
            artifact = job.best_artifact
    if artifact is None:
        files.problems.append(f"the server kept no model file for {cid}")
        return files
    try:  # inline when small, over the server's download route when not: one method for every size
        data = assistant.download(artifact)
    except Exception as e:  # DownloadError, or a failed session: say it, do not crash the page
        files.problems.append(f"could not download {artifact}: {exception_text(e)}")
        return files
    files.model_bytes = data
    files.model_name = f"{cid}.onnx"
    try:
        files.package_bytes = package_zip(report, cid, data)
        files.package_name = f"{cid}-package.zip"
    except Exception as e:  # packaging is a convenience: the model and the report are still offered
        files.problems.append(f"could not build the deployable package: {exception_text(e)}")
    return files
