"""The rule reader cross-checks the goal an LLM filled in.

An LLM may hand ``run_sweep`` a structured goal (the tool schema's ``Goal`` object) instead of the user's words.
Before such a sweep runs, the agent reads the user's last message with the server's rule reader (``parse_goal``,
merged into the goal of the last sweep when there was one) and compares the two readings field by field. Where
they differ, nothing runs: the user is shown both readings and asked which one is meant. A misreading is worse than
a question, and a long sweep for the wrong goal is the most expensive misreading there is.

Pure functions of the two goals (dicts as the tools carry them); the agent makes the tool calls.
"""

from __future__ import annotations

import math
from typing import Any

from assistant.answers import describe_goal
from assistant.planner.goals import CONSTRAINTS, METHOD_FIELDS

__all__ = ["CROSSCHECK_ASK", "crosscheck_question", "goal_differences", "same_reading"]

#: the sentence that ends a cross-check question (how the agent knows the next message answers it)
CROSSCHECK_ASK = "Which reading should I run"

_LIST_FIELDS = (*METHOD_FIELDS, "precision_forbidden", "keep_float_layers")
_SCALARS = ("precision", "device")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _same_number(a: Any, b: Any) -> bool:
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return x is None and y is None and a == b
    return abs(x - y) <= 1e-9 + 1e-6 * max(abs(x), abs(y))


def _shown(v: Any) -> str:
    if v is None or v == [] or v == ():
        return "not set"
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in sorted(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def goal_differences(llm: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    """Where the goal an LLM filled in (``llm``) and the rule reader's (``rules``) ask for different things, one
    line per field ("max_accuracy_drop_pct: 2 (LLM) vs 1 (rule reader)"); [] when they agree. A field one of them
    leaves out counts as not set: an LLM that drops a limit the user gave, or adds one the user never said,
    disagrees."""
    out: list[str] = []

    def differ(key: str, a: Any, b: Any) -> None:
        out.append(f"{key}: {_shown(a)} (LLM) vs {_shown(b)} (rule reader)")

    for key in CONSTRAINTS:
        a, b = llm.get(key), rules.get(key)
        if not _same_number(a, b):
            differ(key, a, b)
    a_obj, b_obj = llm.get("objective") or "balanced", rules.get("objective") or "balanced"
    if a_obj != b_obj:
        differ("objective", a_obj, b_obj)
    for key in _LIST_FIELDS:
        a_set, b_set = set(llm.get(key) or ()), set(rules.get(key) or ())
        if a_set != b_set:
            differ(key, sorted(a_set), sorted(b_set))
    for key in _SCALARS:
        a, b = llm.get(key) or None, rules.get(key) or None
        if a != b:
            differ(key, a, b)
    return out


def same_reading(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two goals ask for the same thing (no :func:`goal_differences`)."""
    return not goal_differences(a, b)


def crosscheck_question(llm_name: str, llm: dict[str, Any], rules: dict[str, Any], unread: list[str]) -> str:
    """The question the agent asks instead of running a sweep whose two readings disagree."""
    differences = goal_differences(llm, rules)
    lines = [
        "I read your goal two ways and they disagree, so I have not started the sweep.",
        f"1. The language model ({llm_name}) read: {describe_goal(llm)}.",
        f"2. The rule reader read: {describe_goal(rules)}"
        + (f" (words it did not understand: {', '.join(unread)})" if unread else "")
        + ".",
        "They differ on: " + "; ".join(differences) + ".",
        f"{CROSSCHECK_ASK}: the first or the second? Or say your goal another way.",
    ]
    return "\n".join(lines)
