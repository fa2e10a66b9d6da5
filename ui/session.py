"""What the chat page does, without Streamlit: one conversation's state and the work behind each widget.

The page (:mod:`ui.app`) is a thin script over this module. Everything here is plain Python so that it can be
tested without a browser:

- :class:`ChatTurn` / :class:`Step`: the chat history as data (what the user asked, each tool call as a step,
  the answer, the report it produced), so the page can draw it again on every rerun;
- :func:`make_assistant`, :func:`use_llm`: the assistant of a browser session and the brain answering it (an LLM
  key given in the sidebar lives only in the brain object of that session: never in the environment, never on
  disk);
- :func:`save_upload`, :func:`register_upload`: an uploaded model or data file is written to a private temporary
  folder and stored on the server through the ``register_model``/``register_data`` tools;
- :func:`absorb_reply`: the Pareto report (and the sensitivity ranking) of an answer, from its tool results;
- :func:`build_downloads`: the recommended model, the report and a deployable package, as bytes.

The UI talks to the tools only through the assistant's MCP client; the one exception is the deployable package,
built here with :func:`optimizer.package.package_candidate` from the files downloaded through ``get_artifact``
(there is no packaging tool on the server yet).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import io
import re
import shutil
import tempfile
import threading
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from optimizer.search.pareto import ParetoReport
from optimizer.types import SensitivityReport

if TYPE_CHECKING:
    from assistant.agent import Assistant
    from assistant.events import Reply, ToolRecord

__all__ = [
    "DATA_TYPES",
    "MODEL_TYPES",
    "ChatTurn",
    "DownloadSet",
    "JobView",
    "Selection",
    "Step",
    "absorb_reply",
    "build_downloads",
    "close_all_assistants",
    "error_text",
    "exception_text",
    "inspection_markdown",
    "inspection_rows",
    "make_assistant",
    "mentions_model",
    "package_zip",
    "register_upload",
    "save_upload",
    "step_title",
    "transport_of",
    "use_llm",
]

MODEL_TYPES = ("onnx", "pt2")
DATA_TYPES = ("npz",)
_INLINE_UPLOAD_LIMIT = 12_000_000  # register_* take at most 12 MB inline (base64); bigger files need a path

_TITLES = {
    "list_zoo": "Looked at the model zoo",
    "list_models": "Listed the stored models",
    "list_data": "Listed the data files",
    "register_model": "Stored the model",
    "register_data": "Stored the data",
    "inspect_model": "Inspected the model",
    "parse_goal": "Read the goal",
    "profile_layers": "Ranked the layers by sensitivity",
    "run_sweep": "Ran the compression sweep",
    "get_job": "Checked the sweep",
    "get_pareto_report": "Read the Pareto report",
    "recommend": "Re-ranked the measured candidates",
    "get_artifact": "Located a result file",
    "cancel_job": "Cancelled the sweep",
    "list_jobs": "Listed the jobs",
}
_RUNNING = {
    "run_sweep": "Running the compression sweep",
    "profile_layers": "Ranking the layers by sensitivity",
    "inspect_model": "Inspecting the model",
    "register_model": "Storing the model",
}


# --------------------------------------------------------------------------- the history as data


@dataclass
class Step:
    """One tool call as the chat shows it: a collapsible step."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    summary: str
    error: dict[str, Any] | None = None
    seconds: float = 0.0

    @classmethod
    def from_record(cls, record: ToolRecord, seconds: float | None = None) -> Step:
        """The step of a tool record; ``seconds`` overrides the call's own time (a sweep's call returns at once,
        the wait for its job comes after)."""
        summary = record.text
        if record.name == "run_sweep" and record.ok and record.job:
            job = record.job
            progress = job.get("progress") or {}
            summary = (
                f"Sweep {job.get('job_id', '')} {job.get('state', '')}: "
                f"{job.get('trials_finished', 0)} trial(s) finished. {progress.get('message', '')}".strip()
            )
        args = {k: v for k, v in record.arguments.items() if k != "content_base64"}
        return cls(
            name=record.name,
            arguments=args,
            ok=record.ok,
            summary=summary,
            error=record.error,
            seconds=record.seconds if seconds is None else seconds,
        )


def step_title(name: str, *, running: bool = False, ok: bool = True, seconds: float | None = None) -> str:
    """The label of a step: what the tool did in words, and how long it took."""
    if running:
        return _RUNNING.get(name, _TITLES.get(name, name)) + " …"
    title = _TITLES.get(name, name)
    if not ok:
        title = f"{title}: failed"
    return title + (f" ({seconds:.1f} s)" if seconds is not None else "")


@dataclass
class ChatTurn:
    """One message of the chat. ``kind``: a normal message, an error, or the summary of an uploaded model."""

    role: Literal["user", "assistant"]
    text: str
    kind: Literal["text", "error", "info"] = "text"
    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    brain: str | None = None
    outcome: str | None = None
    job_id: str | None = None
    report_json: str | None = None
    sensitivity_json: str | None = None
    seconds: float = 0.0

    def report(self) -> ParetoReport | None:
        return ParetoReport.model_validate_json(self.report_json) if self.report_json else None

    def sensitivity(self) -> SensitivityReport | None:
        return SensitivityReport.model_validate_json(self.sensitivity_json) if self.sensitivity_json else None


def error_text(error: dict[str, Any] | None, fallback: str = "something went wrong") -> str:
    """An error envelope ``{code, message, hint}`` as one readable paragraph (never a traceback)."""
    if not error:
        return fallback
    message = str(error.get("message") or fallback).strip()
    code = str(error.get("code") or "").strip()
    hint = str(error.get("hint") or "").strip()
    text = message + (f" (`{code}`)" if code else "")
    return text + (f"\n\nHint: {hint}" if hint else "")


def exception_text(e: BaseException) -> str:
    """A raised error in words: the project's errors carry a code, a message and a hint."""
    code = getattr(e, "code", None)
    if isinstance(code, str) and code:
        message = getattr(e, "message", None) or str(e)
        return error_text({"code": code, "message": str(message), "hint": getattr(e, "hint", "") or ""})
    detail = " ".join(str(e).split())[:300]
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


# --------------------------------------------------------------------------- reports out of answers


@dataclass
class JobView:
    """A finished sweep as the page knows it: its report (as the server wrote it) and its artifact ids."""

    job_id: str
    report_json: str
    best_artifact: str | None = None
    candidate_artifacts: dict[str, str] = field(default_factory=dict)
    sensitivity_json: str | None = None

    def report(self) -> ParetoReport:
        return ParetoReport.model_validate_json(self.report_json)


def _rerank(report: ParetoReport, result: dict[str, Any]) -> ParetoReport:
    """The report with the goal, recommendation and misses of a ``recommend`` result (nothing was measured
    again; the misses are the server's goal check for the new goal)."""
    from optimizer.search.pareto import ConstraintMiss, Recommendation
    from optimizer.types import Goal

    rec = Recommendation.model_validate(result["recommendation"])
    misses = {
        str(cid): [ConstraintMiss.model_validate(m) for m in found]
        for cid, found in (result.get("misses") or {}).items()
    }
    return report.model_copy(
        update={
            "goal": Goal.model_validate(result["goal"]),
            "recommended": rec.recommended,
            "reason": rec.reason,
            "nearest": rec.nearest,
            "misses": misses,
        }
    )


def absorb_reply(
    reply: Reply, jobs: dict[str, JobView]
) -> tuple[str | None, ParetoReport | None, SensitivityReport | None]:
    """The job, report and sensitivity ranking an answer produced (``None`` each when it produced none).

    A ``get_pareto_report`` result adds (or replaces) its job in ``jobs``; a ``recommend`` result re-ranks the
    report of a known job for the new goal. Results that do not parse are skipped (the answer's text still says
    what happened). Raises nothing.
    """
    from assistant.toollog import ToolLog

    log = ToolLog(reply.tool_calls)
    job_id: str | None = None
    report: ParetoReport | None = None
    sens: SensitivityReport | None = None
    profile = log.latest("profile_layers")
    if profile is not None:
        with contextlib.suppress(ValueError):
            sens = SensitivityReport.model_validate(profile.result)
    for record in log.verdicts():  # reports and re-rankings, oldest first: the last one stands
        result = record.result or {}
        try:
            if record.name == "get_pareto_report":
                report = ParetoReport.model_validate(result["report"])
                job_id = str(result["job_id"])
                jobs[job_id] = JobView(
                    job_id=job_id,
                    report_json=report.model_dump_json(),
                    best_artifact=result.get("best_artifact"),
                    candidate_artifacts=dict(result.get("candidate_artifacts") or {}),
                )
            elif str(result.get("job_id")) in jobs:
                job_id = str(result["job_id"])
                report = _rerank(jobs[job_id].report(), result)
        except (KeyError, TypeError, ValueError):
            continue
    if report is not None and report.sensitivity is not None:
        sens = report.sensitivity
    if job_id is not None:
        job = jobs[job_id]
        if sens is not None and job.sensitivity_json is None:
            job.sensitivity_json = sens.model_dump_json()
        elif sens is None and job.sensitivity_json is not None:
            sens = SensitivityReport.model_validate_json(job.sensitivity_json)
    return job_id, report, sens


def mentions_model(text: str, names: list[str]) -> bool:
    """True when ``text`` names one of ``names`` (a zoo name or a stored id), as a whole word."""
    for name in names:
        if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
            return True
    return False


# --------------------------------------------------------------------------- the assistant of a session


_OPEN: weakref.WeakSet[Assistant] = weakref.WeakSet()
_CLOSE_HOOK: list[bool] = []


def close_all_assistants() -> None:
    """Close every assistant this process opened (their event-loop threads would keep it alive after Ctrl-C)."""
    for assistant in list(_OPEN):
        with contextlib.suppress(Exception):
            assistant.close()


def _close_at_exit() -> None:
    if _CLOSE_HOOK:
        return
    _CLOSE_HOOK.append(True)
    # threading's exit hooks run before the interpreter joins non-daemon threads (atexit runs after, too late)
    hook = getattr(threading, "_register_atexit", None)
    if hook is not None:
        hook(close_all_assistants)
    else:  # pragma: no cover - every CPython since 3.9 has it
        atexit.register(close_all_assistants)


def make_assistant() -> Assistant:
    """A new assistant configured from the environment (``QUANTTAAS_*``): the offline planner unless
    ``QUANTTAAS_LLM`` names a model, the tools in process unless ``QUANTTAAS_MCP_URL`` names a server.
    It is closed when the process exits (:func:`close_all_assistants`).

    Raises whatever opening the tool session raises (e.g. a server that cannot be reached).
    """
    from assistant.agent import Assistant
    from ui.charts import save_charts_html

    _close_at_exit()
    assistant = Assistant(chart_writer=save_charts_html)
    _OPEN.add(assistant)
    return assistant


def is_offline(model: str | None) -> bool:
    return not model or model.strip().lower() in ("", "offline", "offline-planner", "none")


def use_llm(
    assistant: Assistant, model: str | None, api_key: str | None = None, api_base: str | None = None
) -> str:
    """Make ``model`` (a litellm model string or an OpenAI-compatible base URL) answer this session, or the
    offline planner when ``model`` is empty or "offline". The key is held by the brain object only: it is not
    put in the environment (which every session of the process shares) and never written to disk.
    Returns the name of the brain now answering. Raises nothing.
    """
    inner = assistant.inner
    if is_offline(model):
        inner.brain = inner.planner
        return inner.brain.name
    from assistant.llm import LiteLLMBrain

    settings = inner.settings.model_copy(
        update={"llm": (model or "").strip(), "llm_api_base": (api_base or "").strip() or None}
    )
    brain = LiteLLMBrain(settings)
    if api_key:
        brain.api_key = api_key
    inner.brain = brain
    return brain.name


def transport_of(assistant: Assistant) -> str:
    """``in-process``, ``http <url>`` or ``stdio <command>``."""
    return str(assistant.inner.tools.transport)


# --------------------------------------------------------------------------- uploads


def safe_filename(name: str, default: str = "upload") -> str:
    """A file name the tools accept: letters, digits, ``._-``, starting with a letter or digit."""
    base = Path(name).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("._-")[:60] or default
    suffix = re.sub(r"[^a-z0-9.]", "", suffix)[:10]
    return stem + suffix


def save_upload(folder: Path, filename: str, data: bytes) -> Path:
    """Write an uploaded file into ``folder`` (created private to this user) and return its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / safe_filename(filename)
    path.write_bytes(data)
    return path


def _failed(name: str, message: str, hint: str, code: str = "upload_failed") -> ToolRecord:
    from assistant.events import ToolRecord

    error = {"code": code, "message": message, "hint": hint}
    return ToolRecord(call_id="ui-upload", name=name, ok=False, text=message, error=error)


def register_upload(assistant: Assistant, path: Path, kind: Literal["model", "data"]) -> ToolRecord:
    """Store an uploaded file on the server (``register_model`` / ``register_data``); a bad file comes back as
    a record with ``ok=False`` and the server's ``{code, message, hint}``. Raises nothing.

    In process the server reads the file by path; a remote server gets it inline (base64, up to 12 MB).
    """
    tool = "register_model" if kind == "model" else "register_data"
    name = re.sub(r"[^A-Za-z0-9 ._-]+", "-", path.stem).strip("._- ")[:60] or kind
    args: dict[str, Any] = {"name": name}
    if transport_of(assistant) == "in-process":
        args["path"] = str(path)
    else:
        size = path.stat().st_size
        if size > _INLINE_UPLOAD_LIMIT:
            return _failed(
                tool,
                f"{path.name} is {size:,} bytes; the chat sends files of up to {_INLINE_UPLOAD_LIMIT:,} bytes "
                "to a remote server",
                "upload it with HTTP POST /models (or /data) and name its id in the chat",
                code="payload_too_large",
            )
        args["content_base64"] = base64.b64encode(path.read_bytes()).decode()
        args["filename"] = path.name
    try:
        return assistant.call_tool(tool, args, f"ui-{tool}")
    except Exception as e:  # the tool session itself failed: the page shows it like a tool error
        return _failed(
            tool, exception_text(e), "reload the page to start a new session", code="session_error"
        )


def inspection_rows(inspection: dict[str, Any]) -> list[dict[str, str]]:
    """The inputs and outputs of an inspection as table rows (``kind``, ``name``, ``dtype``, ``shape``)."""
    rows: list[dict[str, str]] = []
    for kind in ("inputs", "outputs"):
        for t in inspection.get(kind) or []:
            rows.append(
                {
                    "kind": kind[:-1],
                    "name": str(t.get("name", "")),
                    "dtype": str(t.get("dtype", "")),
                    "shape": str(t.get("shape", "")),
                }
            )
    return rows


# --------------------------------------------------------------------------- downloads


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


def _server_base(assistant: Assistant) -> str | None:
    url = assistant.inner.settings.mcp_url
    if not url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _artifact_bytes(assistant: Assistant, artifact_id: str, local: str | None) -> tuple[bytes | None, str]:
    """An artifact's bytes: inline from ``get_artifact``, else the local file (in process), else over HTTP."""
    record = assistant.call_tool("get_artifact", {"artifact_id": artifact_id, "inline": True}, "ui-download")
    if not record.ok or record.result is None:
        return None, error_text(record.error, f"could not fetch {artifact_id}")
    content = record.result.get("content_base64")
    if content:
        return base64.b64decode(content), ""
    if local and Path(local).is_file() and transport_of(assistant) == "in-process":
        return Path(local).read_bytes(), ""
    base = _server_base(assistant)
    if base is not None:
        import httpx

        token = assistant.inner.settings.token_value()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = httpx.get(base + str(record.result.get("download_path", "")), headers=headers, timeout=120)
            r.raise_for_status()
            return r.content, ""
        except httpx.HTTPError as e:
            return None, f"could not download {artifact_id}: {exception_text(e)}"
    return None, f"{artifact_id} is too large to fetch inline and no server URL is known"


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
    try:
        candidate = report.candidate(cid)
        data, problem = _artifact_bytes(assistant, artifact, candidate.model_path)
    except Exception as e:  # a failed session or a bad report: say it, do not crash the page
        data, problem = None, exception_text(e)
    if data is None:
        files.problems.append(problem)
        return files
    files.model_bytes = data
    files.model_name = f"{cid}.onnx"
    try:
        files.package_bytes = package_zip(report, cid, data)
        files.package_name = f"{cid}-package.zip"
    except Exception as e:  # packaging is a convenience: the model and the report are still offered
        files.problems.append(f"could not build the deployable package: {exception_text(e)}")
    return files


def inspection_markdown(inspection: dict[str, Any]) -> str:
    """The inputs and outputs of an inspection as a short markdown list."""
    lines = [
        f"- {row['kind']} `{row['name']}`: {row['dtype']} {row['shape']}"
        for row in inspection_rows(inspection)
    ]
    return "\n".join(lines)


@dataclass
class Selection:
    """The model (a zoo name or a stored id) and data (a stored id) the next request is about."""

    model: str
    data: str | None
    label: str
    summary: str
