"""The offline planner end to end on the real digits-cnn, through the real in-process MCP server: a request that
is met, follow-ups on it, a request that cannot be met, and the stdio transport."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GOAL_IMPOSSIBLE, GOAL_MET

from assistant.agent import Assistant
from assistant.answers import fmt_size
from assistant.events import Event, Final, Progress, Reply, ToolStarted
from assistant.settings import AssistantSettings

FOLLOW_UPS = [
    "I can accept 2%",
    "why not int4?",
    "what did you try?",
    "why this one?",
    "show me the smallest one",
    "make it smaller",
    "actually it has to fit in 15 KB",
]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Iterator[dict[str, Any]]:
    """One conversation: the request (streamed), then the follow-ups; replies by message."""
    from mcp_server.settings import ServerSettings

    server = ServerSettings(home=tmp_path_factory.mktemp("home"), zoo_dir=zoo_dir, sweep_executor="serial")
    settings = AssistantSettings(llm="offline", mcp_url=None, mcp_command=None, poll_interval_s=0.2)
    with Assistant(settings, server_settings=server) as a:
        events: list[Event] = list(a.stream(GOAL_MET))
        replies: dict[str, Reply] = {GOAL_MET: next(e.reply for e in events if isinstance(e, Final))}
        for text in FOLLOW_UPS:
            replies[text] = a.ask(text)
        yield {"events": events, "replies": replies, "records": list(a.inner.records)}


def _report(reply: Reply) -> dict[str, Any]:
    rep = next(r for r in reply.tool_calls if r.name == "get_pareto_report")
    assert rep.result is not None
    return dict(rep.result["report"])


@pytest.mark.slow
def test_offline_planner_meets_the_goal_with_measured_numbers_and_files(conversation: dict[str, Any]) -> None:
    reply: Reply = conversation["replies"][GOAL_MET]
    names = [r.name for r in reply.tool_calls]
    assert names[:2] == ["list_zoo", "list_models"]
    order = [
        names.index(n)
        for n in ("parse_goal", "inspect_model", "run_sweep", "get_pareto_report", "get_artifact")
    ]
    assert order == sorted(order) and "profile_layers" in names
    assert reply.tool_calls[names.index("parse_goal")].arguments == {
        "text": "make the model under 40 KB with less than 1% accuracy loss"
    }
    report = _report(reply)
    best = next(c for c in report["candidates"] if c["id"] == report["recommended"])
    assert reply.outcome == "met" and reply.recommended == best["id"] and "goal met" in reply.text
    assert best["metrics"]["size_bytes"] <= 40_000 and best["metrics"]["accuracy_drop_pct"] <= 1.0
    assert fmt_size(best["metrics"]["size_bytes"]) in reply.text
    assert Path(reply.files["model"]).is_file() and reply.files["model"] in reply.text
    assert reply.files["report_artifact"] == f"{reply.job_id}/report.json"
    assert reply.honesty.honest and reply.honesty.claims and all(c.backed for c in reply.honesty.claims)


@pytest.mark.slow
def test_offline_planner_streams_tool_calls_and_sweep_progress(conversation: dict[str, Any]) -> None:
    events: list[Event] = conversation["events"]
    started = [e.name for e in events if isinstance(e, ToolStarted)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert "run_sweep" in started and progress
    assert progress[-1].state == "succeeded" and progress[-1].done >= 1
    first_progress = events.index(progress[0])
    sweep_started = next(
        i for i, e in enumerate(events) if isinstance(e, ToolStarted) and e.name == "run_sweep"
    )
    assert sweep_started < first_progress and isinstance(events[-1], Final)


@pytest.mark.slow
def test_offline_planner_follow_up_accept_2pct_reranks_without_a_new_sweep(
    conversation: dict[str, Any],
) -> None:
    reply: Reply = conversation["replies"]["I can accept 2%"]
    names = [r.name for r in reply.tool_calls]
    assert "run_sweep" not in names and "recommend" in names
    rec = next(r for r in reply.tool_calls if r.name == "recommend")
    assert rec.result is not None and rec.result["goal"]["max_accuracy_drop_pct"] == 2.0
    assert rec.result["goal"]["max_size_mb"] == 0.04
    assert reply.outcome == "met" and "re-ranked" in reply.text and reply.honesty.honest


@pytest.mark.slow
def test_offline_planner_follow_up_why_not_int4_explains_from_the_inspection(
    conversation: dict[str, Any],
) -> None:
    reply: Reply = conversation["replies"]["why not int4?"]
    assert [r.name for r in reply.tool_calls] == ["list_models"] and reply.outcome == "answered"
    assert "MatMul" in reply.text and "Conv" in reply.text and reply.honesty.honest


@pytest.mark.slow
def test_offline_planner_follow_up_what_did_you_try_lists_measured_and_skipped(
    conversation: dict[str, Any],
) -> None:
    reply: Reply = conversation["replies"]["what did you try?"]
    first = _report(conversation["replies"][GOAL_MET])
    assert [r.name for r in reply.tool_calls] == ["list_models"] and reply.outcome == "answered"
    assert all(c["id"] in reply.text for c in first["candidates"])
    assert all(sid in reply.text for sid in first["skipped"])
    assert "run_sweep (1)" in reply.text and reply.honesty.honest


@pytest.mark.slow
def test_offline_planner_follow_up_why_this_one_gives_the_sweeps_reason(conversation: dict[str, Any]) -> None:
    reply: Reply = conversation["replies"]["why this one?"]
    rerank = next(r for r in conversation["replies"]["I can accept 2%"].tool_calls if r.name == "recommend")
    assert (
        rerank.result is not None
        and [r.name for r in reply.tool_calls] == ["list_models"]
        and reply.outcome == "answered"
    )
    assert rerank.result["recommendation"]["reason"] in reply.text and reply.honesty.honest


@pytest.mark.slow
def test_offline_planner_follow_up_show_the_smallest_reranks(conversation: dict[str, Any]) -> None:
    reply: Reply = conversation["replies"]["show me the smallest one"]
    rec = next(r for r in reply.tool_calls if r.name == "recommend")
    assert rec.result is not None and rec.result["goal"]["objective"] == "size"
    assert "run_sweep" not in [r.name for r in reply.tool_calls] and reply.outcome == "met"


@pytest.mark.slow
def test_offline_planner_follow_up_make_it_smaller_finds_a_smaller_model(
    conversation: dict[str, Any],
) -> None:
    first = conversation["replies"][GOAL_MET]
    reply: Reply = conversation["replies"]["make it smaller"]
    size_before = next(c for c in _report(first)["candidates"] if c["id"] == first.recommended)["metrics"][
        "size_bytes"
    ]
    report = _report(reply)
    best = next(c for c in report["candidates"] if c["id"] == reply.recommended)
    assert reply.outcome == "met" and best["metrics"]["size_bytes"] < size_before
    # the conversation accepted 2% before ("I can accept 2%"): the tightened goal keeps that limit
    limit = report["goal"]["max_accuracy_drop_pct"]
    assert (
        limit == 2.0
        and best["metrics"]["accuracy_drop_pct"] <= limit
        and report["goal"]["objective"] == "size"
    )
    assert reply.honesty.honest


@pytest.mark.slow
def test_offline_planner_follow_up_goal_is_merged_on_the_server_and_reaches_the_sweep_as_fields(
    conversation: dict[str, Any],
) -> None:
    from assistant.honesty import latest_verdict

    reply: Reply = conversation["replies"]["actually it has to fit in 15 KB"]
    before = latest_verdict(conversation["replies"]["make it smaller"].tool_calls).goal
    merge = next(r for r in reply.tool_calls if r.name == "parse_goal" and "prior" in r.arguments)
    assert before is not None and merge.result is not None
    # the goal of the last verdict goes to the server as it came back, and the server merges the new words
    assert merge.arguments == {
        "text": "actually it has to fit in 15 KB",
        "prior": {k: v for k, v in before.items() if k != "has_constraints"},
    }
    sweep = next(r for r in reply.tool_calls if r.name == "run_sweep")
    goal = sweep.arguments["goal"]
    assert isinstance(goal, dict) and goal["max_size_mb"] == 0.015 and goal["max_size_ratio"] is None
    assert goal["max_accuracy_drop_pct"] == before["max_accuracy_drop_pct"] and goal["objective"] == "size"
    assert {k: v for k, v in merge.result["goal"].items() if k != "has_constraints"} == goal
    assert sweep.job is not None and sweep.job["goal_fields"]["max_size_mb"] == 0.015
    assert _report(reply)["goal"]["max_size_mb"] == 0.015 and reply.outcome == "not_met"


@pytest.mark.slow
def test_offline_planner_says_an_impossible_goal_cannot_be_met_and_why(
    server_settings: Any, offline_settings: AssistantSettings
) -> None:
    with Assistant(offline_settings, server_settings=server_settings) as a:
        reply = a.ask(GOAL_IMPOSSIBLE)
    report = _report(reply)
    assert report["recommended"] is None and reply.outcome == "not_met"
    assert "cannot be met" in reply.text and report["nearest"][0]["candidate_id"] in reply.text
    assert "Why: the smallest model measured is" in reply.text
    assert reply.recommended is None and reply.honesty.honest and not reply.honesty.claims_goal_met


def test_assistant_talks_to_a_server_over_stdio_when_a_command_is_given(
    tmp_path: Path, zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTTAAS_HOME", str(tmp_path / "stdio-home"))
    monkeypatch.setenv("QUANTTAAS_ZOO_DIR", str(zoo_dir))
    exe = Path(sys.executable).with_name("quanttaas")
    command = f"{exe} mcp" if exe.is_file() else f"{sys.executable} -m quanttaas mcp"
    settings = AssistantSettings(llm="offline", mcp_url=None, mcp_command=command)
    with Assistant(settings) as a:
        reply = a.ask("hello, what can you do?")
        transport = a.inner.tools.transport
    assert transport.startswith("stdio") and reply.outcome == "needs_input"
    names = [r.name for r in reply.tool_calls]
    assert names[:2] == ["list_zoo", "list_models"] and "run_sweep" not in names
    assert all(r.ok for r in reply.tool_calls)
    assert "digits-cnn" in reply.text and json.dumps(reply.model_dump(mode="json"))
    assert os.environ["QUANTTAAS_HOME"].endswith("stdio-home")


@pytest.mark.slow
def test_offline_planner_registers_a_model_file_and_data_given_outside_the_text(
    server_settings: Any, offline_settings: AssistantSettings, zoo_dir: Path
) -> None:
    case = zoo_dir / "digits-cnn"
    with Assistant(offline_settings, server_settings=server_settings) as a:
        reply = a.ask(
            "under 40 KB with at most 1% accuracy loss",
            model=str(case / "model.onnx"),
            data=str(case / "eval.npz"),
        )
    calls = {r.name: r for r in reply.tool_calls}
    assert calls["register_model"].ok and calls["register_data"].ok
    model_id = calls["register_model"].result["model"]["id"]  # type: ignore[index]
    data_id = calls["register_data"].result["data"]["id"]  # type: ignore[index]
    sent = calls["run_sweep"].arguments
    assert sent["model"] == model_id and sent["data"] == data_id and set(sent) == {"model", "goal", "data"}
    assert sent["goal"]["text"] == "under 40 KB with at most 1% accuracy loss"
    assert sent["goal"]["max_size_mb"] == 0.04 and sent["goal"]["max_accuracy_drop_pct"] == 1.0
    assert reply.outcome == "met" and reply.honesty.honest and model_id in reply.text
