"""The short answer the page shows for a result, written from the report's numbers: the verdict, why in two or
three sentences, what the recommendation costs (slower, more memory), how it was calibrated, what the search
measured and skipped, and what failed. Pure functions (no Streamlit), so each sentence is testable.

One format per quantity, in the user's units: sizes as the user wrote the limit ("40 KB", not "0.04 MB") and
otherwise :func:`optimizer.units.format_bytes`; accuracy-like metrics as percentages ("98.33%") everywhere the page
shows them (text, tables, tooltips); accuracy loss in points, called "%" when the user wrote "%".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from assistant.techniques import describe_recipe
from optimizer.search.pareto import ParetoReport
from optimizer.types import Candidate, Goal, Metrics
from optimizer.units import format_bytes

__all__ = [
    "Calibration",
    "cost_notes",
    "failure_lines",
    "goal_text",
    "is_accuracy_like",
    "loss_text",
    "metric_text",
    "progress_view",
    "result_summary",
    "search_line",
    "shown_text",
    "size_text",
]

_ACCURACY_LIKE = ("top1", "top5", "acc", "match", "agreement", "f1")
#: past these ratios against the original a cost is stated in the summary; below them it is within the noise of
#: latency measured on a shared machine (the candidates were re-measured side by side with the original)
SLOWER_RATIO = 1.10
MORE_MEMORY_RATIO = 1.10
_SIZE_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(kib|mib|gib|kb|mb|gb|k|m|bytes|byte|b)\b", re.IGNORECASE)
_UNIT_BYTES = {
    "b": 1.0,
    "byte": 1.0,
    "bytes": 1.0,
    "k": 1e3,
    "kb": 1e3,
    "mb": 1e6,
    "m": 1e6,
    "gb": 1e9,
    "kib": 1024.0,
    "mib": 1024.0**2,
    "gib": 1024.0**3,
}
_UNIT_SPELLING = {
    "k": "KB",
    "m": "MB",
    "kb": "KB",
    "mb": "MB",
    "gb": "GB",
    "kib": "KiB",
    "mib": "MiB",
    "gib": "GiB",
}


# --------------------------------------------------------------------------- quantities


def is_accuracy_like(metric_name: str) -> bool:
    return any(k in metric_name.lower() for k in _ACCURACY_LIKE)


def metric_text(metric_name: str, value: float | None) -> str:
    """An accuracy-like metric in 0..1 as a percentage (``98.33%``), any other metric with four decimals."""
    if value is None or not math.isfinite(value):
        return "not measured"
    if is_accuracy_like(metric_name) and 0.0 <= value <= 1.0:
        return f"{value * 100:.2f}%"
    return f"{value:.4f}"


def _percent_word(goal: Goal | None) -> str:
    """``%`` when the user wrote the accuracy loss in percent, else ``pt``."""
    text = (goal.text if goal else "") or ""
    return "pt" if re.search(r"\bp(?:oin)?ts?\b|percentage points?", text, re.I) else "%"


def loss_text(drop_pct: float | None, goal: Goal | None = None) -> str:
    """The accuracy a candidate loses against the original, in points (``%`` when the user wrote ``%``)."""
    if drop_pct is None or not math.isfinite(drop_pct):
        return "accuracy loss not measured"
    unit = _percent_word(goal)
    if abs(drop_pct) < 0.005:
        return "no accuracy loss"
    if drop_pct < 0:
        return f"{-drop_pct:.2f}{unit if unit == '%' else ' pt'} more accurate"
    return f"{drop_pct:.2f}{unit if unit == '%' else ' pt'} accuracy loss"


def size_text(n_bytes: float, goal: Goal | None = None) -> str:
    """A size as the user wrote the size limit (``0.5 MB`` stays MB), else decimal units (``37 KB``)."""
    unit = _user_size_unit(goal)
    if unit is None:
        return format_bytes(n_bytes)
    spelled, scale = unit
    value = n_bytes / scale
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return f"{text} {spelled}"


def _user_size_unit(goal: Goal | None) -> tuple[str, float] | None:
    """The unit the user wrote the size limit in, when their words hold a size that is the goal's limit."""
    if goal is None or goal.max_size_mb is None or not goal.text:
        return None
    limit = goal.max_size_mb * 1e6
    for m in _SIZE_RE.finditer(goal.text):
        unit = m.group(2).lower()
        value = float(m.group(1).replace(",", "."))
        if math.isclose(value * _UNIT_BYTES[unit], limit, rel_tol=0.02):
            return _UNIT_SPELLING.get(unit, "bytes" if unit.startswith("b") else unit), _UNIT_BYTES[unit]
    return None


def _ms(v: float) -> str:
    return f"{v:.3g} ms" if v < 100 else f"{v:.0f} ms"


def goal_text(goal: Goal | None, baseline: Metrics | None = None) -> str:
    """The limits of a goal in words, in the user's units: ``under 40 KB, at most 1% accuracy loss``."""
    if goal is None:
        return "no limits"
    parts: list[str] = []
    if goal.max_size_mb is not None:
        parts.append(f"under {size_text(goal.max_size_mb * 1e6, goal)}")
    if goal.max_size_ratio is not None:
        ratio = f"at most {goal.max_size_ratio * 100:g}% of the original size"
        if baseline is not None:
            ratio += f" ({size_text(goal.max_size_ratio * baseline.size_bytes, goal)})"
        parts.append(ratio)
    if goal.max_accuracy_drop_pct is not None:
        unit = _percent_word(goal)
        value = f"{goal.max_accuracy_drop_pct:g}"
        parts.append(f"at most {value}{unit if unit == '%' else ' pt'} accuracy loss")
    if goal.max_latency_ms is not None:
        parts.append(f"p50 latency under {_ms(goal.max_latency_ms)}")
    if goal.min_speedup is not None:
        parts.append(f"at least {goal.min_speedup:g}x faster")
    if goal.precision:
        parts.append(f"{goal.precision} only")
    if not parts:
        return {
            "size": "as small as possible",
            "latency": "as fast as possible",
            "accuracy": "as accurate as possible",
        }.get(goal.objective, "the best balance of size, accuracy and speed")
    return ", ".join(parts)


def _label(c: Candidate) -> str:
    return describe_recipe(c.recipe.model_dump(mode="json"))


def _times(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else ""


# --------------------------------------------------------------------------- the sentences


def cost_notes(c: Candidate, baseline: Metrics) -> list[str]:
    """What a candidate costs against the original beyond the noise: slower, more memory (empty when nothing).

    A report field that flags it (the speed work's ``detail['slower']`` / ``detail['more_memory']``) wins over the
    ratios measured here.
    """
    m = c.metrics
    if m is None:
        return []
    notes: list[str] = []
    slower = c.detail.get("slower")
    if slower is None and m.latency_ms_p50 and baseline.latency_ms_p50:
        slower = m.latency_ms_p50 > baseline.latency_ms_p50 * SLOWER_RATIO
    if slower and m.latency_ms_p50 and baseline.latency_ms_p50:
        notes.append(
            f"It is slower than the original: p50 latency {_ms(m.latency_ms_p50)} against "
            f"{_ms(baseline.latency_ms_p50)} ({_times(m.latency_ms_p50, baseline.latency_ms_p50)})."
        )
    more = c.detail.get("more_memory")
    if more is None and m.peak_memory_bytes and baseline.peak_memory_bytes:
        more = m.peak_memory_bytes > baseline.peak_memory_bytes * MORE_MEMORY_RATIO
    if more and m.peak_memory_bytes and baseline.peak_memory_bytes:
        notes.append(
            f"It uses more memory than the original: peak {format_bytes(m.peak_memory_bytes)} against "
            f"{format_bytes(baseline.peak_memory_bytes)}."
        )
    return notes


def _first_sentence(text: str, limit: int = 200) -> str:
    one = " ".join(text.split())
    cut = re.split(r"(?<=[.;])\s", one, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[: limit - 1] + "…"


def failure_lines(report: ParetoReport, limit: int = 4) -> list[str]:
    """One line per failed candidate with its cause (the first ``limit``, then how many more)."""
    failed = report.failed
    lines = [
        f"{c.id} ({_label(c)}) failed: "
        + (
            _first_sentence(c.error.message).rstrip(".") + f" (`{c.error.code}`)."
            if c.error
            else "no result."
        )
        for c in failed[:limit]
    ]
    if len(failed) > limit:
        lines.append(f"… and {len(failed) - limit} more failed (see every candidate below).")
    return lines


_SKIP_GROUPS: tuple[tuple[str, str], ...] = (
    ("time budget", "left out by the time budget"),
    ("cancelled", "cancelled with the sweep"),
    ("PyTorch model", "need the PyTorch model"),
    ("excluded by the goal", "excluded by your goal"),
    ("predicted size", "predicted to break the size limit"),
    ("QAT and INC", "training repairs (QAT, INC) not needed: int8 keeps the accuracy"),
    ("pruning", "pruning not needed: quantization meets the goal"),
)


def _skip_group(reason: str) -> str:
    for key, words in _SKIP_GROUPS:
        if key.lower() in reason.lower():
            return words
    return "could not beat what was measured"


def search_line(report: ParetoReport, *, budget_s: float | None = None) -> str:
    """What the search did, one line, the counts every other place on the page uses: measured (failed) of the
    search space, and what was not built, grouped by why."""
    failed = len(report.failed)
    text = f"Measured {report.evaluations} of {report.grid_size} candidates"
    if failed:
        text += f" ({failed} failed)"
    if report.wall_seconds is not None:
        text += f" in {report.wall_seconds:.0f} s"
    if budget_s is not None:
        text += f" (time budget {budget_s:g} s)"
    skipped = report.skipped_reasons or {sid: "" for sid in report.skipped}
    if skipped:
        groups: dict[str, int] = {}
        for reason in skipped.values():
            key = _skip_group(reason)
            groups[key] = groups.get(key, 0) + 1
        text += f"; not built: {len(skipped)} (" + "; ".join(f"{n} {why}" for why, n in groups.items()) + ")"
    return text + "."


@dataclass(frozen=True)
class Calibration:
    """What the sweep calibrated int8 on: a file the user gave, the zoo case's own set, or the first samples of
    the evaluation data."""

    source: str  # "file", "zoo" or "eval_head"
    name: str = ""
    samples: int | None = None

    def sentence(self) -> str:
        if self.source == "file":
            count = f" ({self.samples} samples)" if self.samples else ""
            return f"Calibrated on your calibration file {self.name}{count}."
        if self.source == "zoo":
            return f"Calibrated on {self.name}'s own calibration set."
        n = f"{self.samples} " if self.samples else ""
        return (
            f"Calibrated on the first {n}evaluation samples (no calibration file was given; upload one in the "
            "sidebar to calibrate on other data)."
        )


def _why(report: ParetoReport, c: Candidate) -> str:
    """Why this candidate, in one sentence."""
    goal = report.goal
    base = report.baseline
    feasible = [cid for cid, misses in report.misses.items() if not misses] if report.misses else [c.id]
    measured = report.evaluations - len(report.failed)
    objective = goal.objective if goal else "balanced"
    best = {
        "size": "the smallest",
        "latency": "the fastest",
        "accuracy": "the most accurate",
    }.get(objective, "the best balance of size, accuracy and speed")
    m = c.metrics
    if m is None:
        return ""
    against = f"{_times(base.size_bytes, m.size_bytes)} smaller than the original {size_text(base.size_bytes, goal)}"
    if goal is not None and goal.has_constraints:
        if len(feasible) <= 1:
            head = f"it is the only one of the {measured} measured candidates within your limits ({goal_text(goal, base)})"
        else:
            head = f"it is {best} of the {len(feasible)} measured candidates within your limits ({goal_text(goal, base)})"
    else:
        head = f"it is {best} of the {measured} measured candidates"
    return f"Why: {head}; {against}, with {loss_text(m.accuracy_drop_pct, goal)}."


def result_summary(
    report: ParetoReport,
    *,
    calibration: Calibration | None = None,
    budget_s: float | None = None,
) -> str:
    """The answer to show for a report, as markdown: the verdict and the candidate, why in a sentence, what it
    costs, how it was calibrated, what the search did, and what failed. Raises nothing."""
    goal = report.goal
    base = report.baseline
    model = report.model.rsplit("/", 1)[-1]
    lines: list[str] = []
    rec = next((c for c in report.candidates if c.id == report.recommended), None)
    if rec is not None and rec.metrics is not None:
        m = rec.metrics
        verdict = "goal met" if goal is not None and goal.has_constraints else "recommended"
        lines.append(
            f"**{model}: {verdict}.** {rec.id} ({_label(rec)}): {size_text(m.size_bytes, goal)}, "
            f"{base.metric_name} {metric_text(base.metric_name, m.metric)} against "
            f"{metric_text(base.metric_name, base.metric)} for the original."
        )
        lines.append(_why(report, rec))
        notes = cost_notes(rec, base)
    else:
        lines.append(f"**{model}: your goal cannot be met** ({goal_text(goal, base)}).")
        near = next(
            (c for c in report.candidates if report.nearest and c.id == report.nearest[0].candidate_id), None
        )
        if near is not None and near.metrics is not None:
            misses = "; ".join(x.text for x in report.nearest[0].misses)
            lines.append(
                f"Nearest: {near.id} ({_label(near)}), {size_text(near.metrics.size_bytes, goal)}, "
                f"{base.metric_name} {metric_text(base.metric_name, near.metrics.metric)}; it misses: {misses}."
            )
            notes = cost_notes(near, base)
        else:
            lines.append("No candidate was measured successfully.")
            notes = []
    bullets = [*notes]
    if calibration is not None:
        bullets.append(calibration.sentence())
    bullets.append(search_line(report, budget_s=budget_s))
    bullets.extend(failure_lines(report))
    return "\n\n".join(lines) + "\n\n" + "\n".join(f"- {b}" for b in bullets)


# --------------------------------------------------------------------------- the brain's own text


_TOOL_WORDS = {
    "list_zoo": "the zoo",
    "list_models": "the stored models",
    "list_data": "the data files",
    "register_model": "storing the model",
    "register_data": "storing the data",
    "inspect_model": "inspecting the model",
    "parse_goal": "reading the goal",
    "profile_layers": "ranking the layers",
    "run_sweep": "the sweep",
    "get_job": "checking the sweep",
    "get_pareto_report": "the report",
    "recommend": "re-ranking",
    "get_artifact": "the files",
    "cancel_job": "cancelling",
    "list_jobs": "the jobs",
}
_SERVER_PATH = re.compile(r"(?<![\w.])(?:/[\w.@+-]+){2,}/?")


def shown_text(text: str) -> str:
    """The brain's answer as the page shows it: the files are download buttons (no "Files: ..." line, no server
    paths or download routes), and no internal tool names (the steps above name what was done)."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("Files:", "Tool calls in this conversation", "Saved:", "Not saved:")):
            continue
        line = _SERVER_PATH.sub("(on the server)", line)
        for name, words in _TOOL_WORDS.items():
            line = re.sub(rf"`?\b{name}\b`?", words, line)
        kept.append(line)
    return "\n".join(kept).strip()


# --------------------------------------------------------------------------- progress


_PHASES = {
    "queued": "Waiting for a free worker",
    "baseline": "Measuring the original model",
    "profiled": "Ranked the layers by sensitivity",
    "remeasured": "Re-measuring the finalists' latency side by side",
}


def progress_view(phase: str, done: int, planned: int, elapsed_s: float | None = None) -> tuple[float, str]:
    """The bar's fraction and words for a sweep's progress: never a bare ``0/17``. Phases before the trials
    move the bar a little, so it never sits at zero while the original is measured and layers are ranked."""
    if phase in ("trial", "skipped", "running"):
        frac = 0.08 + 0.87 * (min(done / planned, 1.0) if planned else 0.0)
        text = (
            f"Measured {done} of {planned} planned candidates" if planned else f"Measured {done} candidates"
        )
    elif phase in ("finished", "succeeded"):
        frac, text = 1.0, f"Done: measured {done} candidate{'s' if done != 1 else ''}"
    elif phase == "remeasured":
        frac, text = 0.97, _PHASES[phase]
    elif phase == "profiled":
        frac, text = 0.08, _PHASES[phase]
    else:
        frac, text = 0.03, _PHASES.get(phase, phase.replace("_", " ").capitalize() or "Starting")
    if elapsed_s is not None:
        text += f" · {elapsed_s:.0f} s"
    return frac, text
