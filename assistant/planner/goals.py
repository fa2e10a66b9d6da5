"""Goals as data: the structured goal the tools return, handed back to them as it is.

A goal is the dict a tool returns (``parse_goal``'s ``goal``, a report's or a recommendation's ``goal``). It goes
back to ``run_sweep`` and ``recommend`` as that structure, never as words for the server to read again. Merging a
follow-up into it is the server's job (``parse_goal(text, prior=goal)``); the planner only sets fields it decides
itself ("make it smaller": a bound just under the current recommendation).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CONSTRAINTS",
    "DEFAULT_MAX_DROP_PCT",
    "METHOD_FIELDS",
    "goal_arg",
    "goal_with",
    "joined",
    "same_goal",
    "words_set_something",
]

DEFAULT_MAX_DROP_PCT = 1.0  # the limit assumed when a request names a model but no goal
CONSTRAINTS = ("max_size_mb", "max_size_ratio", "max_accuracy_drop_pct", "max_latency_ms", "min_speedup")
METHOD_FIELDS = ("methods_allowed", "methods_forbidden", "methods_requested")


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
        methods = tuple(tuple(sorted(g.get(k) or ())) for k in METHOD_FIELDS)
        return (g.get("objective") or "balanced", limits, methods, g.get("precision"), g.get("device"))

    return norm(a) == norm(b)


def words_set_something(goal: dict[str, Any]) -> bool:
    """Whether the words a goal was read from set anything: a limit, an objective, a method, a precision, a device."""
    return (
        any(goal.get(k) is not None for k in CONSTRAINTS)
        or goal.get("objective", "balanced") != "balanced"
        or any(goal.get(k) for k in ("precision", "device", *METHOD_FIELDS))
    )


def joined(*texts: str) -> str:
    """Texts a goal was read from, in order (as the server joins a follow-up's words to its prior's)."""
    return "; ".join(t for t in texts if t)
