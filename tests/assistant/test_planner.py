"""The offline planner as a pure function of the transcript, and its goal words (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.events import ToolRecord
from assistant.planner import goal_arg, plan
from assistant.transcript import tool_message, with_context
from optimizer.goals.parse import parse_goal
from optimizer.types import Goal

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
def test_goal_arg_gives_the_tools_back_the_same_goal(goal: dict[str, Any]) -> None:
    """A goal goes back to the tools as the structure a tool returned, never as words to read again."""
    returned = Goal.model_validate(goal).model_dump(mode="json")  # as a tool result carries it
    read = Goal.model_validate(json.loads(json.dumps(goal_arg(returned)))).model_dump()
    for field in FIELDS:
        assert read[field] == goal.get(field), (field, goal_arg(returned))
    assert read["objective"] == goal.get("objective", "balanced")
    assert read["unparsed_words"] == []


def test_parse_goal_with_a_prior_replaces_what_the_new_words_set_and_keeps_the_rest(
    server_settings: Any,
) -> None:
    """The merge of a follow-up is the server's: parse_goal(text, prior=goal)."""
    from mcp_server.services import Services
    from mcp_server.tools import call_tool

    services = Services(server_settings)
    prior = {
        "max_size_ratio": 0.5,
        "max_accuracy_drop_pct": 1.0,
        "methods_forbidden": ["prune"],
        "objective": "size",
    }
    try:
        out = call_tool(services, "parse_goal", {"text": "under 30 KB, pruning only", "prior": prior})
    finally:
        services.close()
    merged = out.structured()["goal"]
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


def _turns(*turns: tuple[str, list[ToolRecord], str | None]) -> list[dict[str, Any]]:
    """Several turns: each user message, its tool calls and results, and the answer (None: still running)."""
    messages: list[dict[str, Any]] = []
    for user, records, answer in turns:
        messages += _conversation(user, records)
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    return messages


def _parsed(args: dict[str, Any]) -> ToolRecord:
    """parse_goal's record as the server builds it (merged into ``prior`` when given)."""
    prior = Goal.model_validate(args["prior"]) if "prior" in args else None
    goal = parse_goal(args["text"], prior=prior)
    result = {
        "goal": goal.model_dump(mode="json"),
        "description": goal.describe(),
        "runnable": goal.has_target,
    }
    return _record(f"p{len(args)}", "parse_goal", args, result)


def test_plan_sends_a_follow_up_goal_merged_on_the_server_to_run_sweep_as_fields() -> None:
    job = "0123456789abcdef"
    first = parse_goal("under 40 KB with less than 1% accuracy loss")
    goal = first.model_dump(mode="json")
    sweep_args = {"model": "digits-cnn", "goal": goal_arg(goal)}
    sweep = ToolRecord(
        call_id="s",
        name="run_sweep",
        arguments=sweep_args,
        ok=True,
        result={"job_id": job, "state": "queued"},
        job={"job_id": job, "state": "succeeded", "goal_fields": goal},
    )
    base = {"size_bytes": 105486, "metric_name": "top1", "metric": 0.98, "accuracy_drop_pct": 0.0}
    int8 = {"id": "c00-int8", "recipe": {"kind": "static_int8"}, "metrics": {**base, "size_bytes": 36979}}
    report = {"goal": goal, "baseline": base, "candidates": [int8], "recommended": "c00-int8", "nearest": []}
    turn1 = [
        *CATALOG,
        _record("i", "inspect_model", {"model": "digits-cnn"}, {"size_bytes": 105486}),
        _record("f", "profile_layers", {"model": "digits-cnn", "samples": 16}, {"layers": []}),
        sweep,
        _record("r", "get_pareto_report", {"job_id": job}, {"job_id": job, "report": report}),
    ]
    user = "actually it has to fit in 15 KB"
    listed = _record("l2", "list_models", {}, {"models": [], "zoo": ["digits-cnn", "minilm-l6"]})
    done = [("make digits-cnn under 40 KB with less than 1% accuracy loss", turn1, "goal met")]

    step = plan(_turns(*done, (user, [listed], None)))
    assert [(c.name, c.arguments) for c in step.tool_calls] == [("parse_goal", {"text": user})]
    words = _parsed({"text": user})
    step = plan(_turns(*done, (user, [listed, words], None)))
    # the follow-up is merged on the server into the goal of the last verdict (never written back into words)
    assert [(c.name, c.arguments) for c in step.tool_calls] == [
        ("parse_goal", {"text": user, "prior": goal_arg(goal)})
    ]
    merged = _parsed({"text": user, "prior": goal_arg(goal)})
    merged_goal = goal_arg(merged.result["goal"])
    step = plan(_turns(*done, (user, [listed, words, merged], None)))
    assert [(c.name, c.arguments) for c in step.tool_calls] == [
        ("recommend", {"job_id": job, "goal": merged_goal})
    ]
    none_meets = {
        "job_id": job,
        "goal": merged.result["goal"],
        "recommendation": {
            "recommended": None,
            "reason": "no candidate meets it",
            "feasible": [],
            "nearest": [],
        },
        "misses": {"c00-int8": [{"constraint": "max_size_mb", "text": "size 37 KB is over the 15 KB limit"}]},
    }
    rec = _record("rc", "recommend", {"job_id": job, "goal": merged_goal}, none_meets)
    step = plan(_turns(*done, (user, [listed, words, merged, rec], None)))
    assert [c.name for c in step.tool_calls] == ["run_sweep"]
    sent = step.tool_calls[0].arguments["goal"]
    assert isinstance(sent, dict) and sent["max_size_mb"] == 0.015 and sent["max_accuracy_drop_pct"] == 1.0
    assert Goal.model_validate(sent).model_dump(exclude={"text"}) == Goal.model_validate(
        merged_goal
    ).model_dump(exclude={"text"})


# --------------------------------------------------------------------------- asking back, names, directions

CATALOG_WITH_ALIASES = [
    _record(
        "a",
        "list_zoo",
        {},
        {
            "entries": [
                {"name": "digits-cnn", "description": "A 3-conv-layer CNN trained on scikit-learn digits"},
                {"name": "minilm-l6", "description": "all-MiniLM-L6-v2 sentence encoder exported to ONNX"},
            ]
        },
    ),
    _record(
        "b", "list_models", {}, {"models": [{"id": "model-3f2a9c1b7d4e"}], "zoo": ["digits-cnn", "minilm-l6"]}
    ),
]


def _until_sweep(user: str, done: list[tuple[str, list[ToolRecord], str | None]] | None = None) -> Any:
    """Drive the planner through one turn with the server's goal reader and a stand-in inspection, until it sweeps
    or answers: (the step, the records of the turn)."""
    records = list(CATALOG_WITH_ALIASES)
    stand_in = {"inspect_model": {"size_bytes": 105486, "layers": []}, "profile_layers": {"layers": []}}
    for _ in range(8):
        step = plan(_turns(*(done or []), (user, records, None)))
        if not step.tool_calls or step.tool_calls[0].name == "run_sweep":
            return step, records
        for c in step.tool_calls:
            if c.name == "parse_goal":
                records.append(_parsed(c.arguments))
            else:
                records.append(_record(f"x{len(records)}", c.name, c.arguments, stand_in[c.name]))
    raise AssertionError("the planner did not reach a sweep")


@pytest.mark.parametrize(
    "user",
    [
        "make digits-cnn under 40 KB, keep it snappy-ish on the gizmo",
        "make digits-cnn under 40 KB and frobnicate the weights",
        "shrink digits-cnn below 40 KB but keep it zesty",
    ],
)
def test_plan_asks_back_with_the_goal_it_read_when_any_content_word_is_not_understood(user: str) -> None:
    """Not only words with a digit: any word the reader did not use is asked about, with the reading shown."""
    step, _ = _until_sweep(user)
    assert not step.tool_calls and step.outcome == "needs_input"
    text = step.text or ""
    assert "I could not read part of your goal" in text and "I read: size <= 0.04 MB" in text
    assert "Right?" in text


def test_plan_runs_the_goal_it_read_back_when_the_user_says_yes() -> None:
    user = "make digits-cnn under 40 KB, keep it snappy-ish on the gizmo"
    asked, records = _until_sweep(user)
    step, _ = _until_sweep("yes, go ahead", [(user, records, asked.text)])
    assert [c.name for c in step.tool_calls] == ["run_sweep"]
    sent = step.tool_calls[0].arguments
    assert sent["model"] == "digits-cnn" and sent["goal"]["max_size_mb"] == 0.04


@pytest.mark.parametrize(
    "user",
    [
        "make digits-cnn under 40 KB with at most 1% accuracy loss",
        "make digits-cnn as small as possible, no pruning",
    ],
)
def test_plan_does_not_ask_back_when_every_word_was_read(user: str) -> None:
    step, _ = _until_sweep(user)
    assert [c.name for c in step.tool_calls] == ["run_sweep"]


@pytest.mark.parametrize(
    ("user", "model"),
    [
        ("make all-MiniLM-L6-v2 under 30 MB", "minilm-l6"),
        ("make All_MiniLM_L6_v2 under 30 MB", "minilm-l6"),
        ("make MINILM L6 under 30 MB", "minilm-l6"),
        ("make Digits_CNN under 40 KB", "digits-cnn"),
    ],
)
def test_plan_matches_model_names_in_a_normalised_form(user: str, model: str) -> None:
    step, _ = _until_sweep(user)
    assert step.tool_calls and step.tool_calls[0].arguments["model"] == model


def test_plan_never_takes_the_word_model_for_a_stored_model_named_model() -> None:
    step, _ = _until_sweep("make the model smaller")
    assert not step.tool_calls and "Which model should I optimize?" in (step.text or "")


@pytest.mark.parametrize(
    ("user", "objective"),
    [
        ("make digits-cnn faster", "latency"),
        ("make digits-cnn smaller", "size"),
        ("speed up digits-cnn", "latency"),
    ],
)
def test_plan_reads_a_bare_direction_as_the_objective_with_a_bounded_loss(user: str, objective: str) -> None:
    step, _ = _until_sweep(user)
    assert [c.name for c in step.tool_calls] == ["run_sweep"]
    goal = step.tool_calls[0].arguments["goal"]
    assert goal["objective"] == objective and goal["max_accuracy_drop_pct"] == 1.0


@pytest.mark.parametrize(
    "user",
    ["why not int4 when it's 4x smaller?", "why not fp16, it halves the size?", "how come no pruning?"],
)
def test_plan_reads_why_not_as_a_question_never_as_a_new_goal(user: str) -> None:
    step = plan(_conversation(user, CATALOG))
    assert not step.tool_calls and "nothing to explain" in (step.text or "")


@pytest.mark.parametrize(
    ("old", "new", "loosened"),
    [
        (
            {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0},
            {"max_size_mb": 0.04, "max_accuracy_drop_pct": 2.0},
            ["accuracy"],
        ),
        (
            {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0},
            {"max_size_mb": 0.03, "max_accuracy_drop_pct": 1.0},
            [],
        ),
        ({"max_size_mb": 0.04}, {"max_size_ratio": 0.5}, ["size"]),  # 0.5 x 105 KB is over 40 KB
        ({"max_size_mb": 0.04}, {"max_size_ratio": 0.3}, []),
        ({"min_metric": 0.97}, {"max_accuracy_drop_pct": 2.0}, ["accuracy"]),  # 0.98 - 0.97 = 1 pt < 2 pt
        ({"methods_forbidden": ["prune"]}, {}, ["methods_forbidden"]),
        ({"min_speedup": 2.0}, {"min_speedup": 1.5}, ["latency"]),
    ],
)
def test_relaxed_fields_finds_what_a_new_goal_loosens(
    old: dict[str, Any], new: dict[str, Any], loosened: list[str]
) -> None:
    from assistant.planner.goals import relaxed_fields

    baseline = {"size_bytes": 105486, "metric": 0.98, "latency_ms_p50": 0.02}
    assert relaxed_fields(old, new, baseline) == loosened


def test_plan_calibrates_profile_and_sweep_on_the_calibration_data_from_the_context() -> None:
    """Calibration data uploaded apart from the evaluation data (the page's third uploader) reaches the layer
    profile and the sweep; the evaluation data stays what is measured."""
    model, data, calib = "resnet-3f2a9c1b7d4e", "data-1111aaaa2222", "data-3333bbbb4444"
    text = "under 40 KB please"
    user = with_context(text, model=model, data=data, calib=calib)
    parsed = _record("c", "parse_goal", {"text": text}, {"goal": parse_goal(text).model_dump()})
    inspected = _record("d", "inspect_model", {"model": model}, {"size_bytes": 100_000})
    step = plan(_conversation(user, [*CATALOG, parsed, inspected]))
    [profile] = step.tool_calls
    assert profile.name == "profile_layers" and profile.arguments["data"] == calib
    profiled = _record("e", "profile_layers", profile.arguments, {"layers": []})
    step = plan(_conversation(user, [*CATALOG, parsed, inspected, profiled]))
    [sweep] = step.tool_calls
    assert sweep.name == "run_sweep"
    assert (sweep.arguments["data"], sweep.arguments["calib"]) == (data, calib)
