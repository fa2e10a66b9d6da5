"""The answer prose: what the planner says about a sweep, built only from tool results.

The verdict for a goal (met, or why not and the nearest candidates), what was tried, why a technique is not the
answer, and why the recommendation is what it is. Every number is a value of a tool result (or a unit conversion,
ratio or difference of them), so these answers pass the honesty checker; what a technique is called and why a sweep
may not have built it comes from :mod:`assistant.techniques`.
"""

from __future__ import annotations

import re
from typing import Any

from assistant.answers import (
    baseline_line,
    candidate_line,
    describe_goal,
    files_for,
    files_text,
    finite,
    fmt_drop,
    fmt_ms,
    label_of,
)
from assistant.brain import BrainStep
from assistant.events import Outcome
from assistant.planner.state import Case, Conversation, answer
from assistant.techniques import CAPABILITIES, not_in_grid, technique
from assistant.toollog import ReportView
from optimizer.units import format_bytes

__all__ = ["HELP", "explain_choice", "tried", "verdict_answer", "why_not", "workflow_lines"]

HELP = (
    f"I compress ONNX models ({CAPABILITIES}) and measure the result: size, accuracy against the "
    "original, latency. Tell me a model and a goal, for example: `make digits-cnn under 40 KB with less than 1% "
    "accuracy loss`. Then you can ask `I can accept 2%`, `make it smaller`, `why not int4?` or `what did you try?`."
)


def tried(conv: Conversation, case: Case) -> str:
    """What the last sweep measured, failed and skipped, and the tool calls so far ("what did you try?")."""
    lines: list[str] = []
    view = case.report
    if view is None:
        state = (case.job or {}).get("state", "unknown")
        err = (case.job or {}).get("error") or {}
        lines.append(
            f"The last sweep of {case.model} (job {case.job_id}) ended {state}"
            + (f": {err.get('message', '')}" if err else "")
            + "; it produced no report, so no candidate was measured."
        )
    else:
        report, base = view.report, view.baseline
        failed = [c for c in view.candidates if not c.get("metrics")]
        wall = finite(report.get("wall_seconds"))
        lines.append(
            f"For {case.model} (job {case.job_id}) I measured {len(view.candidates)} of the "
            f"{report.get('grid_size', '?')} candidates in the search space"
            + (f" in {wall:.1f} s" if wall is not None else "")
            + f"; {baseline_line(case.model, base)}."
        )
        for c in view.measured:
            mark = " (recommended)" if c.get("id") == view.recommended else ""
            lines.append(f"- {candidate_line(c, base)}{mark}")
        for c in failed:
            lines.append(f"- {candidate_line(c, base)}")
        skipped = report.get("skipped_reasons") or {}
        if skipped:
            groups: dict[str, list[str]] = {}
            for sid, why in skipped.items():
                groups.setdefault(str(why), []).append(str(sid))
            lines.append(f"Not built ({len(skipped)}), because they could not win:")
            for why, ids in groups.items():
                lines.append(f"- {', '.join(ids)}: {why}")
    counts = conv.log.counts()
    lines.append(
        "Tool calls in this conversation so far: " + ", ".join(f"{n} ({k})" for n, k in counts.items()) + "."
    )
    return "\n".join(lines)


def why_not(conv: Conversation, case: Case, key: str) -> BrainStep:
    """Why a technique (``key``, see :mod:`assistant.techniques`) is not the answer: its measured candidates and
    what they miss, the ones not built and why, or why the sweep had none."""
    view = case.report
    if view is None:
        return answer(tried(conv, case), "answered")
    base, cands = view.baseline, view.candidates
    tech = technique(key)
    measured = [c for c in cands if tech.matches(c.get("recipe") or {})]
    skipped = {
        sid: why
        for sid, why in (view.report.get("skipped_reasons") or {}).items()
        if tech.skipped_label and re.search(tech.skipped_label, label_of(sid))
    }
    rec = case.recommended
    name = tech.name
    lines: list[str] = []
    if measured:
        for c in measured:
            lines.append(f"{name} was measured: {candidate_line(c, base)}.")
            # the server's goal check, computed once for the goal of the last verdict
            misses = [str(m.get("text", "")) for m in (case.misses or {}).get(str(c.get("id")), [])]
            if c.get("id") == rec:
                lines.append("It is the recommended candidate.")
            elif not c.get("metrics"):
                pass
            elif misses:
                lines.append("It misses your goal: " + "; ".join(misses) + ".")
            else:
                lines.append(
                    "It misses none of the limits of your goal, but another candidate ranked higher for your "
                    "objective."
                )
    if skipped:
        for sid, why in skipped.items():
            lines.append(f"{sid} was not built: {why}.")
    if not measured and not skipped:
        lines.append(f"{name} was not in the sweep's search space for {case.model}.")
        lines.append(_not_in_grid(conv, case, key))
    if rec:
        rc = next((c for c in cands if c.get("id") == rec), None)
        if rc is not None and not any(c.get("id") == rec for c in measured):
            lines.append(f"The recommendation is {candidate_line(rc, base)}.")
    if tech.try_phrase:
        lines.append(f'To measure {name} anyway, ask for it, e.g. "{tech.try_phrase}".')
    return answer("\n".join(line for line in lines if line), "answered")


def _not_in_grid(conv: Conversation, case: Case, key: str) -> str:
    inspection = conv.log.inspection(case.model) or {}
    ops = sorted({str(la.get("op_type")) for la in inspection.get("layers", [])})
    return not_in_grid(key, case.model, ops)


def explain_choice(conv: Conversation, case: Case) -> BrainStep:
    """Why the last answer is what it is: the tools' reason, the candidates and why the others were not built."""
    view = case.report
    if view is None:
        return answer(tried(conv, case), "answered")
    report, base = view.report, view.baseline
    verdict = conv.earlier.verdict_record(case.job_id)
    last = verdict.result if verdict is not None and verdict.result is not None else view.result
    if "recommendation" in last:
        reason = str(last["recommendation"].get("reason", ""))
        feasible = list(last["recommendation"].get("feasible") or [])
    else:
        reason = str(report.get("reason", ""))
        feasible = [report["recommended"]] if report.get("recommended") else []
    lines = [f"The sweep's reason (job {case.job_id}, goal: {describe_goal(case.goal or {})}): {reason}"]
    if feasible:
        lines.append(f"Candidates that meet the goal: {', '.join(feasible)}.")
    if view.measured:
        lines.append("Measured:")
        lines.extend(f"- {candidate_line(c, base)}" for c in view.measured)
    lines.extend(workflow_lines(conv, case.model, view, explain=True)[-1:])
    return answer("\n".join(lines), "answered")


def verdict_answer(
    conv: Conversation,
    model: str,
    view: ReportView,
    *,
    lead: str,
    fresh: bool,
    recommend: dict[str, Any] | None = None,
    explain: bool = False,
) -> BrainStep:
    """The answer for a goal: the recommended candidate against the original and why, or that the goal cannot be
    met, the nearest candidates and what they miss; with ``fresh`` how the sweep went, and the files.

    ``view`` is the sweep's report; ``recommend`` a recommend result that re-ranked it for a new goal (its verdict
    is the one given).
    """
    report, job_id, base = view.report, view.job_id, view.baseline
    cands = {c.get("id"): c for c in view.candidates}
    if recommend is not None:
        rec_obj = recommend.get("recommendation", {})
        goal = recommend.get("goal") or {}
        cid = rec_obj.get("recommended")
        reason = str(rec_obj.get("reason", ""))
        nearest = rec_obj.get("nearest") or []
        feasible = rec_obj.get("feasible") or []
    else:
        goal = report.get("goal") or {}
        cid = report.get("recommended")
        reason = str(report.get("reason", ""))
        nearest = report.get("nearest") or []
        feasible = [cid] if cid else []
    desc = describe_goal(goal)
    has_limits = bool(goal.get("has_constraints"))
    lines: list[str] = []
    if lead:
        lines.append(lead.strip())
    if cid:
        c = cands.get(cid, {})
        if has_limits:
            lines.append(f"**{model}: goal met.** {cid} meets every limit of your goal ({desc}).")
        else:
            lines.append(f"**{model}:** I recommend {cid} (your goal: {desc}).")
        lines.append(f"- Recommended: {candidate_line(c, base)}.")
        lines.append(f"- Compared with {baseline_line(model, base)}.")
        lines.append(f"- Why: {reason}")
        if len(feasible) > 1:
            lines.append(f"- {len(feasible)} measured candidates meet the goal: {', '.join(feasible)}.")
    else:
        lines.append(f"**{model}: your goal cannot be met** ({desc}). {reason}")
        if nearest:
            lines.append("Nearest candidates:")
            for n in nearest:
                c = cands.get(n.get("candidate_id"), {"id": n.get("candidate_id")})
                misses = "; ".join(str(x.get("text", "")) for x in n.get("misses", []))
                lines.append(f"- {candidate_line(c, base)}; misses: {misses}.")
        why = _why_unmet(nearest, list(cands.values()), base)
        if why:
            lines.append(why)
        lines.append(f"For comparison, {baseline_line(model, base)}.")
    if fresh:
        lines.extend(workflow_lines(conv, model, view, explain=explain))
    unparsed = [w for w in (goal.get("unparsed_words") or []) if w not in ("model", "file")]
    if unparsed:
        lines.append(f"Words I did not use from your request: {', '.join(unparsed)}.")
    files = files_for(conv.log, job_id, cid or (nearest[0].get("candidate_id") if nearest else None))
    ft = files_text(files, nearest=not cid)
    if ft:
        lines.append(ft)
    outcome: Outcome = "met" if cid else "not_met"
    return answer("\n".join(lines), outcome)


def _why_unmet(nearest: list[dict[str, Any]], cands: list[dict[str, Any]], base: dict[str, Any]) -> str:
    """What the measurements say about the limits the nearest candidate misses."""
    ok = [c for c in cands if c.get("metrics")]
    if not nearest or not ok:
        return ""
    missed = {str(x.get("constraint")) for x in nearest[0].get("misses", [])}
    parts: list[str] = []
    if missed & {"max_size_mb", "max_size_ratio"}:
        small = min(ok, key=lambda c: (c["metrics"]["size_bytes"], c["id"]))
        parts.append(
            f"the smallest model measured is {small['id']} at {format_bytes(small['metrics']['size_bytes'])}"
        )
    if "max_accuracy_drop_pct" in missed:
        drops = [c for c in ok if finite(c["metrics"].get("accuracy_drop_pct")) is not None]
        if drops:
            best = min(drops, key=lambda c: (c["metrics"]["accuracy_drop_pct"], c["id"]))
            parts.append(
                f"the most accurate candidate measured is {best['id']} with "
                f"{fmt_drop(best['metrics']['accuracy_drop_pct'])}"
            )
    if missed & {"max_latency_ms", "min_speedup", "faster_than_original"}:
        timed = [c for c in ok if finite(c["metrics"].get("latency_ms_p50")) is not None]
        if timed and finite(base.get("latency_ms_p50")) is not None:
            fast = min(timed, key=lambda c: (c["metrics"]["latency_ms_p50"], c["id"]))
            parts.append(
                f"the fastest candidate measured is {fast['id']} at p50 "
                f"{fmt_ms(fast['metrics']['latency_ms_p50'])} (the original: {fmt_ms(base['latency_ms_p50'])})"
            )
    if "measured" in missed:
        parts.append("the nearest candidates failed to build or run")
    return ("Why: " + "; ".join(parts) + ".") if parts else ""


def workflow_lines(conv: Conversation, model: str, view: ReportView, *, explain: bool) -> list[str]:
    """How the answer was found: the model, its most sensitive layer, and what the search measured and skipped."""
    lines: list[str] = []
    report = view.report
    insp = conv.log.latest("inspect_model", args={"model": model})
    if insp is not None and insp.text:
        lines.append(f"Model: {insp.text}")
    profile = conv.log.profile(model)
    if profile is not None:
        layers = profile.get("layers") or []
        if layers and finite(layers[0].get("sqnr_db")) is not None:
            first = layers[0]
            lines.append(
                f"Sensitivity: the layer int8 hurts most is {first.get('name')} ({first.get('op_type')}, "
                f"SQNR {float(first['sqnr_db']):.1f} dB; lower means more error)."
            )
    skipped = report.get("skipped_reasons") or {}
    wall = finite(report.get("wall_seconds"))
    search = (
        f"Search: {report.get('evaluations', 0)} of {report.get('grid_size', 0)} candidates measured"
        + (f" in {wall:.1f} s" if wall is not None else "")
        + f", {len(report.get('front') or [])} on the Pareto front"
    )
    failed = [c for c in view.candidates if not c.get("metrics")]
    if failed:
        search += f", {len(failed)} failed ({', '.join(str(c.get('id')) for c in failed)})"
    if skipped:
        groups: dict[str, list[str]] = {}
        for sid, why in skipped.items():
            groups.setdefault(str(why), []).append(str(sid))
        shown = [f"{', '.join(ids)}: {why}" for why, ids in list(groups.items())[: 4 if not explain else 10]]
        search += f"; {len(skipped)} not built because they could not win (" + "; ".join(shown) + ")"
    lines.append(search + ".")
    return lines
