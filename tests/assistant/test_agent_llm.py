"""The LLM brain end to end: a scripted model behind litellm issues real tool calls over the in-process MCP client,
reads their real results, and answers; the checker corrects it when it lies; failures fall back to the planner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import GOAL_IMPOSSIBLE, GOAL_MET
from scripted_llm import ScriptedLLM, analyst, litellm, register, tool_results

from assistant.agent import AsyncAssistant
from assistant.settings import AssistantSettings
from mcp_server.agent_tools import openai_tools

pytestmark = pytest.mark.anyio


def _settings(model: str) -> AssistantSettings:
    return AssistantSettings(llm=model, mcp_url=None, mcp_command=None, poll_interval_s=0.2)


@pytest.mark.slow
async def test_llm_brain_answers_from_real_tool_results_when_honest(server_settings: Any) -> None:
    llm = ScriptedLLM(analyst("under 40 KB with less than 1% accuracy loss"))
    model = register("honest", llm)
    async with AsyncAssistant(_settings(model), server_settings=server_settings) as a:
        reply = await a.ask(GOAL_MET)
    assert reply.brain == model and reply.notice is None and not reply.corrected
    assert [r.name for r in reply.tool_calls] == ["run_sweep", "get_pareto_report"]
    assert reply.tool_calls[0].job is not None and reply.tool_calls[0].job["state"] == "succeeded"
    assert reply.outcome == "met" and reply.honesty.honest and reply.honesty.claims_goal_met
    assert reply.recommended is not None and reply.recommended in reply.text
    assert reply.files["model"] in reply.text  # the agent names the files the LLM did not
    offered = llm.offered[0]
    assert [t["function"]["name"] for t in offered] == [t["function"]["name"] for t in openai_tools()]
    assert offered[0]["function"]["parameters"] == openai_tools()[0]["function"]["parameters"]


@pytest.mark.slow
async def test_llm_brain_fills_the_structured_goal_directly_through_the_tool_schema(
    server_settings: Any,
) -> None:
    goal = {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0, "methods_forbidden": ["prune"]}
    llm = ScriptedLLM(analyst(goal))
    model = register("fields", llm)
    async with AsyncAssistant(_settings(model), server_settings=server_settings) as a:
        reply = await a.ask(GOAL_MET)
    spec = next(t for t in llm.offered[0] if t["function"]["name"] == "run_sweep")["function"]["parameters"]
    fields = spec["$defs"]["Goal"]["properties"]
    assert {"max_size_mb", "max_accuracy_drop_pct", "objective", "methods_forbidden"} <= set(fields)
    assert '"$ref": "#/$defs/Goal"' in json.dumps(spec["properties"]["goal"])  # text or the goal object
    sweep = reply.tool_calls[0]
    assert sweep.name == "run_sweep" and sweep.arguments["goal"] == goal
    assert sweep.job is not None and sweep.job["goal_fields"]["methods_forbidden"] == ["prune"]
    report = reply.tool_calls[1].result
    assert report is not None and report["report"]["goal"]["max_size_mb"] == 0.04
    assert reply.outcome == "met" and reply.honesty.honest


@pytest.mark.slow
async def test_llm_brain_false_goal_claim_is_corrected_by_the_checker(server_settings: Any) -> None:
    model = register(
        "liar", ScriptedLLM(analyst("under 10 KB with less than 1% accuracy loss", claim_met=True))
    )
    async with AsyncAssistant(_settings(model), server_settings=server_settings) as a:
        reply = await a.ask(GOAL_IMPOSSIBLE)
    assert reply.corrected and reply.text.startswith("Correction:")
    assert "Great news" not in reply.text and "cannot be met" in reply.text
    assert reply.outcome == "not_met" and reply.recommended is None
    assert reply.honesty.honest and not reply.honesty.claims_goal_met


async def test_llm_brain_unbacked_numbers_are_flagged(server_settings: Any) -> None:
    def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
        if not tool_results(messages):
            return {"tool": "list_zoo", "args": {}}
        return {"text": "digits-cnn would shrink to 12.5 KB and run 3.1x faster."}

    model = register("guesser", ScriptedLLM(script))
    async with AsyncAssistant(_settings(model), server_settings=server_settings) as a:
        reply = await a.ask("how small could digits-cnn get?")
    assert reply.corrected and reply.honesty.unbacked == ["12.5 KB", "3.1x"]
    assert "no tool result of this conversation backs these numbers: 12.5 KB, 3.1x" in reply.text


async def test_llm_failure_is_told_in_one_sentence_and_the_planner_answers(
    server_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with AsyncAssistant(_settings("openai/gpt-4o-mini"), server_settings=server_settings) as a:
        reply = await a.ask("hello")
    assert reply.notice is not None and reply.notice.count(". ") == 0 and reply.notice.endswith("instead.")
    assert "openai/gpt-4o-mini" in reply.notice and "API key" in reply.notice
    assert reply.brain == "offline-planner" and reply.outcome == "needs_input" and "digits-cnn" in reply.text


@pytest.mark.slow
async def test_llm_failure_mid_turn_lets_the_planner_reuse_its_sweep(server_settings: Any) -> None:
    goal_words = "make the model under 40 KB with less than 1% accuracy loss"

    def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
        if not tool_results(messages):
            return {"tool": "run_sweep", "args": {"model": "digits-cnn", "goal": goal_words}}
        return {"raise": litellm.RateLimitError("slow down", llm_provider="scripted", model="scripted")}

    model = register("flaky", ScriptedLLM(script))
    async with AsyncAssistant(_settings(model), server_settings=server_settings) as a:
        reply = await a.ask(GOAL_MET)
    assert reply.notice is not None and "rate limit" in reply.notice
    assert [r.name for r in reply.tool_calls].count("run_sweep") == 1
    assert reply.outcome == "met" and reply.honesty.honest and reply.brain == "offline-planner"


async def test_offline_planner_served_through_litellm_runs_the_same_loop(server_settings: Any) -> None:
    from assistant.llm import OFFLINE_MODEL

    async with AsyncAssistant(_settings(OFFLINE_MODEL), server_settings=server_settings) as a:
        reply = await a.ask("why not int4 for the model under 40 KB?")
    assert reply.brain == OFFLINE_MODEL and reply.notice is None
    assert [r.name for r in reply.tool_calls][:3] == ["list_zoo", "list_models", "parse_goal"]
    assert "Which model should I optimize?" in reply.text and reply.honesty.honest
