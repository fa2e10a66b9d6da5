"""How the chat page draws things with Streamlit: a turn of the history, a live turn, a result's charts.

Charts come from :mod:`ui.charts` (pure functions, imported when a result is first drawn: Altair takes seconds to
import, and the page's first view must not wait for it); the short answer from :mod:`ui.summary`; the state they
draw from :mod:`ui.chat` and :mod:`ui.downloads`.
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
from ui.chat import ChatTurn, Step, error_text, merge_steps, step_title
from ui.downloads import DownloadSet
from ui.summary import metric_text, progress_view, result_summary, shown_text, size_text

__all__ = ["LiveTurn", "brain_label", "candidate_table", "render_result", "render_steps", "render_turn"]

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
        st.markdown(shown_text(step.summary) or "done")
    else:
        st.error(error_text(step.error, step.summary))
    if step.calls > 1:
        st.caption(f"{step.calls} calls")
    if step.arguments:
        st.caption("arguments")
        st.code(_arguments(step.arguments), language="json")


def render_steps(steps: Iterable[Step]) -> None:
    """Every tool of a turn as one collapsed step (green when it worked, red when a call was refused)."""
    for step in merge_steps(list(steps)):
        with st.status(
            step_title(step.name, ok=step.ok, seconds=step.seconds),
            state="complete" if step.ok else "error",
            expanded=False,
        ):
            _step_body(step)


def _answer(turn: ChatTurn, index: int) -> None:
    for notice in turn.notices:
        st.info(notice)
    report = turn.report()
    if turn.kind == "stopped":
        st.warning(turn.text)
    elif turn.kind == "error" or turn.outcome == "error":
        st.error(shown_text(turn.text))
    elif turn.outcome == "needs_input":
        st.warning(shown_text(turn.text))
    elif report is not None and turn.outcome in ("met", "not_met"):
        with st.container(key=f"summary-{index}"):
            st.markdown(result_summary(report, calibration=turn.calibration, budget_s=turn.budget_s))
        details = shown_text(turn.text)
        if details:
            if turn.brain and turn.brain != _PLANNER:
                st.markdown(details)  # an LLM's own words are its answer: shown, not folded away
            else:
                with st.expander("The assistant's full answer"):
                    st.markdown(details)
    else:
        st.markdown(shown_text(turn.text))


def candidate_table(report: ParetoReport) -> list[dict[str, str]]:
    """Every candidate as a row of text: measured ones with their numbers (one format per quantity), failed ones
    with their error; sorted by size, failed last."""
    from ui.charts import candidate_rows

    goal = report.goal
    name = report.baseline.metric_name
    rows = [
        {
            "candidate": str(r["id"]),
            "recipe": str(r["label"]),
            "size": size_text(float(r["size_bytes"]), goal),
            name: metric_text(name, r["metric"]),
            "loss (pt)": "" if r["drop"] is None else f"{float(r['drop']):.2f}",
            "p50 (ms)": "" if r["p50"] is None else f"{float(r['p50']):.3g}",
            "note": ", ".join(
                x for x in ("recommended" if r["recommended"] else "", "front" if r["on_front"] else "") if x
            ),
        }
        for r in candidate_rows(report)
    ]
    rows += [
        {
            "candidate": c.id,
            "recipe": c.recipe.label,
            "size": "",
            name: "",
            "loss (pt)": "",
            "p50 (ms)": "",
            "note": f"failed: {c.error.message} ({c.error.code})" if c.error else "failed",
        }
        for c in report.failed
    ]
    return rows


def render_result(
    report: ParetoReport, sens: SensitivityReport | None, downloads: DownloadSet | None, key: str
) -> None:
    """The charts of a result (Pareto front, latency, layer sensitivity), the before/after table, every
    candidate, and the downloads.
    """
    from ui.charts import before_after_rows, latency_chart, pareto_chart, sensitivity_chart

    if downloads is not None:
        _downloads(downloads, key)
    st.altair_chart(pareto_chart(report), width="content")
    st.altair_chart(latency_chart(report), width="content")
    if sens is not None and sens.layers:
        st.altair_chart(sensitivity_chart(sens), width="content")
    st.markdown("**Before / after**")
    st.table(before_after_rows(report), hide_index=True)
    measured = report.evaluations - len(report.failed)
    title = (
        f"Every candidate: {report.evaluations} of {report.grid_size} measured"
        + (f" ({len(report.failed)} failed)" if report.failed else "")
        + (
            f", {len(report.skipped_reasons or report.skipped)} not built"
            if report.skipped_reasons or report.skipped
            else ""
        )
    )
    with st.expander(title):
        st.table(candidate_table(report), hide_index=True)
        if measured == 0:
            st.caption("no candidate was measured successfully")
        if report.skipped_reasons:
            st.caption("not built, and why")
            st.table(
                [{"candidate": cid, "why": why} for cid, why in report.skipped_reasons.items()],
                hide_index=True,
            )


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
        _answer(turn, index)
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
    """Draws the assistant's events as they come: one step per tool (a tool called again reuses its step), a
    progress bar while the sweep runs, a clock on whatever is running (:meth:`tick`), notices; then collects the
    answer into a :class:`ChatTurn`. :meth:`stopped` closes the turn when the user pressed Stop.
    """

    def __init__(self) -> None:
        self.turn = ChatTurn(role="assistant", text="")
        self.final: Final | None = None
        self.job_id: str | None = None
        self._t0 = time.perf_counter()
        self._boxes: dict[str, tuple[Any, Any]] = {}  # tool name -> (status box, its body placeholder)
        self._running: dict[str, tuple[str, float]] = {}  # call id -> (tool name, started)
        self._bar: Any = None
        self._progress: tuple[str, int, int] = ("starting", 0, 0)
        self._sweep_started: float | None = None

    def _box(self, name: str, *, expanded: bool) -> tuple[Any, Any]:
        found = self._boxes.get(name)
        if found is None:
            box = st.status(step_title(name, running=True, elapsed=0), state="running", expanded=expanded)
            found = (box, box.empty())
            self._boxes[name] = found
        return found

    def _draw_bar(self) -> None:
        if self._bar is None:
            return
        phase, done, planned = self._progress
        elapsed = time.perf_counter() - (self._sweep_started or self._t0)
        frac, text = progress_view(phase, done, planned, elapsed)
        self._bar.progress(frac, text=text)

    def tick(self) -> None:
        """Redraw the clocks of what is running (called while no event arrives): the page shows it works, and
        Streamlit sees a Stop click at this point."""
        now = time.perf_counter()
        for name, started in self._running.values():
            box, _ = self._boxes[name]
            box.update(label=step_title(name, running=True, elapsed=now - started))
        self._draw_bar()

    def handle(self, event: Event) -> None:
        if isinstance(event, TextEvent):
            st.info(event.text)
            self.turn.notices.append(event.text)
        elif isinstance(event, ToolStarted):
            sweep = event.name == "run_sweep"
            box, _ = self._box(event.name, expanded=sweep)
            box.update(label=step_title(event.name, running=True, elapsed=0), state="running")
            self._running[event.call_id] = (event.name, time.perf_counter())
            if sweep and self._bar is None:
                self._sweep_started = time.perf_counter()
                self._progress = ("starting", 0, 0)
                self._bar = box.progress(0.03, text="Starting the sweep")
        elif isinstance(event, Progress):
            self.job_id = event.job_id
            self._progress = (
                event.phase if event.state == "running" else event.state,
                event.done,
                event.planned,
            )
            self._draw_bar()
        elif isinstance(event, ToolFinished):
            name_started = self._running.pop(event.record.call_id, None)
            started = name_started[1] if name_started is not None else None
            step = Step.from_record(event.record, None if started is None else time.perf_counter() - started)
            self.turn.steps.append(step)
            merged = next(s for s in merge_steps(self.turn.steps) if s.name == step.name)
            box, body = self._box(step.name, expanded=False)
            still = any(n == step.name for n, _ in self._running.values())
            if not still:
                box.update(
                    label=step_title(merged.name, ok=merged.ok, seconds=merged.seconds),
                    state="complete" if merged.ok else "error",
                    expanded=False,
                )
            with body.container():
                _step_body(merged)
            if step.name == "run_sweep":
                job = event.record.job or {}
                if self._bar is not None:
                    done = int(job.get("trials_finished") or self._progress[1])
                    self._progress = (str(job.get("state") or "finished"), done, done)
                    self._draw_bar()
                self._bar = None
        elif isinstance(event, Final):
            self.final = event
            reply = event.reply
            self.turn.text = reply.text
            self.turn.brain = reply.brain
            self.turn.outcome = reply.outcome
            self.turn.seconds = reply.seconds
            self.turn.job_id = reply.job_id

    def stopped(self) -> ChatTurn:
        """The turn of a request the user stopped: what was running, and that the sweep was cancelled."""
        elapsed = time.perf_counter() - self._t0
        doing = [name for name, _ in self._running.values()]
        text = f"Stopped at your request after {elapsed:.0f} s"
        if doing:
            text += " (" + step_title(doing[-1], running=True).rstrip(" …").lower() + ")"
        text += "."
        if self.job_id is not None:
            done = self._progress[1]
            text += (
                f" The sweep (job {self.job_id}) was cancelled after {done} measured "
                f"candidate{'s' if done != 1 else ''}; nothing is left running."
            )
        else:
            text += " Nothing is left running."
        text += " Send a new request when you are ready."
        self.turn.kind = "stopped"
        self.turn.text = text
        self.turn.seconds = elapsed
        return self.turn
