"""The rule reader's cross-check of a goal an LLM filled in: where two readings differ (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.crosscheck import crosscheck_question, goal_differences, same_reading
from optimizer.goals.parse import parse_goal


def _rules(text: str) -> dict[str, Any]:
    """The rule reader's goal as the parse_goal tool returns it."""
    return parse_goal(text).model_dump(mode="json")


@pytest.mark.parametrize(
    ("text", "llm"),
    [
        ("under 5 MB with at most 1% accuracy loss", {"max_size_mb": 5.0, "max_accuracy_drop_pct": 1.0}),
        ("as fast as possible, no pruning", {"objective": "latency", "methods_forbidden": ["prune"]}),
        (
            "int8 only, no fp16, under 500 kB",
            {
                "precision": "int8",
                "precision_forbidden": ["fp16"],
                "max_size_mb": 0.5,
                "methods_allowed": ["quantize"],
            },
        ),
    ],
)
def test_goal_differences_is_empty_when_the_llm_reads_what_the_rules_read(
    text: str, llm: dict[str, Any]
) -> None:
    rules = _rules(text)
    assert goal_differences(llm, rules) == [], rules
    assert same_reading(llm, rules)


@pytest.mark.parametrize(
    ("text", "llm", "field"),
    [
        # a limit read the wrong way round or as the wrong number
        ("at most 1% accuracy loss", {"max_accuracy_drop_pct": 2.0}, "max_accuracy_drop_pct"),
        # a limit the user gave, dropped
        ("under 5 MB with at most 1% accuracy loss", {"max_size_mb": 5.0}, "max_accuracy_drop_pct"),
        # a limit the user never gave, added
        ("under 5 MB", {"max_size_mb": 5.0, "max_latency_ms": 10.0}, "max_latency_ms"),
        # 500 kB is 0.5 MB, not 500 KiB
        ("under 500 kB", {"max_size_mb": 0.512}, "max_size_mb"),
        # "avoid fp16" forbids it; the LLM asked for it
        ("under 5 MB, avoid fp16", {"max_size_mb": 5.0, "precision": "fp16"}, "precision"),
        # "I don't care about latency, only about size"
        ("I don't care about latency, only about size", {"objective": "latency"}, "objective"),
    ],
)
def test_goal_differences_names_each_field_the_two_readings_disagree_on(
    text: str, llm: dict[str, Any], field: str
) -> None:
    differences = goal_differences(llm, _rules(text))
    assert any(d.startswith(f"{field}:") for d in differences), differences
    assert not same_reading(llm, _rules(text))


def test_goal_differences_ignores_list_order_and_float_noise() -> None:
    a = {"max_size_mb": 0.1 + 0.2, "methods_forbidden": ["qat", "prune"]}
    b = {"max_size_mb": 0.3, "methods_forbidden": ["prune", "qat"], "objective": "balanced", "device": None}
    assert goal_differences(a, b) == []


def test_crosscheck_question_shows_both_readings_and_the_difference() -> None:
    rules = _rules("under 40 KB with less than 1% accuracy loss")
    llm = {"max_size_mb": 0.04, "max_accuracy_drop_pct": 2.0}
    text = crosscheck_question("openai/gpt-x", llm, rules, ["blah"])
    assert "openai/gpt-x" in text and "accuracy drop <= 2.0 pt" in text and "accuracy drop <= 1.0 pt" in text
    assert "max_accuracy_drop_pct: 2 (LLM) vs 1 (rule reader)" in text and "blah" in text
    assert "have not started the sweep" in text
