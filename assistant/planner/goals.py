"""Goals as data: the structured goal the tools return, handed back to them as it is.

A goal is the dict a tool returns (``parse_goal``'s ``goal``, a report's or a recommendation's ``goal``). It goes
back to ``run_sweep`` and ``recommend`` as that structure, never as words for the server to read again. Merging a
follow-up into it is the server's job (``parse_goal(text, prior=goal)``); the planner only sets fields it decides
itself ("make it smaller": a bound just under the current recommendation).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACCURACY_FIELDS",
    "CONSTRAINTS",
    "DEFAULT_MAX_DROP_PCT",
    "LATENCY_FIELDS",
    "LOWER_BOUNDS",
    "METHOD_FIELDS",
    "SIZE_FIELDS",
    "goal_arg",
    "goal_with",
    "joined",
    "relaxed_fields",
    "same_goal",
    "words_set_something",
]

DEFAULT_MAX_DROP_PCT = 1.0  # the limit assumed when a request names a model but no goal
CONSTRAINTS = (
    "max_size_mb",
    "max_size_ratio",
    "min_size_reduction_mb",
    "max_memory_mb",
    "max_accuracy_drop_pct",
    "min_metric",
    "min_metric_ratio",
    "max_latency_ms",
    "min_speedup",
    "max_latency_ratio",
    "max_latency_increase_ms",
    "min_latency_reduction_ms",
)
#: limits that are floors: a smaller value is a looser goal
LOWER_BOUNDS = (
    "min_size_reduction_mb",
    "min_metric",
    "min_metric_ratio",
    "min_speedup",
    "min_latency_reduction_ms",
)
SIZE_FIELDS = ("max_size_mb", "max_size_ratio", "min_size_reduction_mb")
ACCURACY_FIELDS = ("max_accuracy_drop_pct", "min_metric", "min_metric_ratio")
LATENCY_FIELDS = (
    "max_latency_ms",
    "min_speedup",
    "max_latency_ratio",
    "max_latency_increase_ms",
    "min_latency_reduction_ms",
)
METHOD_FIELDS = ("methods_allowed", "methods_forbidden", "methods_requested", "methods_fallback")
_LIST_FIELDS = (*METHOD_FIELDS, "precision_forbidden", "keep_float_layers")


def goal_arg(goal: dict[str, Any]) -> dict[str, Any]:
    """A goal from a tool result as a tool argument (``has_constraints`` is derived by the server again)."""
    return {k: v for k, v in goal.items() if k != "has_constraints"}


def goal_with(goal: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``goal`` with ``fields`` set, as a tool argument."""
    return {**goal_arg(goal), **fields}


def same_goal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two structured goals ask for the same (their limits, objective, methods, precision, device)."""

    def norm(g: dict[str, Any]) -> tuple[Any, ...]:
        limits = tuple(g.get(k) for k in CONSTRAINTS)
        lists = tuple(tuple(sorted(g.get(k) or ())) for k in _LIST_FIELDS)
        return (g.get("objective") or "balanced", limits, lists, g.get("precision"), g.get("device"))

    return norm(a) == norm(b)


def words_set_something(goal: dict[str, Any]) -> bool:
    """Whether the words a goal was read from set anything: a limit, an objective, a method, a precision, a device."""
    return (
        any(goal.get(k) is not None for k in CONSTRAINTS)
        or goal.get("objective", "balanced") != "balanced"
        or any(goal.get(k) for k in ("precision", "device", *_LIST_FIELDS))
    )


def _bound(goal: dict[str, Any], group: str, base: dict[str, Any]) -> float | None:
    """The tightest bound a goal sets on one quantity, against the measured original ``base``: the largest size in
    bytes, the largest accuracy drop in points, the largest p50 latency in ms. None: no bound (or unknown)."""

    def num(v: Any) -> float | None:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    found: list[float] = []
    if group == "size":
        size = num(base.get("size_bytes"))
        if (v := num(goal.get("max_size_mb"))) is not None:
            found.append(v * 1e6)
        if size is not None and (v := num(goal.get("max_size_ratio"))) is not None:
            found.append(v * size)
        if size is not None and (v := num(goal.get("min_size_reduction_mb"))) is not None:
            found.append(size - v * 1e6)
    elif group == "accuracy":
        metric = num(base.get("metric"))
        if (v := num(goal.get("max_accuracy_drop_pct"))) is not None:
            found.append(v)
        if metric is not None and (v := num(goal.get("min_metric"))) is not None:
            found.append((metric - v) * 100)
        if metric is not None and (v := num(goal.get("min_metric_ratio"))) is not None:
            found.append(metric * (1 - v) * 100)
    elif group == "latency":
        p50 = num(base.get("latency_ms_p50"))
        if (v := num(goal.get("max_latency_ms"))) is not None:
            found.append(v)
        if p50 is not None:
            for key, to_ms in (
                ("min_speedup", lambda x: p50 / x if x else p50),
                ("max_latency_ratio", lambda x: p50 * x),
                ("max_latency_increase_ms", lambda x: p50 + x),
                ("min_latency_reduction_ms", lambda x: p50 - x),
            ):
                if (v := num(goal.get(key))) is not None:
                    found.append(to_ms(v))
    elif group == "memory" and (v := num(goal.get("max_memory_mb"))) is not None:
        found.append(v * 1e6)
    return min(found) if found else None


_GROUPS = {
    "size": SIZE_FIELDS,
    "accuracy": ACCURACY_FIELDS,
    "latency": LATENCY_FIELDS,
    "memory": ("max_memory_mb",),
}


def relaxed_fields(
    old: dict[str, Any], new: dict[str, Any], baseline: dict[str, Any] | None = None
) -> list[str]:
    """What ``new`` loosens in ``old``: a quantity whose bound is higher or gone (``size``, ``accuracy``,
    ``latency``, ``memory``; compared against the measured original ``baseline`` when the two goals bound it in
    different ways), a method or a precision no longer forbidden, methods no longer restricted, a precision or
    float layers no longer required. A looser goal may admit candidates a directed sweep for ``old`` skipped."""
    base = baseline or {}
    out: list[str] = []
    for group, fields in _GROUPS.items():
        if not any(old.get(k) is not None for k in fields):
            continue
        if not any(new.get(k) is not None for k in fields):
            out.append(group)
            continue
        a, b = _bound(old, group, base), _bound(new, group, base)
        if a is not None and b is not None:
            if b > a * (1 + 1e-9):
                out.append(group)
        elif any(
            old.get(k) is not None
            and (new.get(k) is None or (new[k] < old[k] if k in LOWER_BOUNDS else new[k] > old[k]))
            for k in fields
        ):
            out.append(group)
    for k in ("methods_forbidden", "precision_forbidden"):
        if set(old.get(k) or ()) - set(new.get(k) or ()):
            out.append(k)
    allowed_old, allowed_new = old.get("methods_allowed"), new.get("methods_allowed")
    if allowed_old and (not allowed_new or set(allowed_new) - set(allowed_old)):
        out.append("methods_allowed")
    for k in ("precision", "keep_float_layers"):
        if old.get(k) and not new.get(k):
            out.append(k)
    return out


def joined(*texts: str) -> str:
    """Texts a goal was read from, in order (as the server joins a follow-up's words to its prior's)."""
    return "; ".join(t for t in texts if t)
