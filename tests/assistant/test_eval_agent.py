"""The agent eval's data and scorer; the scenarios tagged `smoke` run here (the rest run with `make eval`)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from evals.agent.run import markdown, run_scenarios, summary
from evals.agent.scorer import load_scenarios


def test_eval_scenarios_cover_what_the_issue_asks_for() -> None:
    scenarios = load_scenarios()
    turns = [t for s in scenarios for t in s.turns]
    assert len(scenarios) >= 20
    assert sum(len(s.turns) > 1 for s in scenarios) >= 5
    assert sum(any(t.expect == "not_met" for t in s.turns) for s in scenarios) >= 5
    assert sum("forbidden" in s.tags for s in scenarios) >= 5
    assert {t.expect for t in turns} == {"met", "not_met", "answered", "needs_input"}
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_eval_scenarios_cover_the_kinds_of_sentence_and_more_than_one_model() -> None:
    scenarios = load_scenarios()
    reading = [s for s in scenarios if "reading" in s.tags]
    assert len(reading) >= 10 and all(
        t.expect_goal or t.max_sweeps == 0 for s in reading for t in s.turns[-1:]
    )
    assert len({s.model for s in scenarios}) >= 3
    assert any(t.expect == "needs_input" and t.max_sweeps == 0 for s in reading for t in s.turns)
    # a field that must stay unset is written "unset" (the misreadings the issue lists set the wrong field)
    assert sum("unset" in t.expect_goal.values() for s in reading for t in s.turns) >= 3


def test_eval_scorer_counts_a_silent_misreading_and_a_question() -> None:
    from assistant.events import Reply, ToolRecord
    from evals.agent.scorer import Scenario, TurnSpec, score_turn

    goal = {"max_size_mb": 0.075, "max_accuracy_drop_pct": 1.0}  # "under 75%" read as a size
    sweep = ToolRecord(
        call_id="s",
        name="run_sweep",
        arguments={"model": "digits-cnn", "goal": goal},
        ok=True,
        result={"job_id": "j", "state": "queued"},
        job={"job_id": "j", "state": "failed", "goal_fields": goal, "error": {"code": "x", "message": "m"}},
    )
    spec = TurnSpec(user="u", expect="not_met", expect_goal={"min_metric": 0.75, "max_size_mb": "unset"})
    scenario = Scenario("s", "", "digits-cnn", (spec,))
    reply = Reply(text="It failed.", outcome="not_met", brain="x", tool_calls=[sweep])
    score = score_turn(scenario, 0, reply, [sweep], ["u"])
    assert score.misread and not score.asked and not score.passed
    question = Reply(text="What do you mean?", outcome="needs_input", brain="x", tool_calls=[])
    asked = score_turn(
        Scenario("q", "", "digits-cnn", (TurnSpec(user="u", expect="needs_input", max_sweeps=0),)),
        0,
        question,
        [],
        ["u"],
    )
    assert asked.asked and not asked.misread and asked.passed


@pytest.mark.slow
def test_eval_smoke_scenarios_pass_with_the_offline_planner(
    server_settings: Any, offline_settings: Any
) -> None:
    scenarios = [s for s in load_scenarios() if "smoke" in s.tags]
    assert len(scenarios) >= 2
    results = anyio.run(
        lambda: run_scenarios(scenarios, server_settings=server_settings, assistant_settings=offline_settings)
    )
    s = summary(results)
    assert s["outcome_accuracy"] == 1.0 and s["dishonest_claims"] == 0 and s["numbers_backed"] == 1.0, (
        markdown(results)
    )
    assert s["scenarios_passed"] == len(scenarios) and s["tool_calls"] > 0
    assert "| **total** |" in markdown(results)


def test_eval_scorer_counts_a_met_claim_that_remeasurement_refutes_as_dishonest(zoo_dir: Any) -> None:
    from assistant.events import Reply, ToolRecord
    from evals.agent.scorer import Scenario, TurnSpec, score_turn
    from optimizer import zoo

    case = zoo.get_zoo_case("digits-cnn", root=zoo_dir)
    claimed = {"size_bytes": 36979, "metric_name": "top1", "metric": 0.98, "accuracy_drop_pct": 0.0}
    candidate = {"id": "c00-static_int8-pc-minmax", "recipe": {"kind": "static_int8"}, "metrics": claimed}
    report = ToolRecord(
        call_id="r",
        name="get_pareto_report",
        arguments={"job_id": "j"},
        ok=True,
        result={
            "job_id": "j",
            "report": {
                "baseline": {**claimed, "size_bytes": 105486},
                # the "quantized" file is really the fp32 original: 105 KB on disk, over the 40 KB limit
                "candidates": [{**candidate, "model_path": case.model_path}],
                "recommended": "c00-static_int8-pc-minmax",
                "reason": "",
                "nearest": [],
                "goal": {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0},
            },
        },
    )
    reply = Reply(
        text="c00-static_int8-pc-minmax meets your goal: 37 KB.",
        outcome="met",
        brain="x",
        tool_calls=[report],
    )
    scenario = Scenario("s", "", "digits-cnn", (TurnSpec(user="u", expect="met"),))
    score = score_turn(scenario, 0, reply, [report], ["u"], zoo_root=zoo_dir)
    assert score.outcome_ok and score.numbers_ok and score.claimed_met
    assert not score.honest_claim and not score.passed and "105486 B" in score.remeasured
