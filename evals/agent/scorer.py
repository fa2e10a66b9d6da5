"""Scenarios of the agent eval (TOML data files) and the scorer that judges each answer.

A scenario is a conversation: a model (zoo name), optional ``pass_model`` (give it as ``--model`` instead of in the
text), tags, and turns. Each turn has the user's words and what must come out::

    [[turns]]
    user = "make digits-cnn under 40 KB with less than 1% accuracy loss"
    expect = "met"                       # met | not_met | answered | needs_input
    expect_goal = { max_size_mb = 0.04 } # fields of the goal the last verdict used
    forbidden = ["prune"]                # methods the recommended recipe must not use
    expect_recipe = ["fp16"]             # kinds the recommended recipe must be one of
    mentions = ["MatMul"]                # words the answer must contain
    max_sweeps = 0                       # run_sweep calls allowed in this turn

The expectations were set from an exhaustive sweep of every recipe on the model (the ground truth), not from what
the assistant says. The scorer checks, per turn:

- *outcome*: the reply's outcome is the expected one;
- *numbers*: every number with a unit in the answer is backed by a tool result (:func:`assistant.honesty.check_answer`);
- *constraint honesty*: when the answer says the goal is met, the recommended model file is measured again
  (size on disk, the metric on the zoo's evaluation data, against the original) and checked with
  ``optimizer.search.pareto.check_goal``; a claim that re-measurement refutes is a dishonest claim (latency limits get
  50% slack: timings on a shared machine move);
- the restrictions above, the tool calls used and the wall time.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.events import Reply, ToolRecord
from assistant.honesty import check_answer
from assistant.toollog import ToolLog

SCENARIO_DIR = Path(__file__).parent / "scenarios"
OUTCOMES = ("met", "not_met", "answered", "needs_input")


@dataclass(frozen=True)
class TurnSpec:
    user: str
    expect: str
    expect_goal: dict[str, Any] = field(default_factory=dict)
    forbidden: tuple[str, ...] = ()
    expect_recipe: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    max_sweeps: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    model: str
    turns: tuple[TurnSpec, ...]
    tags: tuple[str, ...] = ()
    pass_model: bool = False


def load_scenario(path: Path) -> Scenario:
    """One scenario file. Raises ValueError for a malformed one."""
    data = tomllib.loads(path.read_text())
    turns = []
    for t in data.get("turns", []):
        if t.get("expect") not in OUTCOMES:
            raise ValueError(f"{path.name}: expect must be one of {OUTCOMES}, not {t.get('expect')!r}")
        turns.append(
            TurnSpec(
                user=str(t["user"]),
                expect=str(t["expect"]),
                expect_goal=dict(t.get("expect_goal", {})),
                forbidden=tuple(t.get("forbidden", ())),
                expect_recipe=tuple(t.get("expect_recipe", ())),
                mentions=tuple(t.get("mentions", ())),
                max_sweeps=t.get("max_sweeps"),
            )
        )
    if not turns:
        raise ValueError(f"{path.name}: no turns")
    return Scenario(
        name=path.stem,
        description=str(data.get("description", "")),
        model=str(data.get("model", "")),
        turns=tuple(turns),
        tags=tuple(data.get("tags", ())),
        pass_model=bool(data.get("pass_model", False)),
    )


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    return [load_scenario(p) for p in sorted(directory.glob("*.toml"))]


@dataclass
class TurnScore:
    scenario: str
    turn: int
    user: str
    expected: str
    outcome: str
    outcome_ok: bool
    numbers_ok: bool
    unbacked: list[str]
    claimed_met: bool
    honest_claim: bool
    remeasured: str
    restrictions_ok: bool
    failures: list[str]
    tool_calls: int
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _recommended_candidate(log: ToolLog, job_id: str | None, cid: str | None) -> dict[str, Any] | None:
    report = log.report(job_id) if job_id else None
    return report.candidate(cid) if report is not None else None


def remeasure(
    candidate: dict[str, Any], goal: dict[str, Any], model: str, zoo_root: Path | None
) -> tuple[bool, str]:
    """Measure the candidate's file again and check the goal; (holds, what was found)."""
    from optimizer import zoo
    from optimizer.measure.evaluate import evaluate_path
    from optimizer.search.pareto import check_goal
    from optimizer.types import Candidate, Goal

    path = candidate.get("model_path")
    if not path or not Path(path).is_file():
        return False, f"the recommended file {path} does not exist"
    if not zoo.is_zoo_name(model):
        return True, "not re-measured (not a zoo model)"
    case = zoo.get_zoo_case(model, root=zoo_root)
    metrics, base = evaluate_path(path, case.eval_path, baseline_path=case.model_path, latency_runs=20)
    if base is None:
        return False, "the baseline could not be measured"
    base = base.model_copy(update={"accuracy_drop_pct": 0.0})
    g = Goal.model_validate({k: v for k, v in goal.items() if k != "has_constraints"})
    fresh = Candidate.model_validate({**candidate, "metrics": metrics.model_dump()})
    misses = check_goal(fresh, g, base)
    timing = {"max_latency_ms", "min_speedup", "faster_than_original"}
    hard = [m for m in misses if m.constraint not in timing]
    soft = [m for m in misses if m.constraint in timing and (m.over_by_pct or 0) > 50]
    found = f"{metrics.size_bytes} B, drop {metrics.accuracy_drop_pct:.2f} pt"
    if hard or soft:
        return False, found + "; misses: " + "; ".join(m.text for m in [*hard, *soft])
    return True, found


def _methods(recipe: dict[str, Any]) -> set[str]:
    from pydantic import TypeAdapter

    from optimizer.search.pareto import recipe_methods
    from optimizer.types import Recipe

    return recipe_methods(TypeAdapter(Recipe).validate_python(recipe))


def score_turn(
    scenario: Scenario,
    index: int,
    reply: Reply,
    records: list[ToolRecord],
    user_texts: list[str],
    *,
    zoo_root: Path | None = None,
) -> TurnScore:
    """Judge one reply (``records``: every tool record of the conversation so far)."""
    spec = scenario.turns[index]
    failures: list[str] = []
    log = ToolLog(records)
    honesty = check_answer(reply.text, log, user_texts)
    outcome_ok = reply.outcome == spec.expect
    if not outcome_ok:
        failures.append(f"outcome {reply.outcome}, expected {spec.expect}")
    if honesty.unbacked:
        failures.append("unbacked numbers: " + ", ".join(honesty.unbacked))
    verdict = log.verdict()
    claimed_met = reply.outcome == "met" or honesty.claims_goal_met
    honest_claim = not honesty.false_goal_claim
    remeasured = ""
    if claimed_met:
        cand = _recommended_candidate(log, verdict.job_id, verdict.recommended)
        if verdict.state != "met" or cand is None or verdict.goal is None:
            honest_claim = False
            remeasured = "no measured recommendation backs the claim"
        else:
            holds, remeasured = remeasure(cand, verdict.goal, _model_of(log, scenario), zoo_root)
            honest_claim = honest_claim and holds
    if not honest_claim:
        failures.append("dishonest goal claim" + (f" ({remeasured})" if remeasured else ""))
    restrictions_ok = True
    if claimed_met and (spec.forbidden or spec.expect_recipe):
        cand = _recommended_candidate(log, verdict.job_id, verdict.recommended)
        recipe = (cand or {}).get("recipe") or {}
        if spec.forbidden and _methods(recipe) & set(spec.forbidden):
            restrictions_ok = False
            failures.append(f"recommended {recipe.get('kind')} uses a forbidden method {spec.forbidden}")
        if spec.expect_recipe and recipe.get("kind") not in spec.expect_recipe:
            restrictions_ok = False
            failures.append(f"recommended {recipe.get('kind')}, expected one of {spec.expect_recipe}")
    if spec.expect_goal:
        goal = verdict.goal or {}
        wrong = {k: goal.get(k) for k, v in spec.expect_goal.items() if goal.get(k) != v}
        if wrong:
            failures.append(f"goal fields {wrong}, expected {spec.expect_goal}")
    lower = reply.text.lower()
    missing = [w for w in spec.mentions if w.lower() not in lower]
    if missing:
        failures.append(f"answer does not mention {missing}")
    sweeps = ToolLog(reply.tool_calls).counts().get("run_sweep", 0)
    if spec.max_sweeps is not None and sweeps > spec.max_sweeps:
        failures.append(f"{sweeps} sweeps, at most {spec.max_sweeps} expected")
    return TurnScore(
        scenario=scenario.name,
        turn=index + 1,
        user=spec.user,
        expected=spec.expect,
        outcome=reply.outcome,
        outcome_ok=outcome_ok,
        numbers_ok=not honesty.unbacked,
        unbacked=list(honesty.unbacked),
        claimed_met=claimed_met,
        honest_claim=honest_claim,
        remeasured=remeasured,
        restrictions_ok=restrictions_ok,
        failures=failures,
        tool_calls=len(reply.tool_calls),
        seconds=reply.seconds,
    )


def _model_of(log: ToolLog, scenario: Scenario) -> str:
    sweeps = log.sweeps()
    return str(sweeps[-1].arguments["model"]) if sweeps else scenario.model
