"""The chat history as data: each message, each tool call as a step, and errors in words.

The page draws the history again on every rerun from these values (:mod:`ui.render`); they hold the report of an
answer as JSON so a browser session keeps only plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from optimizer.search.pareto import ParetoReport
from optimizer.types import SensitivityReport
from ui.summary import Calibration

if TYPE_CHECKING:
    from assistant.events import ToolRecord

__all__ = ["ChatTurn", "Step", "error_text", "exception_text", "merge_steps", "step_title"]

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


@dataclass
class Step:
    """One tool call as the chat shows it: a collapsible step."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    summary: str
    error: dict[str, Any] | None = None
    seconds: float = 0.0
    calls: int = 1

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


def merge_steps(steps: list[Step]) -> list[Step]:
    """One step per tool, in the order each was first called: the planner reads the goal, or locates files,
    several times in a turn, and the chat says each thing it did once (with the number of calls and the time
    they took together; failed when any call failed, with the first error)."""
    merged: dict[str, Step] = {}
    for step in steps:
        seen = merged.get(step.name)
        if seen is None:
            merged[step.name] = Step(**{**step.__dict__})
            continue
        seen.calls += step.calls
        seen.seconds += step.seconds
        if step.ok and seen.ok:
            seen.summary = step.summary
            seen.arguments = step.arguments
        elif seen.ok:  # the first failure is the one to read
            seen.ok, seen.summary, seen.error, seen.arguments = (
                False,
                step.summary,
                step.error,
                step.arguments,
            )
    return list(merged.values())


def step_title(
    name: str,
    *,
    running: bool = False,
    ok: bool = True,
    seconds: float | None = None,
    elapsed: float | None = None,
) -> str:
    """The label of a step: what the tool did in words, and how long it took (``elapsed``: a running step's
    clock, so the page shows it is working)."""
    if running:
        clock = f" {elapsed:.0f} s" if elapsed is not None else ""
        return _RUNNING.get(name, _TITLES.get(name, name)) + " …" + clock
    title = _TITLES.get(name, name)
    if not ok:
        title = f"{title}: failed"
    return title + (f" ({seconds:.1f} s)" if seconds is not None else "")


@dataclass
class ChatTurn:
    """One message of the chat. ``kind``: a normal message, an error, or the summary of an uploaded model."""

    role: Literal["user", "assistant"]
    text: str
    kind: Literal["text", "error", "info", "stopped"] = "text"
    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    brain: str | None = None
    outcome: str | None = None
    job_id: str | None = None
    report_json: str | None = None
    sensitivity_json: str | None = None
    seconds: float = 0.0
    calibration: Calibration | None = None  # what the sweep calibrated on, for the summary
    budget_s: float | None = None  # the sweep's time budget for points across the front

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
