"""The offline planner as a pure function of the transcript, and its goal words (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.events import ToolRecord
from assistant.planner import compose_goal_text, merge_goals, plan
from assistant.transcript import tool_message, with_context
from optimizer.goals.parse import parse_goal

GOALS: list[dict[str, Any]] = [
    {"max_size_mb": 0.036978, "max_accuracy_drop_pct": 1.0, "objective": "size"},
    {"max_size_ratio": 0.3333, "max_accuracy_drop_pct": 0.0},
    {"max_latency_ms": 0.0205, "min_speedup": 1.5, "objective": "latency"},
    {"max_size_mb": 30.0, "precision": "fp16", "methods_allowed": ["quantize"]},
    {"max_size_mb": 0.05, "methods_forbidden": ["prune"], "device": "cpu"},
    {"max_accuracy_drop_pct": 2.5, "methods_allowed": ["prune"], "objective": "accuracy"},
    {"max_size_mb": 0.04, "methods_forbidden": ["prune", "quantize"]},
    {"precision": "int4", "objective": "size", "device": "gpu"},
]
FIELDS = (
    "max_size_mb",
    "max_size_ratio",
    "max_accuracy_drop_pct",
    "max_latency_ms",
    "min_speedup",
    "precision",
    "device",
    "methods_allowed",
    "methods_forbidden",
)


@pytest.mark.parametrize("goal", GOALS)
def test_compose_goal_text_reads_back_to_the_same_goal(goal: dict[str, Any]) -> None:
    read = parse_goal(compose_goal_text(goal)).model_dump()
    for field in FIELDS:
        assert read[field] == goal.get(field), (field, compose_goal_text(goal))
    assert read["objective"] == goal.get("objective", "balanced")
    assert read["unparsed_words"] == []


def test_merge_goals_replaces_what_the_new_words_set_and_keeps_the_rest() -> None:
    prior = {
        "max_size_ratio": 0.5,
        "max_accuracy_drop_pct": 1.0,
        "methods_forbidden": ["prune"],
        "objective": "size",
    }
    merged = merge_goals(prior, {"max_size_mb": 0.03, "methods_allowed": ["prune"], "objective": "balanced"})
    assert merged["max_size_mb"] == 0.03 and merged["max_size_ratio"] is None
    assert merged["max_accuracy_drop_pct"] == 1.0 and merged["objective"] == "size"
    assert merged["methods_allowed"] == ["prune"] and merged["methods_forbidden"] is None


def _record(call_id: str, name: str, args: dict[str, Any], result: dict[str, Any]) -> ToolRecord:
    return ToolRecord(call_id=call_id, name=name, arguments=args, ok=True, result=result, text="")


def _conversation(user: str, records: list[ToolRecord]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
    for r in records:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": r.call_id,
                        "type": "function",
                        "function": {"name": r.name, "arguments": json.dumps(r.arguments)},
                    }
                ],
            }
        )
        messages.append(tool_message(r))
    return messages


CATALOG = [
    _record("a", "list_zoo", {}, {"entries": [{"name": "digits-cnn"}, {"name": "minilm-l6"}]}),
    _record(
        "b",
        "list_models",
        {},
        {"models": [{"id": "resnet-3f2a9c1b7d4e"}], "zoo": ["digits-cnn", "minilm-l6"]},
    ),
]


def test_plan_first_asks_what_the_server_holds() -> None:
    step = plan([{"role": "user", "content": "make digits-cnn under 40 KB"}])
    assert sorted(c.name for c in step.tool_calls) == ["list_models", "list_zoo"]


@pytest.mark.parametrize(
    ("user", "model", "goal_text"),
    [
        (
            "make digits-cnn under 40 KB with less than 1% accuracy loss",
            "digits-cnn",
            "make the model under 40 KB with less than 1% accuracy loss",
        ),
        ("Could you squeeze MiniLM-L6 below 30 MB?", "minilm-l6", "Could you squeeze the model below 30 MB?"),
        (
            "shrink resnet to a quarter of its size",
            "resnet-3f2a9c1b7d4e",
            "shrink the model to a quarter of its size",
        ),
    ],
)
def test_plan_reads_the_goal_without_the_model_name(user: str, model: str, goal_text: str) -> None:
    step = plan(_conversation(user, CATALOG))
    assert [(c.name, c.arguments) for c in step.tool_calls] == [("parse_goal", {"text": goal_text})]
    parsed = _record(
        "c",
        "parse_goal",
        {"text": goal_text},
        {"goal": parse_goal(goal_text).model_dump(), "description": ""},
    )
    step = plan(_conversation(user, [*CATALOG, parsed]))
    assert [(c.name, c.arguments) for c in step.tool_calls] == [("inspect_model", {"model": model})]
    inspected = _record("d", "inspect_model", {"model": model}, {"size_bytes": 90_000_000})
    step = plan(_conversation(user, [*CATALOG, parsed, inspected]))
    # a large model is profiled on a few samples only (the profile's memory grows with them)
    assert [(c.name, c.arguments) for c in step.tool_calls] == [
        ("profile_layers", {"model": model, "samples": 4})
    ]


def test_plan_takes_the_model_from_the_context_block() -> None:
    user = with_context("under 40 KB please", model="digits-cnn")
    parsed = _record(
        "c",
        "parse_goal",
        {"text": "under 40 KB please"},
        {"goal": parse_goal("under 40 KB please").model_dump()},
    )
    step = plan(_conversation(user, [*CATALOG, parsed]))
    assert {c.arguments["model"] for c in step.tool_calls} == {"digits-cnn"}


def test_plan_asks_for_a_model_when_none_is_named() -> None:
    parsed = _record(
        "c",
        "parse_goal",
        {"text": "make it under 5 MB"},
        {"goal": parse_goal("make it under 5 MB").model_dump()},
    )
    step = plan(_conversation("make it under 5 MB", [*CATALOG, parsed]))
    assert step.outcome == "needs_input" and "digits-cnn" in (step.text or "")


def test_plan_says_there_is_nothing_to_explain_before_any_sweep() -> None:
    step = plan(_conversation("why not int4?", CATALOG))
    assert step.outcome == "needs_input" and not step.tool_calls and "not run a sweep" in (step.text or "")


def test_plan_reads_a_bare_percentage_with_acceptance_as_an_accuracy_loss() -> None:
    text = "I can accept 2%"
    parsed = _record("c", "parse_goal", {"text": text}, {"goal": parse_goal(text).model_dump()})
    step = plan(_conversation(text, [*CATALOG, parsed]))
    assert [c.arguments for c in step.tool_calls] == [{"text": "I can accept 2% accuracy loss"}]


def test_plan_asks_instead_of_dropping_a_number_the_goal_reader_left_unread() -> None:
    text = "make digits-cnn quicker by 1.5x"
    words = "make the model quicker by 1.5x"
    unread = {
        "goal": {"device": None, "unparsed_words": ["quicker", "1.5x"]},
        "description": "no constraints",
    }
    step = plan(_conversation(text, [*CATALOG, _record("c", "parse_goal", {"text": words}, unread)]))
    assert step.outcome == "needs_input" and not step.tool_calls
    assert "1.5x" in (step.text or "") and "quicker" not in (step.text or "").split("(")[0]
