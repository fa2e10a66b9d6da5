"""The tool workflow: from a goal request to the tool calls that answer it, one step at a time.

A request runs parse_goal (and, for a follow-up, parse_goal with the last verdict's goal as ``prior``: the server
merges), inspect_model, profile_layers, run_sweep, get_pareto_report and get_artifact; a changed goal on the same
model is re-ranked with ``recommend`` and swept again only when nothing measured meets it. Each method returns the
next :class:`BrainStep`: the tool calls still missing (found in the conversation by their exact arguments, so no call
is repeated), or the answer once every result is in (written by :mod:`assistant.planner.prose`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.answers import candidate_line, describe_goal, finite, fmt_drop, fmt_metric
from assistant.brain import BrainStep
from assistant.events import ToolRecord
from assistant.planner.goals import (
    ACCURACY_FIELDS,
    DEFAULT_MAX_DROP_PCT,
    LATENCY_FIELDS,
    SIZE_FIELDS,
    goal_arg,
    goal_with,
    joined,
    relaxed_fields,
    same_goal,
    words_set_something,
)
from assistant.planner.intent import accept_rewrite, has_words, unread_words
from assistant.planner.prose import help_text, registry, verdict_answer
from assistant.planner.state import ASK_BACK, Case, Conversation, answer
from assistant.toollog import ReportView

__all__ = ["PROFILE_SAMPLES", "PROFILE_SAMPLES_LARGE", "Request", "Workflow"]

PROFILE_SAMPLES = 16
PROFILE_SAMPLES_LARGE = 4


@dataclass(frozen=True)
class Request:
    """What a message asks for: the model and data it names, its goal words (model names and paths taken out),
    the direction the planner read itself ("make it faster": ``("latency", "faster")``), and a goal the planner
    read back earlier that these words restate (``prior``)."""

    model: str | None
    data: str | None
    words: str
    direction: tuple[str, str] | None = None
    prior: dict[str, Any] | None = None
    #: calibration data chosen apart from the evaluation data (a stored data id: the page's third uploader)
    calib: str | None = None


_DIRECTION_NOTES = {
    "latency": "faster than the original (objective: latency)",
    "size": "smaller than the original (objective: size)",
    "accuracy": "as accurate as possible (objective: accuracy)",
}


#: how an answer names a loosened part of the goal
LOOSENED_WORDS = {
    "size": "a larger size allowed",
    "accuracy": "more accuracy loss allowed",
    "latency": "more latency allowed",
    "memory": "more memory allowed",
    "methods_forbidden": "fewer methods forbidden",
    "precision_forbidden": "fewer precisions forbidden",
    "methods_allowed": "more methods allowed",
    "precision": "no precision required",
    "keep_float_layers": "no layers kept in float",
}


def _unbuilt(view: ReportView) -> int:
    """How many candidates of a sweep's search space it did not build."""
    report = view.report
    skipped = len(report.get("skipped_reasons") or report.get("skipped") or [])
    grid, evaluations = report.get("grid_size"), report.get("evaluations")
    if isinstance(grid, int) and isinstance(evaluations, int):
        return max(skipped, grid - evaluations)
    return skipped


def _may_ask_for(goal: dict[str, Any], method: str) -> bool:
    """Whether the planner may add ``method`` to what a goal asks for: not forbidden, allowed, not a fallback."""
    if method in (goal.get("methods_forbidden") or []) or method in (goal.get("methods_fallback") or []):
        return False
    allowed = goal.get("methods_allowed")
    return not allowed or method in allowed


class Workflow:
    """The tool calls of a request and of its follow-ups, over one :class:`Conversation`."""

    def __init__(self, conv: Conversation):
        self.conv = conv

    def _parse(self, text: str, prior: dict[str, Any] | None = None) -> ToolRecord | BrainStep:
        """The parse_goal record for ``text`` (merged into ``prior`` on the server when given), or the step that
        calls it."""
        args: dict[str, Any] = {"text": text}
        if prior is not None:
            args["prior"] = goal_arg(prior)
        r = self.conv.log.call("parse_goal", args)
        return self.conv.call(("parse_goal", args)) if r is None else r

    def _read(self, words: str, prior: dict[str, Any] | None) -> tuple[dict[str, Any], str, bool] | BrainStep:
        """The goal the server reads from ``words`` (merged into ``prior`` when given; "I can accept 2%" read as an
        accuracy loss): (goal, the words read, runnable), or the step that calls parse_goal."""
        got = self._parse(words)
        if isinstance(got, BrainStep):
            return got
        if not got.ok:
            return self.conv.error_answer("read your goal", got)
        goal = (got.result or {}).get("goal", {})
        rewritten = accept_rewrite(words, goal)
        if rewritten is not None:
            got = self._parse(rewritten)
            if isinstance(got, BrainStep):
                return got
            if not got.ok:
                return self.conv.error_answer("read your goal", got)
            words = rewritten
        if prior is not None:
            got = self._parse(words, prior=prior)
            if isinstance(got, BrainStep):
                return got
            if not got.ok:
                return self.conv.error_answer("apply your words to the goal", got)
        return dict((got.result or {}).get("goal") or {}), words, bool((got.result or {}).get("runnable"))

    def goal_request(
        self, request: Request, case: Case | None, *, follow_up: bool, confirmed: bool = False
    ) -> BrainStep:
        """A request with goal words: read them (and ask back when a word was not understood), then sweep, or
        apply them to the last sweep's goal when it is a follow-up. ``confirmed``: the user said yes to the goal
        read back, so the words not understood are known and accepted."""
        goal_words = request.words[:500] if request.words else ""
        goal: dict[str, Any] = {}
        runnable = False
        if re.search(r"[a-z0-9]", goal_words, re.I):
            read = self._read(goal_words, request.prior)
            if isinstance(read, BrainStep):
                return read
            goal, goal_words, runnable = read
        used: list[str] = []
        direction_lead = ""
        if request.direction is not None:
            direction, words = request.direction
            unparsed = [str(w) for w in goal.get("unparsed_words") or []]
            said = {w.lower() for w in re.findall(r"[\w']+", words)}
            if any(w.lower() in said for w in unparsed) or not goal:
                # the reader left "faster" unread: the planner reads it as the objective, and says so
                used.append(words)
                goal = goal_with(
                    goal, objective=direction, unparsed_words=[w for w in unparsed if w.lower() not in said]
                )
                runnable = True
                direction_lead = f"I read {words!r} as: make it {_DIRECTION_NOTES[direction]}. "
        unread = unread_words(goal, used)
        if unread and not confirmed:
            return self.ask_back(goal, unread, named=request.model is not None or follow_up)

        if follow_up and case is not None and words_set_something(goal):
            # the server merges the follow-up into the goal of the last sweep: what the words set replaces
            merged = self._parse(goal_words, prior=case.goal or {})
            if isinstance(merged, BrainStep):
                return merged
            if not merged.ok or merged.result is None:
                return self.conv.error_answer("apply your follow-up to the goal", merged)
            if not merged.result.get("runnable"):
                return answer("That goal sets no limit I can measure. " + help_text(self.conv), "needs_input")
            new_goal = dict(merged.result.get("goal") or {})
            baseline = case.report.baseline if case.report is not None else None
            return self.refine(
                case, new_goal, note="", loosened=relaxed_fields(case.goal or {}, new_goal, baseline)
            )

        model = request.model
        if model is None:
            if words_set_something(goal) or has_words(goal_words):
                catalog = self.conv.log.catalog()
                choices = ", ".join([*catalog.zoo, *catalog.stored])
                if not words_set_something(goal):
                    return answer(help_text(self.conv) + f" Models I can use: {choices}.", "needs_input")
                return answer(
                    f"Which model should I optimize? Name one in your message or with --model: {choices} "
                    "(or give a path to an .onnx file).",
                    "needs_input",
                )
            if self.conv.log.call("list_techniques", {}) is None:
                return self.conv.call(("list_techniques", {}))
            return answer(help_text(self.conv), "needs_input")

        assumed = direction_lead
        if not runnable:  # run_sweep would refuse it: assume the default limit, and say so
            goal = goal_with(goal, max_accuracy_drop_pct=DEFAULT_MAX_DROP_PCT)
            assumed += (
                "You gave no limit, so I assumed you can afford at most 1 point of accuracy loss and want the best "
                "balance of size, accuracy and speed. "
            )
        elif direction_lead and not any(goal.get(k) is not None for k in ACCURACY_FIELDS):
            # a direction alone would trade any accuracy for it: bound the loss, and say so
            goal = goal_with(goal, max_accuracy_drop_pct=DEFAULT_MAX_DROP_PCT)
            assumed += (
                "You gave no accuracy limit, so I assumed you can afford at most 1 point of accuracy loss. "
            )
        return self.full(model, request.data, goal, lead=assumed, calib=request.calib)

    def ask_back(self, goal: dict[str, Any], unread: list[str], *, named: bool) -> BrainStep:
        """The goal as read, and the words that were not: asked back before anything runs."""
        return answer(
            f"I could not read part of your goal: {', '.join(unread)}. I read: {describe_goal(goal)}. Right? "
            f"{ASK_BACK}, for example `at least 1.5x faster`, `under 5 MB` or `accuracy loss at most 1%`"
            + ("" if named else ", and name the model if it is not in the list of models I know")
            + ".",
            "needs_input",
        )

    # ------------------------------------------------------------ the sweep

    def full(
        self, model: str, data: str | None, goal: dict[str, Any], *, lead: str = "", calib: str | None = None
    ) -> BrainStep:
        inspect_args = {"model": model}
        insp = self.conv.log.call("inspect_model", inspect_args)
        if insp is None:
            return self.conv.call(("inspect_model", inspect_args))
        if not insp.ok:
            return self.conv.error_answer(f"open the model {model}", insp)
        # the profile only explains the answer; its memory grows with the samples times the activations (a text
        # recogniser needed over 8 GB for 16 samples), so models past a megabyte get a few samples
        size = finite((insp.result or {}).get("size_bytes")) or 0.0
        samples = PROFILE_SAMPLES if size < 1e6 else PROFILE_SAMPLES_LARGE
        profile_args: dict[str, Any] = {"model": model, "samples": samples}
        if calib or data:  # the profile calibrates on what the sweep calibrates on
            profile_args["data"] = calib or data
        if self.conv.log.call("profile_layers", profile_args) is None:
            return self.conv.call(("profile_layers", profile_args))
        sweep_args: dict[str, Any] = {"model": model, "goal": goal_arg(goal)}
        if data:
            sweep_args["data"] = data
        if calib:
            sweep_args["calib"] = calib
        sweep = self.conv.log.call("run_sweep", sweep_args) or self._sweep_for(model, data, goal, calib)
        if sweep is None or (sweep.ok and (sweep.job or {}).get("state") in ("interrupted",)):
            return self.conv.call(("run_sweep", sweep_args))
        if not sweep.ok:
            return self.conv.error_answer(f"start a sweep of {model}", sweep)
        job_id = str((sweep.result or {}).get("job_id", ""))
        job = sweep.job or sweep.result or {}
        state = job.get("state")
        if state in ("queued", "running"):
            p = job.get("progress") or {}
            return answer(
                f"The sweep of {model} (job {job_id}) is still running: {job.get('trials_finished', 0)} trial(s) "
                f"finished so far ({p.get('message', '')}). Ask me again in a moment.",
                "answered",
            )
        if state == "failed":
            err = job.get("error") or {}
            if err.get("code") == "goal_invalid":
                desc = str(job.get("goal") or describe_goal(goal))
                return answer(
                    f"{lead}**{model}: your goal cannot be met.** The sweep refused it: {err.get('message', '')}. "
                    f"Goal as I read it: {desc}. {err.get('hint', '')}".strip(),
                    "not_met",
                )
            return answer(
                f"The sweep of {model} failed: [{err.get('code', 'error')}] {err.get('message', '')} "
                f"Hint: {err.get('hint', '')}",
                "error",
            )
        report_args = {"job_id": job_id}
        rep = self.conv.log.call("get_pareto_report", report_args)
        if rep is None:
            return self.conv.call(("get_pareto_report", report_args))
        if not rep.ok:
            return self.conv.error_answer(f"read the result of job {job_id}", rep)
        report = ReportView(rep.result or {})
        step = self._fetch_files(job_id, report.recommended, report)
        if step is not None:
            return step
        return verdict_answer(self.conv, model, report, lead=lead, fresh=True)

    def _sweep_for(
        self, model: str, data: str | None, goal: dict[str, Any], calib: str | None = None
    ) -> ToolRecord | None:
        """A sweep of this conversation for the same model, data, calibration and goal, however the goal was given
        (an LLM that started the turn may have passed words): its goal is the one the server ran (``goal_fields``)."""
        for r in reversed(
            self.conv.log.all("run_sweep", args={"model": model, "data": data, "calib": calib})
        ):
            ran = (r.job or {}).get("goal_fields") or (r.result or {}).get("goal_fields")
            if isinstance(ran, dict) and same_goal(ran, goal):
                return r
        return None

    def _fetch_files(self, job_id: str, candidate: str | None, report: ReportView) -> BrainStep | None:
        """The get_artifact calls (no content) that locate the report and the candidate's model, if any is missing."""
        wanted: list[dict[str, Any]] = [{"artifact_id": f"{job_id}/report.json", "inline": False}]
        aid = report.artifact_of(candidate)
        if aid:
            wanted.insert(0, {"artifact_id": aid, "inline": False})
        missing = [("get_artifact", a) for a in wanted if self.conv.log.call("get_artifact", a) is None]
        # what the answers say about techniques comes from the server's registry, read once per conversation
        if not registry(self.conv) and self.conv.log.call("list_techniques", {}) is None:
            missing.append(("list_techniques", {}))
        return self.conv.call(*missing) if missing else None

    # ------------------------------------------------------------ follow-ups on the last sweep

    def refine(
        self, case: Case, goal: dict[str, Any], *, note: str, loosened: Sequence[str] = ()
    ) -> BrainStep:
        """Re-rank the last sweep's candidates for ``goal`` (the structured goal); sweep again when none meets it.

        A goal the user loosened (``loosened``: what :func:`relaxed_fields` found) may allow candidates the last
        directed sweep skipped as unable to win: then a new directed sweep runs for it after the re-ranking, and
        an accuracy limit loosened on a goal with no objective of its own is spent on size ("I can accept 2%"
        looks for the smaller models it allows, pruning included where the goal does not forbid it).
        """
        if case.report is None or case.job_id is None:
            return self.full(case.model, case.data, goal, lead=note, calib=case.calib)
        rec_args = {"job_id": case.job_id, "goal": goal_arg(goal)}
        rec = self.conv.log.call("recommend", rec_args)
        if rec is None:
            return self.conv.call(("recommend", rec_args))
        unbuilt = _unbuilt(case.report)
        if loosened and unbuilt and rec.ok:
            return self._search_again(case, goal, rec, loosened, unbuilt, note)
        if rec.ok and rec.result is not None and rec.result.get("recommendation", {}).get("recommended"):
            cid = rec.result["recommendation"]["recommended"]
            step = self._fetch_files(case.job_id, cid, case.report)
            if step is not None:
                return step
            n = len(case.report.measured)
            lead = (
                note
                + f"I re-ranked the {n} candidate{'s' if n != 1 else ''} already measured in job {case.job_id} "
                "for the new goal; nothing had to be run again. "
            )
            return verdict_answer(
                self.conv, case.model, case.report, lead=lead, recommend=rec.result, fresh=False
            )
        lead = note + (
            f"None of the candidates measured in job {case.job_id} meets the new goal, so I ran a new sweep for it. "
            if rec.ok
            else ""
        )
        return self.full(case.model, case.data, goal, lead=lead, calib=case.calib)

    def _search_again(
        self,
        case: Case,
        goal: dict[str, Any],
        rec: ToolRecord,
        loosened: Sequence[str],
        unbuilt: int,
        note: str,
    ) -> BrainStep:
        """A new directed sweep for a loosened goal, after saying what the re-ranking of the measured ones found."""
        found = ((rec.result or {}).get("recommendation") or {}).get("recommended")
        n = len(case.report.measured) if case.report is not None else 0
        lead = note + (
            f"I re-ranked the {n} candidate{'s' if n != 1 else ''} already measured in job {case.job_id} for the "
            + (f"new goal: {found} meets it. " if found else "new goal: none of them meets it. ")
        )
        search = goal
        aim = ""
        if "accuracy" in loosened and (goal.get("objective") or "balanced") == "balanced":
            latency_only = any(goal.get(k) is not None for k in LATENCY_FIELDS) and not any(
                goal.get(k) is not None for k in SIZE_FIELDS
            )
            objective = "latency" if latency_only else "size"
            change: dict[str, Any] = {"objective": objective}
            aim = f", aiming at the {'fastest' if objective == 'latency' else 'smallest'} model within it"
            if objective == "size" and _may_ask_for(goal, "prune"):
                change["methods_requested"] = sorted({*(goal.get("methods_requested") or []), "prune"})
                aim += " and trying pruning too"
            search = goal_with(goal, **change)
        what = ", ".join(LOOSENED_WORDS.get(k, k) for k in loosened)
        lead += (
            f"Your goal is looser ({what}), so it may allow candidates the sweep of job {case.job_id} did not build "
            f"({unbuilt} of them could not win the old goal): I ran a new directed sweep for it{aim}. "
        )
        return self.full(case.model, case.data, search, lead=lead)

    def _current_best(self, case: Case) -> dict[str, Any] | None:
        """The candidate recommended for the active goal (or the nearest one), with metrics."""
        if case.report is None:
            return None
        found = case.report.candidate(case.recommended or case.report.nearest_id)
        return found if found is not None and found.get("metrics") else None

    def _own_change(self, case: Case, **fields: Any) -> dict[str, Any]:
        """The goal of the last verdict with fields the planner sets itself from the user's words ("make it
        smaller", "show me the fastest"): every word was understood, and they join the goal's text."""
        goal = case.goal or {}
        return goal_with(
            goal, **fields, unparsed_words=[], text=joined(str(goal.get("text") or ""), self.conv.text)
        )

    def more(self, case: Case, direction: str) -> BrainStep:
        best = self._current_best(case)
        if best is None or case.report is None:
            return self.refine(case, self._own_change(case, objective=direction), note="")
        m = best["metrics"]
        change: dict[str, Any] = {"objective": direction}
        # a new bound replaces both kinds of its bound (as a follow-up merged on the server does)
        if direction == "size":
            change.update(max_size_mb=(int(m["size_bytes"]) - 1) / 1e6, max_size_ratio=None)
        elif direction == "latency" and finite(m.get("latency_ms_p50")):
            change.update(max_latency_ms=float(f"{float(m['latency_ms_p50']) * 0.99:.4g}"), min_speedup=None)
        elif direction == "accuracy":
            drop = finite(m.get("accuracy_drop_pct"))
            if drop is not None and drop <= 0:
                base = case.report.baseline
                return answer(
                    f"{best['id']} already loses no accuracy: {fmt_metric(str(m.get('metric_name')), m.get('metric'))} "
                    f"against {fmt_metric(str(base.get('metric_name')), base.get('metric'))} for the original "
                    f"({fmt_drop(drop)}), so it cannot be made more accurate than the original.",
                    "answered",
                )
            if drop is not None:
                change["max_accuracy_drop_pct"] = max(round(drop - 0.01, 2), 0.0)
        what = {"size": "smaller than", "latency": "faster than", "accuracy": "more accurate than"}[direction]
        note = f"You asked for a model {what} {best['id']}, so I tightened the goal accordingly. "
        return self.refine(case, self._own_change(case, **change), note=note)

    def show(self, case: Case, objective: str) -> BrainStep:
        goal = self._own_change(case, objective=objective)
        if case.report is None:
            return self.refine(case, goal, note="")
        rec_args = {"job_id": case.job_id, "goal": goal_arg(goal)}
        rec = self.conv.log.call("recommend", rec_args)
        if rec is None:
            return self.conv.call(("recommend", rec_args))
        if not rec.ok or rec.result is None:
            return self.conv.error_answer("re-rank the measured candidates", rec)
        cid = rec.result.get("recommendation", {}).get("recommended")
        if cid and case.job_id:
            step2 = self._fetch_files(case.job_id, cid, case.report)
            if step2 is not None:
                return step2
        ok = case.report.measured
        key = {"latency": "latency_ms_p50", "size": "size_bytes", "accuracy": "accuracy_drop_pct"}[objective]
        word = {"latency": "fastest", "size": "smallest", "accuracy": "most accurate"}[objective]
        measured = [c for c in ok if finite(c["metrics"].get(key)) is not None]
        extra = ""
        if measured:
            top = min(measured, key=lambda c: (float(c["metrics"][key]), c["id"]))
            if top["id"] != cid:
                extra = (
                    f"The {word} of all {len(ok)} measured candidates is "
                    f"{candidate_line(top, case.report.baseline)}; it is not recommended for your goal. "
                )
        return verdict_answer(
            self.conv, case.model, case.report, lead=extra, recommend=rec.result, fresh=False
        )
