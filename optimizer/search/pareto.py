"""The Pareto front of measured candidates, how each one meets a goal, and the one to recommend.

Pure functions over :class:`~optimizer.types.Candidate` values: no I/O, no model loading, no heavy imports.

Every objective is minimised: size on disk, accuracy drop (percentage points against the original) and median
latency. Failed candidates stay in the report as data but never enter the front or the recommendation.

How a recommendation is chosen (:func:`recommend`):

1. *Allowed*: the goal's precision and methods filter recipes (:func:`allowed`, :func:`recipe_methods`).
2. *Feasible*: :func:`check_goal` finds no missed limit. A goal about speed (a latency limit, a minimum
   speed-up or the ``latency`` objective) also rules out every candidate that is not faster than the original.
   Where a candidate was re-measured side by side with the original (``Candidate.speed``), speed is judged by
   the confidence interval of its speed-up, never by the point estimate: it is *faster* only when the whole
   interval is above 1.0x, and it meets ``min_speedup`` only when the interval's lower end does. A candidate
   not re-measured is judged by its trial p50 (provisional: the sweep re-measures what it recommends).
3. *Objective* among the feasible ones: ``size`` -> smallest; ``latency`` -> lowest p50; ``accuracy`` ->
   lowest drop; ``balanced`` -> among the feasible candidates on the Pareto front of the feasible set, the
   lowest ``size / original size + p50 / original p50 + max(drop, 0) / max(drop limit or 1, 0.1)`` (the
   latency term only when latency was measured; with an interval it is ``1 / speed-up``, and exactly 1 when
   the interval contains 1.0x). The drop term is scaled by the allowed drop so that spending the whole
   allowance costs as much as keeping the original size. Ties go to the smaller, then the lower drop, then the
   lower id. For a goal that does not mention speed, among candidates equal on what the objective ranks (size
   within 2%, drop within 0.1 pt) one that is not measured slower is preferred.
4. No feasible candidate: nothing is recommended; the (up to) three nearest allowed candidates are returned
   with how far each misses (:class:`Nearest`).
5. *Caveats*: a recommended candidate measured slower than the original (its interval below 1.0x) or using
   more peak memory is flagged in the first sentence of the reason and in ``Recommendation.caveats``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from optimizer.errors import NotFoundError
from optimizer.types import Candidate, Frozen, Goal, Metrics, SensitivityReport
from optimizer.units import format_bytes  # the one byte formatter (re-exported for the report's readers)

__all__ = [
    "OBJECTIVES",
    "Caveat",
    "ConstraintMiss",
    "MeasurementInfo",
    "Nearest",
    "ParetoReport",
    "Recommendation",
    "allowed",
    "build_report",
    "check_goal",
    "drop_limit_pct",
    "format_bytes",
    "goal_misses",
    "is_speed_goal",
    "pareto_front",
    "recipe_methods",
    "recipe_precision",
    "recommend",
    "size_limit_bytes",
    "speed_verdict",
]

OBJECTIVES: tuple[str, ...] = ("size_bytes", "accuracy_drop_pct", "latency_ms_p50")
"""The Metrics fields the front is computed on; every one is minimised."""

_MB = 1_000_000  # the goal's megabytes are decimal, like the sizes people read in file browsers
_NEAREST = 3
_MISSING_SCORE = 1.0  # an unmeasured metric counts like missing a limit by 100 %
#: more peak memory than the original is flagged past this ratio and this many bytes (fresh-process numbers are
#: exact to the page, so the margins only keep allocator rounding from being reported)
MEMORY_MARGIN_RATIO = 1.10
MEMORY_MARGIN_BYTES = 64 * 1024
#: a candidate not re-measured side by side is flagged as slower only past this trial-p50 ratio
_TRIAL_SLOWER_RATIO = 1.25
#: "equal" for the preference among equals (goals that do not mention speed)
_EQUAL_SIZE_RATIO = 0.02
_EQUAL_DROP_PT = 0.1

Objective = Literal["size", "latency", "accuracy", "balanced"]


# --------------------------------------------------------------------------- formatting


def _fmt_limit(x: float) -> str:
    """Limits as people wrote them: 1 -> ``1.0``, 0.25 -> ``0.25``."""
    return f"{x:.1f}" if round(x, 1) == x else f"{x:g}"


def _fmt_ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 100 else f"{x:.0f} ms"


# --------------------------------------------------------------------------- the front


def _value(metrics: Metrics, objective: str) -> float | None:
    v = getattr(metrics, objective, None)
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _point(candidate: Candidate, objectives: Sequence[str]) -> tuple[float, ...] | None:
    if not candidate.ok or candidate.metrics is None:
        return None
    values = [_value(candidate.metrics, o) for o in objectives]
    if any(v is None for v in values):
        return None
    return tuple(v for v in values if v is not None)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def _size_id(candidate: Candidate) -> tuple[float, str]:
    size = candidate.metrics.size_bytes if candidate.metrics is not None else math.inf
    return (float(size), candidate.id)


def pareto_front(candidates: Sequence[Candidate], objectives: Sequence[str] = OBJECTIVES) -> list[str]:
    """Ids of the candidates no other candidate dominates, every objective minimised, ordered by size then id.

    A candidate dominates another when it is no worse on every objective and better on at least one, so
    identical points are all on the front. Failed candidates and candidates missing a value for any of the
    ``objectives`` are left out (never an error). Raises nothing.
    """
    points = [(c, p) for c in candidates if (p := _point(c, objectives)) is not None]
    front = [c for c, p in points if not any(_dominates(q, p) for _, q in points)]
    return [c.id for c in sorted(front, key=_size_id)]


def _measured_objectives(candidates: Sequence[Candidate]) -> tuple[str, ...]:
    """The objectives at least one successful candidate has a value for (an unmeasured one cannot rank)."""
    measured = tuple(
        o
        for o in OBJECTIVES
        if any(c.ok and c.metrics is not None and _value(c.metrics, o) is not None for c in candidates)
    )
    return measured or OBJECTIVES[:1]


# --------------------------------------------------------------------------- recipes against the goal


def recipe_methods(recipe: Any) -> set[str]:
    """The compression methods a recipe uses, as its technique registers them (a chain: its steps')."""
    from optimizer.techniques.registry import recipe_methods as methods

    return methods(recipe)


def recipe_precision(recipe: Any) -> str | None:
    """The numeric precision a recipe produces (``int8``, ``int4``, ``fp16``) or None (e.g. pruning alone); for a
    chained recipe, its last quantizing step's. From the technique registry."""
    from optimizer.techniques.registry import recipe_precision as precision

    return precision(recipe)


def allowed(candidate: Candidate, goal: Goal | None) -> bool:
    """False when the goal's precision or methods exclude the candidate's recipe. Raises nothing.

    ``precision`` keeps only recipes of exactly that precision (a recipe with none, such as pruning alone, is
    excluded); ``precision_forbidden`` drops recipes of a listed precision; ``methods_allowed`` keeps recipes
    whose every method is listed (``quantize`` lets QAT through, and ``qat`` lets through the ``quantize`` a
    QAT recipe also counts as: :meth:`Goal.allowed_methods`), and drops a recipe that uses no method at all (a
    graph rewrite alone); ``methods_forbidden`` drops recipes that use any
    listed method (``qat`` drops only the training-based recipes).
    """
    if goal is None:
        return True
    precision = recipe_precision(candidate.recipe)
    if goal.precision is not None and precision != goal.precision:
        return False
    if goal.precision_forbidden and precision in goal.precision_forbidden:
        return False
    methods = recipe_methods(candidate.recipe)
    if goal.methods_allowed is not None:
        if (
            not methods
        ):  # a graph rewrite alone (offline optimization) uses none of the methods the goal allows
            return False
        permitted = goal.allowed_methods()
        if "qat" in goal.methods_allowed and "qat" in methods:
            permitted.add("quantize")
        if not methods <= permitted:
            return False
    return not (goal.methods_forbidden and methods & set(goal.methods_forbidden))


def is_speed_goal(goal: Goal | None) -> bool:
    """Whether the goal is about speed: a latency limit, a minimum speed-up, a latency to cut (in ms, or a
    ``max_latency_ratio`` below 1) or the ``latency`` objective. A bound on how much slower a candidate may be
    (``max_latency_ratio`` of at least 1, ``max_latency_increase_ms``) is not: it allows a slower model."""
    if goal is None:
        return False
    return (
        goal.max_latency_ms is not None
        or goal.min_speedup is not None
        or goal.min_latency_reduction_ms is not None
        or (goal.max_latency_ratio is not None and goal.max_latency_ratio < 1)
        or goal.objective == "latency"
    )


def _has_limits(goal: Goal | None) -> bool:
    return goal is not None and goal.has_constraints


def size_limit_bytes(goal: Goal | None, baseline: Metrics) -> float | None:
    """The absolute size limit in bytes: the tightest of ``max_size_mb``, ``max_size_ratio`` x original and
    original - ``min_size_reduction_mb`` (never below 0)."""
    if goal is None:
        return None
    limits = []
    if goal.max_size_mb is not None:
        limits.append(goal.max_size_mb * _MB)
    if goal.max_size_ratio is not None:
        limits.append(goal.max_size_ratio * baseline.size_bytes)
    if goal.min_size_reduction_mb is not None:
        limits.append(max(baseline.size_bytes - goal.min_size_reduction_mb * _MB, 0.0))
    return min(limits) if limits else None


def drop_limit_pct(goal: Goal | None, baseline: Metrics) -> float | None:
    """The accuracy limit as the most metric points a candidate may lose: the tightest of
    ``max_accuracy_drop_pct``, (original - ``min_metric``) x 100 and original x (1 - ``min_metric_ratio``) x 100
    (a floor above the original gives a negative limit: only a gain meets it). A floor needs the original's
    measured metric; without it only ``max_accuracy_drop_pct`` counts. Raises nothing."""
    if goal is None:
        return None
    limits = []
    if goal.max_accuracy_drop_pct is not None:
        limits.append(goal.max_accuracy_drop_pct)
    base = _value(baseline, "metric")
    if base is not None:
        if goal.min_metric is not None:
            limits.append((base - goal.min_metric) * 100.0)
        if goal.min_metric_ratio is not None and base > 0:
            limits.append(base * (1.0 - goal.min_metric_ratio) * 100.0)
    return min(limits) if limits else None


# --------------------------------------------------------------------------- checking one candidate


class ConstraintMiss(Frozen):
    """One limit of the goal a candidate does not meet, and by how much."""

    constraint: str = Field(
        description="the goal field (max_size_mb, max_size_ratio, min_size_reduction_mb, max_memory_mb, "
        "max_accuracy_drop_pct, min_metric, min_metric_ratio, max_latency_ms, min_speedup, max_latency_ratio, "
        "max_latency_increase_ms, min_latency_reduction_ms) or faster_than_original (speed goals) or measured "
        "(the candidate failed)"
    )
    limit: float | None = Field(description="the limit, in ``unit``")
    value: float | None = Field(
        description="what the candidate measured, in ``unit``; null when not measured"
    )
    unit: str = Field(description="MB, x, pt, ms or metric (the task metric's own scale)")
    over_by: float | None = Field(
        description="how far past the limit, in ``unit`` (minimums: how far short); null when not measured"
    )
    over_by_pct: float | None = Field(description="``over_by`` as a percentage of the limit")
    text: str = Field(description="one phrase, e.g. 'size 52.1 KB is 12.1 KB over the 40 KB limit'")


class Nearest(Frozen):
    """A candidate that misses the goal, with every miss; ``score`` is the normalised total miss."""

    candidate_id: str
    misses: list[ConstraintMiss]
    score: float = Field(
        description="sum of over_by_pct / 100 over the misses (1 per unmeasured limit); lower = nearer"
    )


def _pct(over: float, limit: float) -> float | None:
    return over / abs(limit) * 100.0 if limit else None


def _unmeasured(constraint: str, limit: float, unit: str, what: str, limit_text: str) -> ConstraintMiss:
    return ConstraintMiss(
        constraint=constraint,
        limit=limit,
        value=None,
        unit=unit,
        over_by=None,
        over_by_pct=None,
        text=f"{what} was not measured, so the {limit_text} cannot be checked",
    )


def _check_size_mb(m: Metrics, limit_mb: float) -> ConstraintMiss | None:
    limit_bytes = limit_mb * _MB
    if m.size_bytes <= limit_bytes:
        return None
    over = m.size_bytes - limit_bytes
    return ConstraintMiss(
        constraint="max_size_mb",
        limit=limit_mb,
        value=m.size_bytes / _MB,
        unit="MB",
        over_by=over / _MB,
        over_by_pct=_pct(over, limit_bytes),
        text=(
            f"size {format_bytes(m.size_bytes)} is {format_bytes(over)} over the "
            f"{format_bytes(limit_bytes)} limit"
        ),
    )


def _check_size_ratio(m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)}x-of-the-original limit"
    if baseline.size_bytes <= 0:
        return _unmeasured("max_size_ratio", limit, "x", "the original's size", limit_text)
    ratio = m.size_bytes / baseline.size_bytes
    if ratio <= limit:
        return None
    return ConstraintMiss(
        constraint="max_size_ratio",
        limit=limit,
        value=ratio,
        unit="x",
        over_by=ratio - limit,
        over_by_pct=_pct(ratio - limit, limit),
        text=(
            f"size {format_bytes(m.size_bytes)} is {ratio:.2f}x the original, "
            f"{format_bytes(m.size_bytes - limit * baseline.size_bytes)} over the {_fmt_limit(limit)}x "
            f"({format_bytes(limit * baseline.size_bytes)}) limit"
        ),
    )


def _check_drop(m: Metrics, limit: float) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)} pt limit"
    drop = _value(m, "accuracy_drop_pct")
    if drop is None:
        return _unmeasured("max_accuracy_drop_pct", limit, "pt", "the accuracy drop", limit_text)
    if drop <= limit:
        return None
    return ConstraintMiss(
        constraint="max_accuracy_drop_pct",
        limit=limit,
        value=drop,
        unit="pt",
        over_by=drop - limit,
        over_by_pct=_pct(drop - limit, limit) if limit else None,
        text=f"accuracy drop {drop:.2f} pt is {drop - limit:.2f} pt over the {limit_text}",
    )


def _check_latency(m: Metrics, limit: float) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)} ms limit"
    p50 = _value(m, "latency_ms_p50")
    if p50 is None:
        return _unmeasured("max_latency_ms", limit, "ms", "latency", limit_text)
    if p50 <= limit:
        return None
    return ConstraintMiss(
        constraint="max_latency_ms",
        limit=limit,
        value=p50,
        unit="ms",
        over_by=p50 - limit,
        over_by_pct=_pct(p50 - limit, limit),
        text=f"latency p50 {_fmt_ms(p50)} is {_fmt_ms(p50 - limit)} over the {limit_text}",
    )


def _interval(c: Candidate) -> str:
    return "" if c.speed is None else c.speed.interval_text


def _check_speedup(c: Candidate, m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)}x minimum speed-up"
    if c.speed is not None:
        # met only when the whole interval clears the limit: a point estimate above it may be noise
        if c.speed.low >= limit:
            return None
        return ConstraintMiss(
            constraint="min_speedup",
            limit=limit,
            value=c.speed.speedup,
            unit="x",
            over_by=limit - c.speed.low,
            over_by_pct=_pct(limit - c.speed.low, limit),
            text=f"speed-up {c.speed.speedup:.2f}x ({_interval(c)}) is not above the {limit_text} "
            f"(the interval's lower end is {limit - c.speed.low:.2f}x short)",
        )
    p50 = _value(m, "latency_ms_p50")
    base = _value(baseline, "latency_ms_p50")
    if p50 is None or p50 <= 0:
        return _unmeasured("min_speedup", limit, "x", "latency", limit_text)
    if base is None:
        return _unmeasured("min_speedup", limit, "x", "the original's latency", limit_text)
    speedup = base / p50
    if speedup >= limit:
        return None
    return ConstraintMiss(
        constraint="min_speedup",
        limit=limit,
        value=speedup,
        unit="x",
        over_by=limit - speedup,
        over_by_pct=_pct(limit - speedup, limit),
        text=f"speed-up {speedup:.2f}x is {limit - speedup:.2f}x short of the {limit_text}",
    )


def _check_not_slower(c: Candidate, m: Metrics, baseline: Metrics) -> ConstraintMiss | None:
    if c.speed is not None:
        sp = c.speed
        if sp.verdict == "faster":
            return None
        how = (
            f"is {1 / sp.speedup:.2f}x slower than the original ({_interval(c)} speed-up)"
            if sp.verdict == "slower"
            else f"is not measurably faster than the original: its speed-up {sp.speedup:.2f}x is within noise "
            f"({_interval(c)} contains 1.0x)"
        )
        return ConstraintMiss(
            constraint="faster_than_original",
            limit=1.0,
            value=sp.speedup,
            unit="x",
            over_by=max(0.0, 1.0 - sp.low),
            over_by_pct=max(0.0, 1.0 - sp.low) * 100.0,
            text=f"it {how}",
        )
    base = _value(baseline, "latency_ms_p50")
    if base is None:  # the original's latency is unknown: there is nothing to compare against
        return None
    p50 = _value(m, "latency_ms_p50")
    if p50 is None:
        return _unmeasured(
            "faster_than_original",
            base,
            "ms",
            "latency",
            f"requirement to be faster than the original ({_fmt_ms(base)})",
        )
    if p50 < base:
        return None
    how = "slower than" if p50 > base else "no faster than"
    return ConstraintMiss(
        constraint="faster_than_original",
        limit=base,
        value=p50,
        unit="ms",
        over_by=p50 - base,
        over_by_pct=_pct(p50 - base, base),
        text=f"latency p50 {_fmt_ms(p50)} is {how} the original ({_fmt_ms(base)})",
    )


def speed_verdict(c: Candidate, baseline: Metrics) -> Literal["faster", "slower", "same", "unknown"]:
    """How the candidate's speed compares with the original's: the verdict of its side-by-side interval, or
    ``unknown`` when it was not re-measured (a trial p50 alone is no basis for a claim). Raises nothing."""
    return c.speed.verdict if c.speed is not None else "unknown"


def _check_size_reduction(m: Metrics, limit_mb: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{format_bytes(limit_mb * _MB)} reduction asked for"
    if baseline.size_bytes <= 0:
        return _unmeasured("min_size_reduction_mb", limit_mb, "MB", "the original's size", limit_text)
    saved = baseline.size_bytes - m.size_bytes
    if saved >= limit_mb * _MB:
        return None
    short = limit_mb * _MB - saved
    said = f"only {format_bytes(saved)} smaller than" if saved > 0 else "not smaller than"
    return ConstraintMiss(
        constraint="min_size_reduction_mb",
        limit=limit_mb,
        value=saved / _MB,
        unit="MB",
        over_by=short / _MB,
        over_by_pct=_pct(short, limit_mb * _MB),
        text=(
            f"size {format_bytes(m.size_bytes)} is {said} the original ({format_bytes(baseline.size_bytes)}), "
            f"{format_bytes(short)} short of the {limit_text}"
        ),
    )


def _check_memory(m: Metrics, limit_mb: float) -> ConstraintMiss | None:
    limit_text = f"{format_bytes(limit_mb * _MB)} memory limit"
    if m.peak_memory_bytes is None:
        return _unmeasured("max_memory_mb", limit_mb, "MB", "peak memory", limit_text)
    if m.peak_memory_bytes <= limit_mb * _MB:
        return None
    over = m.peak_memory_bytes - limit_mb * _MB
    return ConstraintMiss(
        constraint="max_memory_mb",
        limit=limit_mb,
        value=m.peak_memory_bytes / _MB,
        unit="MB",
        over_by=over / _MB,
        over_by_pct=_pct(over, limit_mb * _MB),
        text=f"peak memory {format_bytes(m.peak_memory_bytes)} is {format_bytes(over)} over the {limit_text}",
    )


def _check_min_metric(m: Metrics, limit: float) -> ConstraintMiss | None:
    limit_text = f"{limit:g} floor"
    metric = _value(m, "metric")
    if metric is None:
        return _unmeasured("min_metric", limit, "metric", m.metric_name, limit_text)
    if metric >= limit:
        return None
    return ConstraintMiss(
        constraint="min_metric",
        limit=limit,
        value=metric,
        unit="metric",
        over_by=limit - metric,
        over_by_pct=_pct(limit - metric, limit),
        text=f"{m.metric_name} {metric:.4g} is {limit - metric:.4g} below the {limit_text}",
    )


def _check_metric_ratio(m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)}x-of-the-original floor"
    metric, base = _value(m, "metric"), _value(baseline, "metric")
    if metric is None:
        return _unmeasured("min_metric_ratio", limit, "x", m.metric_name, limit_text)
    if base is None or base <= 0:
        return _unmeasured("min_metric_ratio", limit, "x", f"a positive original {m.metric_name}", limit_text)
    ratio = metric / base
    if ratio >= limit:
        return None
    return ConstraintMiss(
        constraint="min_metric_ratio",
        limit=limit,
        value=ratio,
        unit="x",
        over_by=limit - ratio,
        over_by_pct=_pct(limit - ratio, limit),
        text=(
            f"{m.metric_name} {metric:.4g} is {ratio:.3f}x the original's {base:.4g}, short of the {limit_text} "
            f"({limit * base:.4g})"
        ),
    )


def _latencies(m: Metrics, baseline: Metrics) -> tuple[float | None, float | None]:
    return _value(m, "latency_ms_p50"), _value(baseline, "latency_ms_p50")


def _check_latency_ratio(m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)}x-the-original latency limit"
    p50, base = _latencies(m, baseline)
    if p50 is None:
        return _unmeasured("max_latency_ratio", limit, "x", "latency", limit_text)
    if base is None or base <= 0:
        return _unmeasured("max_latency_ratio", limit, "x", "the original's latency", limit_text)
    ratio = p50 / base
    if ratio <= limit:
        return None
    return ConstraintMiss(
        constraint="max_latency_ratio",
        limit=limit,
        value=ratio,
        unit="x",
        over_by=ratio - limit,
        over_by_pct=_pct(ratio - limit, limit),
        text=(
            f"latency p50 {_fmt_ms(p50)} is {ratio:.2f}x the original's {_fmt_ms(base)}, over the {limit_text} "
            f"({_fmt_ms(limit * base)})"
        ),
    )


def _check_latency_increase(m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)} ms allowed increase"
    p50, base = _latencies(m, baseline)
    if p50 is None:
        return _unmeasured("max_latency_increase_ms", limit, "ms", "latency", limit_text)
    if base is None:
        return _unmeasured("max_latency_increase_ms", limit, "ms", "the original's latency", limit_text)
    increase = p50 - base
    if increase <= limit:
        return None
    return ConstraintMiss(
        constraint="max_latency_increase_ms",
        limit=limit,
        value=increase,
        unit="ms",
        over_by=increase - limit,
        over_by_pct=_pct(increase - limit, limit) if limit else None,
        text=(
            f"latency p50 {_fmt_ms(p50)} is {_fmt_ms(increase)} slower than the original ({_fmt_ms(base)}), "
            f"over the {limit_text}"
        ),
    )


def _check_latency_reduction(m: Metrics, limit: float, baseline: Metrics) -> ConstraintMiss | None:
    limit_text = f"{_fmt_limit(limit)} ms reduction asked for"
    p50, base = _latencies(m, baseline)
    if p50 is None:
        return _unmeasured("min_latency_reduction_ms", limit, "ms", "latency", limit_text)
    if base is None:
        return _unmeasured("min_latency_reduction_ms", limit, "ms", "the original's latency", limit_text)
    saved = base - p50
    if saved >= limit:
        return None
    said = f"only {_fmt_ms(saved)} faster than" if saved > 0 else "not faster than"
    return ConstraintMiss(
        constraint="min_latency_reduction_ms",
        limit=limit,
        value=saved,
        unit="ms",
        over_by=limit - saved,
        over_by_pct=_pct(limit - saved, limit),
        text=(
            f"latency p50 {_fmt_ms(p50)} is {said} the original ({_fmt_ms(base)}), "
            f"{_fmt_ms(limit - saved)} short of the {limit_text}"
        ),
    )


def check_goal(candidate: Candidate, goal: Goal, baseline: Metrics) -> list[ConstraintMiss]:
    """Every limit of ``goal`` the candidate misses; an empty list means it meets them all. Raises nothing.

    Limits: ``max_size_mb`` (1 MB = 1e6 bytes), ``max_size_ratio`` (size / original size),
    ``min_size_reduction_mb`` (original size - size), ``max_memory_mb`` (``Metrics.peak_memory_bytes``),
    ``max_accuracy_drop_pct``, ``min_metric`` (the metric itself), ``min_metric_ratio`` (metric / original
    metric), ``max_latency_ms`` (p50), ``min_speedup`` (original p50 / p50), ``max_latency_ratio`` (p50 /
    original p50), ``max_latency_increase_ms`` (p50 - original p50) and ``min_latency_reduction_ms`` (original
    p50 - p50). A value a limit needs that was not measured (of the candidate or the original) is a miss
    (``value`` and ``over_by`` null). For a speed goal (:func:`is_speed_goal`) a candidate not faster than the
    original misses ``faster_than_original``, unless a missed limit already says so. A failed candidate misses
    ``measured``. With a side-by-side interval (``candidate.speed``) speed is judged by it:
    ``faster_than_original`` needs the interval above 1.0x, ``min_speedup`` needs its lower end at or above the
    limit (see the module docstring).
    """
    m = candidate.metrics
    if not candidate.ok or m is None:
        reason = f"{candidate.error.code}: {candidate.error.message}" if candidate.error else "no metrics"
        return [
            ConstraintMiss(
                constraint="measured",
                limit=None,
                value=None,
                unit="",
                over_by=None,
                over_by_pct=None,
                text=f"the candidate failed ({reason})",
            )
        ]
    checks: list[ConstraintMiss | None] = []
    if goal.max_size_mb is not None:
        checks.append(_check_size_mb(m, goal.max_size_mb))
    if goal.max_size_ratio is not None:
        checks.append(_check_size_ratio(m, goal.max_size_ratio, baseline))
    if goal.min_size_reduction_mb is not None:
        checks.append(_check_size_reduction(m, goal.min_size_reduction_mb, baseline))
    if goal.max_memory_mb is not None:
        checks.append(_check_memory(m, goal.max_memory_mb))
    if goal.max_accuracy_drop_pct is not None:
        checks.append(_check_drop(m, goal.max_accuracy_drop_pct))
    if goal.min_metric is not None:
        checks.append(_check_min_metric(m, goal.min_metric))
    if goal.min_metric_ratio is not None:
        checks.append(_check_metric_ratio(m, goal.min_metric_ratio, baseline))
    if goal.max_latency_ms is not None:
        checks.append(_check_latency(m, goal.max_latency_ms))
    if goal.min_speedup is not None:
        checks.append(_check_speedup(candidate, m, goal.min_speedup, baseline))
    if goal.max_latency_ratio is not None:
        checks.append(_check_latency_ratio(m, goal.max_latency_ratio, baseline))
    if goal.max_latency_increase_ms is not None:
        checks.append(_check_latency_increase(m, goal.max_latency_increase_ms, baseline))
    if goal.min_latency_reduction_ms is not None:
        checks.append(_check_latency_reduction(m, goal.min_latency_reduction_ms, baseline))
    misses = [c for c in checks if c is not None]
    # a missed limit that asks for a faster model already says "slower"; an unmeasured latency is said once
    latency_fields = ("max_latency_ms", "min_speedup", "max_latency_ratio", "max_latency_increase_ms")
    said = any(
        (x.constraint == "min_speedup" and (x.limit or 0) >= 1)
        or (x.constraint == "max_latency_ratio" and (x.limit or 0) <= 1)
        or x.constraint == "min_latency_reduction_ms"
        or (x.constraint in latency_fields and x.value is None)
        for x in misses
    )
    if is_speed_goal(goal) and not said:
        slower = _check_not_slower(candidate, m, baseline)
        if slower is not None:
            misses.append(slower)
    return misses


# --------------------------------------------------------------------------- recommending


class Caveat(Frozen):
    """Something about the recommended candidate that is worse than the original, said with its numbers."""

    kind: Literal["slower", "more_memory"] = Field(
        description="slower: measured slower than the original (its speed-up interval is below 1.0x, or, not "
        "re-measured, its trial p50 is over 1.25x the original's); more_memory: more peak memory than the original"
    )
    text: str = Field(description="a phrase, e.g. 'it measured 1.20x slower than the original (...)'")


class Recommendation(Frozen):
    """The candidate that best answers a goal, or none and how near the best ones came."""

    recommended: str | None
    reason: str = Field(
        description="one plain sentence with the measured numbers; it names any caveat (slower, more memory)"
    )
    feasible: list[str] = Field(description="ids of the candidates that meet every limit, by size then id")
    nearest: list[Nearest] = Field(
        default_factory=list, description="when none is feasible: up to 3 nearest candidates, nearest first"
    )
    caveats: list[Caveat] = Field(
        default_factory=list,
        description="where the recommended candidate is worse than the original (slower, more memory); the "
        "reason's first sentence says the same",
    )


def _num(m: Metrics | None, field: str) -> float:
    if m is None:
        return math.inf
    v = _value(m, field)
    return math.inf if v is None else v


def _miss_score(misses: Sequence[ConstraintMiss]) -> float:
    """Sum of relative misses; a miss against a zero limit counts its absolute amount, an unmeasured one 1."""
    total = 0.0
    for x in misses:
        if x.over_by_pct is not None:
            total += x.over_by_pct / 100.0
        elif x.over_by is not None:
            total += x.over_by
        else:
            total += _MISSING_SCORE
    return total


def _tiebreak(c: Candidate) -> tuple[float, float, str]:
    return (_num(c.metrics, "size_bytes"), _num(c.metrics, "accuracy_drop_pct"), c.id)


def _balanced_score(c: Candidate, baseline: Metrics, goal: Goal | None, objectives: Sequence[str]) -> float:
    m = c.metrics
    if m is None:
        return math.inf
    score = m.size_bytes / baseline.size_bytes if baseline.size_bytes > 0 else 0.0
    p50, base_p50 = _value(m, "latency_ms_p50"), _value(baseline, "latency_ms_p50")
    if "latency_ms_p50" in objectives and c.speed is not None:
        # within the noise the candidate is as fast as the original: no credit and no penalty
        score += 1.0 if c.speed.verdict == "same" else 1.0 / c.speed.speedup
    elif "latency_ms_p50" in objectives and p50 is not None and base_p50:
        score += p50 / base_p50
    drop_limit = drop_limit_pct(goal, baseline)
    scale = max(drop_limit if drop_limit is not None else 1.0, 0.1)
    score += max(_value(m, "accuracy_drop_pct") or 0.0, 0.0) / scale
    return score


def _pick(
    feasible: Sequence[Candidate], objective: Objective, baseline: Metrics, goal: Goal | None
) -> tuple[Candidate, int]:
    """The best feasible candidate for the objective, and how many it was chosen from."""
    if objective == "size":
        return min(feasible, key=_tiebreak), len(feasible)
    if objective == "latency":
        return min(feasible, key=lambda c: (_num(c.metrics, "latency_ms_p50"), *_tiebreak(c))), len(feasible)
    if objective == "accuracy":
        return min(feasible, key=lambda c: (_num(c.metrics, "accuracy_drop_pct"), *_tiebreak(c))), len(
            feasible
        )
    objectives = _measured_objectives(feasible)
    front_ids = set(pareto_front(feasible, objectives))
    pool = [c for c in feasible if c.id in front_ids] or list(feasible)
    best = min(pool, key=lambda c: (_balanced_score(c, baseline, goal, objectives), *_tiebreak(c)))
    return best, len(pool)


_VERDICT_RANK = {"faster": 0, "same": 1, "unknown": 1, "slower": 2}


def _prefer_not_slower(
    best: Candidate, feasible: Sequence[Candidate], objective: Objective, baseline: Metrics
) -> Candidate:
    """Among the candidates equal to ``best`` on what the objective ranks (size within 2%, drop within 0.1 pt),
    one not measured slower than the original, the faster first (goals that do not mention speed)."""
    if objective == "latency" or best.metrics is None:
        return best
    size, drop = best.metrics.size_bytes, _num(best.metrics, "accuracy_drop_pct")

    def equal(c: Candidate) -> bool:
        if c.metrics is None:
            return False
        d = _num(c.metrics, "accuracy_drop_pct")
        same_drop = d == drop or abs(d - drop) <= _EQUAL_DROP_PT
        same_size = abs(c.metrics.size_bytes - size) <= _EQUAL_SIZE_RATIO * max(size, 1)
        return same_drop and same_size

    equals = [c for c in feasible if equal(c)]
    rank = {c.id: _VERDICT_RANK[speed_verdict(c, baseline)] for c in equals}
    if rank.get(best.id, 1) == 0 or all(r >= rank.get(best.id, 1) for r in rank.values()):
        return best
    return min(equals, key=lambda c: (rank[c.id], *_tiebreak(c)))


def _switch_note(chosen: Candidate, first: Candidate) -> str:
    if chosen.id == first.id:
        return ""
    return (
        f", chosen over {first.id}, which is as small and as accurate (within 2% and 0.1 pt) but measured "
        "slower than the original"
    )


def _caveats(c: Candidate, baseline: Metrics) -> list[Caveat]:
    """Where ``c`` is worse than the original: slower (by its interval, or by a clear margin of its trial p50
    when it was not re-measured) and more peak memory."""
    out: list[Caveat] = []
    m = c.metrics
    if m is None:
        return out
    if c.speed is not None and c.speed.verdict == "slower":
        out.append(
            Caveat(
                kind="slower",
                text=f"it measured {1 / c.speed.speedup:.2f}x slower than the original "
                f"({_interval(c)} speed-up, side by side)",
            )
        )
    elif c.speed is None:
        p50, base = _value(m, "latency_ms_p50"), _value(baseline, "latency_ms_p50")
        if p50 is not None and base and p50 > base * _TRIAL_SLOWER_RATIO:
            out.append(
                Caveat(
                    kind="slower",
                    text=f"it measured {p50 / base:.2f}x slower than the original in its trial "
                    f"(p50 {_fmt_ms(p50)} against {_fmt_ms(base)}; not re-measured side by side)",
                )
            )
    mem, base_mem = m.peak_memory_bytes, baseline.peak_memory_bytes
    if (
        mem is not None
        and base_mem is not None
        and mem > base_mem * MEMORY_MARGIN_RATIO
        and mem - base_mem > MEMORY_MARGIN_BYTES
    ):
        times = f"{mem / base_mem:.1f}x" if base_mem > 0 else "more than"
        out.append(
            Caveat(
                kind="more_memory",
                text=f"it uses {times} the original's peak memory ({format_bytes(mem)} against "
                f"{format_bytes(base_mem)})",
            )
        )
    return out


def _with_caveats(reason: str, caveats: Sequence[Caveat]) -> str:
    """The caveats joined into the reason's one sentence, so the first line an answer shows says them."""
    if not caveats:
        return reason
    texts = [caveats[0].text] + [x.text.removeprefix("it ") for x in caveats[1:]]
    return reason.rstrip(".") + "; but " + " and ".join(texts) + "."


def _name(c: Candidate) -> str:
    label = c.recipe.label
    return c.id if label == c.id else f"{c.id} ({label})"


def _met_limits(c: Candidate, goal: Goal, baseline: Metrics) -> list[str]:
    m = c.metrics
    if m is None:
        return []
    parts: list[str] = []
    size_limit = size_limit_bytes(goal, baseline)
    if size_limit is not None:
        parts.append(f"{format_bytes(m.size_bytes)} <= {format_bytes(size_limit)}")
    if goal.max_memory_mb is not None and m.peak_memory_bytes is not None:
        parts.append(
            f"peak memory {format_bytes(m.peak_memory_bytes)} <= {format_bytes(goal.max_memory_mb * _MB)}"
        )
    drop = _value(m, "accuracy_drop_pct")
    if goal.max_accuracy_drop_pct is not None and drop is not None:
        parts.append(f"drop {drop:.2f} pt <= {_fmt_limit(goal.max_accuracy_drop_pct)} pt")
    metric, base_metric = _value(m, "metric"), _value(baseline, "metric")
    if goal.min_metric is not None and metric is not None:
        parts.append(f"{m.metric_name} {metric:.4g} >= {goal.min_metric:g}")
    if goal.min_metric_ratio is not None and metric is not None and base_metric:
        parts.append(
            f"{m.metric_name} {metric / base_metric:.3f}x the original >= {goal.min_metric_ratio:g}x"
        )
    p50, base = _value(m, "latency_ms_p50"), _value(baseline, "latency_ms_p50")
    if goal.max_latency_ms is not None and p50 is not None:
        parts.append(f"p50 {_fmt_ms(p50)} <= {_fmt_limit(goal.max_latency_ms)} ms")
    if goal.min_speedup is not None and c.speed is not None:
        parts.append(f"speed-up {c.speed.speedup:.2f}x, {_interval(c)}, >= {_fmt_limit(goal.min_speedup)}x")
    elif goal.min_speedup is not None and p50 and base is not None:
        parts.append(f"speed-up {base / p50:.2f}x >= {_fmt_limit(goal.min_speedup)}x")
    elif is_speed_goal(goal) and c.speed is not None:
        parts.append(c.speed.text)
    if goal.max_latency_ratio is not None and p50 is not None and base:
        parts.append(f"p50 {p50 / base:.2f}x the original <= {_fmt_limit(goal.max_latency_ratio)}x")
    if goal.max_latency_increase_ms is not None and p50 is not None and base is not None:
        parts.append(f"p50 {_fmt_ms(p50)} <= original + {_fmt_limit(goal.max_latency_increase_ms)} ms")
    if goal.min_latency_reduction_ms is not None and p50 is not None and base is not None:
        parts.append(f"p50 {_fmt_ms(p50)} <= original - {_fmt_limit(goal.min_latency_reduction_ms)} ms")
    return parts


def _superlative(c: Candidate, objective: Objective, baseline: Metrics) -> str:
    m = c.metrics
    if m is None:  # never: only successful candidates are picked
        return "best"
    drop = _value(m, "accuracy_drop_pct")
    drop_text = "drop not measured" if drop is None else f"drop {drop:.2f} pt"
    p50, base = _value(m, "latency_ms_p50"), _value(baseline, "latency_ms_p50")
    if objective == "size":
        return f"smallest ({format_bytes(m.size_bytes)}, {drop_text})"
    if objective == "latency":
        if c.speed is not None:
            speed = f", {c.speed.text}"
        else:
            speed = f", {base / p50:.2f}x faster than the original in its trial" if p50 and base else ""
        return f"fastest (p50 {_fmt_ms(p50) if p50 is not None else 'not measured'}{speed})"
    if objective == "accuracy":
        return f"most accurate ({drop_text}, {format_bytes(m.size_bytes)})"
    ratio = m.size_bytes / baseline.size_bytes if baseline.size_bytes else math.nan
    latency = f", p50 {_fmt_ms(p50)}" if p50 is not None else ""
    return f"best balance of size, accuracy and speed ({ratio:.2f}x the original size, {drop_text}{latency})"


def _filters_text(goal: Goal | None) -> str:
    if goal is None:
        return "what the goal allows"
    parts = []
    if goal.precision is not None:
        parts.append(f"precision {goal.precision}")
    if goal.methods_allowed is not None:
        parts.append("methods " + "/".join(goal.methods_allowed))
    if goal.precision_forbidden:
        parts.append("no " + "/".join(goal.precision_forbidden))
    if goal.methods_forbidden:
        parts.append("no " + "/".join(goal.methods_forbidden))
    return ", ".join(parts) or "what the goal allows"


def goal_misses(
    candidates: Sequence[Candidate], baseline: Metrics, goal: Goal | None
) -> dict[str, list[ConstraintMiss]]:
    """Every candidate's misses against ``goal`` (:func:`check_goal`; empty lists for no goal): computed once per
    report and carried in it, so the answers, the page and the evals read them instead of checking again."""
    return {c.id: check_goal(c, goal, baseline) if goal is not None else [] for c in candidates}


def recommend(
    candidates: Sequence[Candidate],
    baseline: Metrics,
    goal: Goal | None,
    misses: dict[str, list[ConstraintMiss]] | None = None,
) -> Recommendation:
    """Recommend the candidate that best answers ``goal`` (rule: see the module docstring). Raises nothing.

    With no limits in the goal, the best candidate by the objective among the successful, allowed ones is
    recommended and the reason says the goal set no limits (no limit is invented). ``goal=None`` is a goal
    with no limits and the ``balanced`` objective. When nothing is feasible, ``recommended`` is None and
    ``nearest`` holds up to three allowed candidates with their misses, nearest first.
    """
    objective: Objective = goal.objective if goal is not None else "balanced"
    ok = [c for c in candidates if c.ok and c.metrics is not None]
    failed = len(candidates) - len(ok)
    if not ok:
        return Recommendation(
            recommended=None,
            reason=(
                f"No candidate was measured successfully ({failed} failed), so there is nothing to recommend."
            ),
            feasible=[],
        )
    permitted = [c for c in ok if allowed(c, goal)]
    if not permitted:
        return Recommendation(
            recommended=None,
            reason=(
                f"None of the {len(ok)} successful candidates uses {_filters_text(goal)}, "
                "so there is nothing to recommend."
            ),
            feasible=[],
        )
    if misses is None:
        misses = goal_misses(permitted, baseline, goal)
    feasible = sorted((c for c in permitted if not misses[c.id]), key=_size_id)
    feasible_ids = [c.id for c in feasible]

    if not feasible:
        ranked = sorted(
            permitted, key=lambda c: (_miss_score(misses[c.id]), len(misses[c.id]), *_tiebreak(c))
        )[:_NEAREST]
        nearest = [
            Nearest(candidate_id=c.id, misses=misses[c.id], score=_miss_score(misses[c.id])) for c in ranked
        ]
        first = nearest[0]
        what = "limit" if _has_limits(goal) else "requirement"
        return Recommendation(
            recommended=None,
            reason=(
                f"No candidate meets every {what} of the goal; the nearest, {first.candidate_id}, "
                "misses because " + " and ".join(x.text for x in first.misses) + "."
            ),
            feasible=[],
            nearest=nearest,
        )

    # fallback methods ("only prune if quantization alone is not enough") are used only when nothing else meets it
    fallback = set(goal.methods_fallback or []) if goal is not None else set()
    primary = [c for c in feasible if not recipe_methods(c.recipe) & fallback]
    held_back = ""
    if fallback and primary and len(primary) < len(feasible):
        held_back = (
            f" {len(feasible) - len(primary)} candidate(s) using {'/'.join(sorted(fallback))} were held back: "
            "the goal uses it only when nothing else meets it."
        )
        feasible = primary
    top, pool = _pick(feasible, objective, baseline, goal)
    best = top if is_speed_goal(goal) else _prefer_not_slower(top, feasible, objective, baseline)
    caveats = _caveats(best, baseline)
    sup = _superlative(best, objective, baseline) + _switch_note(best, top)
    if goal is None or not _has_limits(goal):
        among = f"{pool} successful candidates" if pool != 1 else "1 successful candidate"
        if objective == "balanced":
            among = (
                f"{pool} candidates on the Pareto front" if pool != 1 else "1 candidate on the Pareto front"
            )
        if is_speed_goal(goal):
            among += (
                " that are faster than the original" if pool != 1 else " that is faster than the original"
            )
        reason = f"The goal set no limits, so {_name(best)} is recommended as the {sup} of {among}."
    else:
        met = ", ".join(_met_limits(best, goal, baseline))
        met = f" ({met})" if met else ""
        if len(feasible) == 1 and held_back:
            reason = (
                f"{_name(best)} meets every limit{met} and is the only one that does without the fallback."
            )
        elif len(feasible) == 1:
            reason = (
                f"{_name(best)} meets every limit{met} and is the only one of {len(ok)} candidates that does."
            )
        elif objective == "balanced":
            reason = (
                f"{_name(best)} meets every limit{met} and is the {sup} of {len(feasible)} candidates "
                f"that do ({pool} of them on the front)."
            )
        else:
            reason = (
                f"{_name(best)} meets every limit{met} and is the {sup} "
                f"of {len(feasible)} candidates that do."
            )
    return Recommendation(
        recommended=best.id,
        reason=_with_caveats(reason + held_back, caveats),
        feasible=feasible_ids,
        caveats=caveats,
    )


# --------------------------------------------------------------------------- the report


class MeasurementInfo(Frozen):
    """How the numbers of a report were measured: what a reader needs to trust (or redo) them."""

    threads: int = Field(ge=1, description="onnxruntime intra-op threads of every latency measurement")
    batch_size: int = Field(ge=1, description="samples per inference of every latency measurement")
    threads_from: Literal["option", "goal", "default"] = Field(
        default="default", description="where the thread count came from"
    )
    batch_from: Literal["option", "goal", "default"] = Field(
        default="default", description="where the batch size came from"
    )
    provider: str = Field(default="CPUExecutionProvider", description="the onnxruntime execution provider")
    trial_latency_runs: int = Field(
        default=0, ge=0, description="timed runs per candidate in its trial (trials may run in parallel)"
    )
    remeasured: list[str] = Field(
        default_factory=list, description="ids re-measured side by side with the original, alone"
    )
    blocks: int = Field(default=0, ge=0, description="interleaved blocks of the side-by-side re-measurement")
    runs_per_block: int = Field(default=0, ge=0, description="timed runs of each model in each block")
    speedup_method: str = Field(default="", description="how the speed-up and its interval are computed")
    memory_method: str = Field(default="", description="how peak memory is measured")
    cpu: str = Field(
        default="", description="the CPU's int8 capability (VNNI, AMX) as it matters for kernels"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="what the search built for speed and why (formats, reduce_range, fp16)",
    )


class ParetoReport(Frozen):
    """A finished sweep: the original, every candidate (failed ones kept), the front, the recommendation."""

    model: str = Field(description="the model's path or name")
    baseline: Metrics
    candidates: list[Candidate]
    front: list[str] = Field(description="ids of the non-dominated candidates, by size then id")
    recommended: str | None
    goal: Goal | None
    reason: str = Field(description="why this candidate (or why none), one sentence with the numbers")
    nearest: list[Nearest] = Field(default_factory=list)
    evaluations: int = Field(ge=0, description="candidates actually built and measured")
    grid_size: int = Field(ge=0, description="candidates the search space held")
    skipped: list[str] = Field(
        default_factory=list, description="ids not evaluated because they could not win"
    )
    skipped_reasons: dict[str, str] = Field(default_factory=dict, description="skipped id -> why")
    sensitivity: SensitivityReport | None = None
    wall_seconds: float | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="how the sweep ran: the memory plan, trials retried for memory, upstream workarounds used, "
        "the metric chosen when the data named none, pre-processing fallbacks",
    )
    misses: dict[str, list[ConstraintMiss]] = Field(
        default_factory=dict,
        description="candidate id -> the limits of the goal it misses (empty: it meets them all; a failed "
        "candidate misses 'measured'), computed once by the library's goal check",
    )
    caveats: list[Caveat] = Field(
        default_factory=list,
        description="where the recommended candidate is worse than the original (slower, more peak memory)",
    )
    measurement: MeasurementInfo | None = Field(
        default=None, description="threads, batch, provider and how latency and memory were measured"
    )
    tried_reasons: dict[str, str] = Field(
        default_factory=dict, description="built id -> why the search built it"
    )
    execution: str | None = Field(
        default=None, description="where the trials ran: the runtime chosen (and why), nodes, CPUs and GPUs"
    )

    @model_validator(mode="after")
    def _ids_exist(self) -> ParetoReport:
        ids = {c.id for c in self.candidates}
        unknown = [
            i for i in [*self.front, *([self.recommended] if self.recommended else [])] if i not in ids
        ]
        unknown += [n.candidate_id for n in self.nearest if n.candidate_id not in ids]
        if unknown:
            raise ValueError(f"front/recommended/nearest name unknown candidate ids: {sorted(set(unknown))}")
        return self

    def candidate(self, candidate_id: str) -> Candidate:
        """The candidate with this id; raises :class:`NotFoundError` when there is none."""
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise NotFoundError(
            f"no candidate {candidate_id!r} in the report for {self.model}",
            hint="use one of: " + ", ".join(c.id for c in self.candidates) if self.candidates else None,
        )

    @property
    def failed(self) -> list[Candidate]:
        """The candidates that did not produce metrics."""
        return [c for c in self.candidates if not c.ok]


def build_report(
    model: str,
    baseline: Metrics,
    candidates: Sequence[Candidate],
    goal: Goal | None,
    *,
    evaluations: int,
    grid_size: int,
    skipped: Sequence[str] = (),
    skipped_reasons: dict[str, str] | None = None,
    sensitivity: SensitivityReport | None = None,
    wall_seconds: float | None = None,
    measurement: MeasurementInfo | None = None,
    tried_reasons: dict[str, str] | None = None,
) -> ParetoReport:
    """Compute the front and the recommendation for ``candidates``; bundle them into a :class:`ParetoReport`.

    The front is taken over the objectives at least one successful candidate measured (so a sweep run without
    latency still has a size/accuracy front); a candidate missing one of those values is left off it.
    Raises pydantic's ``ValidationError`` only on inconsistent input (e.g. negative ``evaluations``).
    """
    misses = goal_misses(candidates, baseline, goal)
    rec = recommend(candidates, baseline, goal, misses)
    return ParetoReport(
        model=model,
        baseline=baseline,
        candidates=list(candidates),
        front=pareto_front(candidates, _measured_objectives(candidates)),
        recommended=rec.recommended,
        goal=goal,
        reason=rec.reason,
        nearest=rec.nearest,
        evaluations=evaluations,
        grid_size=grid_size,
        skipped=list(skipped),
        skipped_reasons=dict(skipped_reasons or {}),
        sensitivity=sensitivity,
        wall_seconds=wall_seconds,
        misses=misses,
        caveats=rec.caveats,
        measurement=measurement,
        tried_reasons=dict(tried_reasons or {}),
    )
