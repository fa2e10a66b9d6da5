"""Run the agent eval: every scenario as a fresh conversation with the assistant, scored turn by turn.

``python -m evals.agent.run`` (what ``make eval`` runs) uses the offline planner, the tools in process with serial
sweeps, a private server home and the shared zoo cache, and prints a table per scenario and in total. Options:
``--tags smoke`` (only scenarios with one of these tags), ``--skip-slow``, ``--llm MODEL`` (score an LLM through
litellm instead of the planner), ``--json PATH`` and ``--markdown PATH`` to keep the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from evals.agent.scorer import Scenario, TurnScore, load_scenarios, score_turn

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ScenarioResult:
    scenario: Scenario
    turns: list[TurnScore]
    seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and all(t.passed for t in self.turns)
            and len(self.turns) == len(self.scenario.turns)
        )


def default_zoo_dir() -> Path:
    env = os.environ.get("QUANTTAAS_ZOO_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("QUANTTAAS_HOME", REPO / ".quanttaas")) / "zoo"


def _score(
    scenario: Scenario, index: int, reply: Any, records: list[Any], user_texts: list[str], zoo_root: Path
) -> TurnScore:
    return score_turn(scenario, index, reply, records, user_texts, zoo_root=zoo_root)


async def run_scenario(
    scenario: Scenario, *, server_settings: Any, assistant_settings: Any = None, brain: Any = None
) -> ScenarioResult:
    """One conversation: each turn asked in order and scored against everything the conversation did so far."""
    from assistant.agent import AsyncAssistant

    t0 = time.perf_counter()
    scores: list[TurnScore] = []
    try:
        async with AsyncAssistant(assistant_settings, server_settings=server_settings, brain=brain) as a:
            for i, turn in enumerate(scenario.turns):
                model = scenario.model if (scenario.pass_model and i == 0) else None
                reply = await a.ask(turn.user, model=model)
                user_texts = [str(m.get("content", "")) for m in a.messages if m.get("role") == "user"]
                score = await anyio.to_thread.run_sync(
                    _score, scenario, i, reply, list(a.records), user_texts, server_settings.zoo_root
                )
                scores.append(score)
    except Exception as e:  # a crash is a failed scenario, reported with the others
        return ScenarioResult(scenario, scores, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    return ScenarioResult(scenario, scores, time.perf_counter() - t0)


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    server_settings: Any,
    assistant_settings: Any = None,
    brain: Any = None,
    progress: Any = None,
) -> list[ScenarioResult]:
    results = []
    for s in scenarios:
        r = await run_scenario(
            s, server_settings=server_settings, assistant_settings=assistant_settings, brain=brain
        )
        if progress is not None:
            progress(r)
        results.append(r)
    return results


def summary(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    turns = [t for r in results for t in r.turns]
    n = len(turns) or 1
    return {
        "scenarios": len(results),
        "scenarios_passed": sum(r.passed for r in results),
        "turns": len(turns),
        "outcome_accuracy": sum(t.outcome_ok for t in turns) / n,
        "numbers_backed": sum(t.numbers_ok for t in turns) / n,
        "dishonest_claims": sum(not t.honest_claim for t in turns),
        "misreadings": sum(t.misread for t in turns),
        "questions_asked": sum(t.asked for t in turns),
        "claims_of_met": sum(t.claimed_met for t in turns),
        "tool_calls": sum(t.tool_calls for t in turns),
        "wall_seconds": round(sum(r.seconds for r in results), 1),
        "errors": [f"{r.scenario.name}: {r.error}" for r in results if r.error],
    }


def markdown(results: Sequence[ScenarioResult]) -> str:
    """The per-scenario table and the totals."""
    lines = [
        "| scenario | turns | outcomes right | numbers backed | dishonest claims | misreadings | questions asked "
        "| tool calls | wall s | pass |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.turns
        lines.append(
            f"| {r.scenario.name} | {len(r.scenario.turns)} | {sum(x.outcome_ok for x in t)}/{len(r.scenario.turns)} | "
            f"{sum(x.numbers_ok for x in t)}/{len(t)} | {sum(not x.honest_claim for x in t)} | "
            f"{sum(x.misread for x in t)} | {sum(x.asked for x in t)} | "
            f"{sum(x.tool_calls for x in t)} | {r.seconds:.1f} | {'yes' if r.passed else 'NO'} |"
        )
    s = summary(results)
    lines.append(
        f"| **total** | {s['turns']} | {s['outcome_accuracy']:.0%} | {s['numbers_backed']:.0%} | "
        f"{s['dishonest_claims']} | {s['misreadings']} | {s['questions_asked']} | {s['tool_calls']} | "
        f"{s['wall_seconds']} | "
        f"{s['scenarios_passed']}/{s['scenarios']} |"
    )
    failures = [
        f"- {t.scenario} turn {t.turn}: {'; '.join(t.failures)}"
        for r in results
        for t in r.turns
        if t.failures
    ]
    failures += [f"- {r.scenario.name}: {r.error}" for r in results if r.error]
    if failures:
        lines += ["", "Failures:", *failures]
    return "\n".join(lines)


def select(
    scenarios: list[Scenario], tags: Sequence[str], skip_slow: bool, names: Sequence[str]
) -> list[Scenario]:
    out = scenarios
    if tags:
        out = [s for s in out if set(tags) & set(s.tags)]
    if names:
        out = [s for s in out if any(n in s.name for n in names)]
    if skip_slow:
        out = [s for s in out if "slow" not in s.tags]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    p = argparse.ArgumentParser(prog="python -m evals.agent.run", description=__doc__)
    p.add_argument("--tags", nargs="*", default=[], help="only scenarios with one of these tags")
    p.add_argument("--name", nargs="*", default=[], help="only scenarios whose name contains one of these")
    p.add_argument(
        "--skip-slow", action="store_true", help="leave out the scenarios tagged slow (transformers)"
    )
    p.add_argument("--llm", help="score this litellm model instead of the offline planner")
    p.add_argument("--executor", default="serial", choices=["serial", "ray"])
    p.add_argument("--json", dest="json_path", help="write the results as JSON here")
    p.add_argument("--markdown", help="write the table here")
    args = p.parse_args(argv)

    from assistant.settings import AssistantSettings
    from mcp_server.settings import ServerSettings

    scenarios = select(load_scenarios(), args.tags, args.skip_slow, args.name)
    with tempfile.TemporaryDirectory(prefix="quanttaas-eval-") as home:
        server = ServerSettings(home=Path(home), zoo_dir=default_zoo_dir(), sweep_executor=args.executor)
        assistant = AssistantSettings(llm=args.llm or "offline", mcp_url=None, mcp_command=None)

        def show(r: ScenarioResult) -> None:
            mark = "pass" if r.passed else "FAIL"
            print(f"{mark} {r.scenario.name} ({r.seconds:.1f} s)", file=sys.stderr, flush=True)

        from assistant.cli import stdout_to_stderr

        with stdout_to_stderr() as out:  # the libraries print while sweeping; stdout keeps only the table
            results = anyio.run(
                lambda: run_scenarios(
                    scenarios, server_settings=server, assistant_settings=assistant, progress=show
                )
            )
            table = markdown(results)
            out.write(table + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    if args.json_path:
        payload = {
            "summary": summary(results),
            "brain": args.llm or "offline-planner",
            "scenarios": [
                {
                    "name": r.scenario.name,
                    "tags": list(r.scenario.tags),
                    "passed": r.passed,
                    "seconds": round(r.seconds, 2),
                    "error": r.error,
                    "turns": [t.as_dict() for t in r.turns],
                }
                for r in results
            ],
        }
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(payload, indent=2))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
