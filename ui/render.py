"""How the chat page draws things with Streamlit: a turn of the history, a live turn, a result's charts.

Charts come from :mod:`ui.charts` (pure functions); the state they draw comes from :mod:`ui.chat` and :mod:`ui.downloads`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import streamlit as st

from assistant.events import Event, Final, Progress, TextEvent, ToolFinished, ToolStarted
from optimizer.search.pareto import ParetoReport
from optimizer.types import SensitivityReport
from ui.charts import before_after_rows, candidate_rows, latency_chart, pareto_chart, sensitivity_chart
from ui.chat import ChatTurn, Step, error_text, step_title
from ui.downloads import DownloadSet

__all__ = ["LiveTurn", "brain_label", "render_result", "render_steps", "render_turn"]

_PLANNER = "offline-planner"


def brain_label(name: str | None) -> str:
    """``offline planner (no LLM)`` or the LLM's model string."""
    if not name or name == _PLANNER:
        return "offline planner (no LLM)"
    return f"LLM {name}"


def _arguments(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, indent=1)[:2000]


def _step_body(step: Step) -> None:
    if step.ok:
        st.markdown(step.summary or "done")
    else:
        st.error(error_text(step.error, step.summary))
    if step.arguments:
        st.caption("arguments")
        st.code(_arguments(step.arguments), language="json")


def render_steps(steps: Iterable[Step]) -> None:
    """Every tool call of a turn as a collapsed step (green when it worked, red when it was refused)."""
    for step in steps:
        with st.status(
            step_title(step.name, ok=step.ok, seconds=step.seconds),
            state="complete" if step.ok else "error",
            expanded=False,
        ):
            _step_body(step)


def _answer(turn: ChatTurn) -> None:
    for notice in turn.notices:
        st.info(notice)
    if turn.kind == "error" or turn.outcome == "error":
        st.error(turn.text)
    elif turn.outcome == "needs_input":
        st.warning(turn.text)
    else:
        st.markdown(turn.text)


def render_result(
    report: ParetoReport, sens: SensitivityReport | None, downloads: DownloadSet | None, key: str
) -> None:
    """The charts of a result (Pareto front, latency, layer sensitivity), the before/after table, every
    candidate, and the downloads.
    """
    st.altair_chart(pareto_chart(report), width="content")
    st.caption(report.reason)
    st.altair_chart(latency_chart(report), width="content")
    if sens is not None and sens.layers:
        st.altair_chart(sensitivity_chart(sens), width="content")
    st.markdown("**Before / after**")
    st.table(before_after_rows(report), hide_index=True)
    rows = candidate_rows(report)
    with st.expander(f"All {len(report.candidates)} candidates ({len(rows)} measured)"):
        shown = [
            {
                "candidate": r["id"],
                "recipe": r["label"],
                "size": r["size_text"],
                report.baseline.metric_name: r["metric"],
                "drop (pt)": r["drop"],
                "p50 (ms)": r["p50"],
                "front": "yes" if r["on_front"] else "",
                "recommended": "yes" if r["recommended"] else "",
            }
            for r in rows
        ]
        failed = [
            {"candidate": c.id, "recipe": c.recipe.label, "error": c.error.message if c.error else ""}
            for c in report.failed
        ]
        st.dataframe(shown, hide_index=True)
        if failed:
            st.caption("failed candidates (kept as data)")
            st.dataframe(failed, hide_index=True)
    if downloads is not None:
        _downloads(downloads, key)


def _downloads(files: DownloadSet, key: str) -> None:
    what = "recommended" if files.recommended else "nearest (misses the goal)"
    cols = st.columns(3)
    if files.model_bytes is not None:
        cols[0].download_button(
            f"Model: {what}",
            files.model_bytes,
            file_name=files.model_name,
            mime="application/octet-stream",
            key=f"{key}-model",
            on_click="ignore",
            icon=":material/download:",
        )
    cols[1].download_button(
        "Report (JSON)",
        files.report_bytes,
        file_name="report.json",
        mime="application/json",
        key=f"{key}-report",
        on_click="ignore",
        icon=":material/download:",
    )
    if files.package_bytes is not None:
        cols[2].download_button(
            "Deployable package (zip)",
            files.package_bytes,
            file_name=files.package_name,
            mime="application/zip",
            key=f"{key}-package",
            on_click="ignore",
            icon=":material/download:",
        )
    for problem in files.problems:
        st.warning(problem)


def render_turn(
    turn: ChatTurn, index: int, downloads: dict[tuple[str, str | None], DownloadSet] | None = None
) -> None:
    """One message of the history: for the assistant, its steps, its answer and its result."""
    avatar = ":material/person:" if turn.role == "user" else ":material/memory:"
    with st.chat_message(turn.role, avatar=avatar):
        if turn.role == "user":
            st.markdown(turn.text)
            return
        render_steps(turn.steps)
        _answer(turn)
        report = turn.report()
        if report is not None:
            files = None
            if downloads is not None and turn.job_id is not None:
                cid = report.recommended or (report.nearest[0].candidate_id if report.nearest else None)
                files = downloads.get((turn.job_id, cid))
            render_result(report, turn.sensitivity(), files, key=f"turn{index}")
        if turn.brain:
            st.caption(f"Answered by the {brain_label(turn.brain)} in {turn.seconds:.1f} s")


class LiveTurn:
    """Draws the assistant's events as they come: each tool call as a step, a progress bar while the sweep
    runs, notices, then collects the answer into a :class:`ChatTurn`.
    """

    def __init__(self) -> None:
        self.turn = ChatTurn(role="assistant", text="")
        self.final: Final | None = None
        self._boxes: dict[str, Any] = {}
        self._started: dict[str, float] = {}
        self._bar: Any = None

    def handle(self, event: Event) -> None:
        if isinstance(event, TextEvent):
            st.info(event.text)
            self.turn.notices.append(event.text)
        elif isinstance(event, ToolStarted):
            running = event.name == "run_sweep"
            box = st.status(step_title(event.name, running=True), state="running", expanded=running)
            self._boxes[event.call_id] = box
            self._started[event.call_id] = time.perf_counter()
            if running:
                self._bar = box.progress(0.0, text="starting the sweep")
        elif isinstance(event, Progress):
            if self._bar is not None:
                frac = min(max(event.done / event.planned, 0.0), 1.0) if event.planned else 0.0
                count = f" {event.done}/{event.planned}" if event.planned else ""
                text = f"{event.state}: {event.phase}{count}" + (
                    f" — {event.message[:120]}" if event.message else ""
                )
                self._bar.progress(frac, text=text)
        elif isinstance(event, ToolFinished):
            started = self._started.pop(event.record.call_id, None)
            step = Step.from_record(event.record, None if started is None else time.perf_counter() - started)
            self.turn.steps.append(step)
            box = self._boxes.pop(event.record.call_id, None)
            if box is not None:
                box.update(
                    label=step_title(step.name, ok=step.ok, seconds=step.seconds),
                    state="complete" if step.ok else "error",
                    expanded=False,
                )
                with box:
                    _step_body(step)
            if step.name == "run_sweep":
                self._bar = None
        elif isinstance(event, Final):
            self.final = event
            reply = event.reply
            self.turn.text = reply.text
            self.turn.brain = reply.brain
            self.turn.outcome = reply.outcome
            self.turn.seconds = reply.seconds
            self.turn.job_id = reply.job_id
