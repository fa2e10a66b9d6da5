"""What the planner knows at a step: the conversation so far and the case it is about (the last sweep).

Everything is read from the transcript (user texts and tool records), so the planner stays a pure function of the
conversation. :class:`Conversation` also builds the steps it returns: tool calls with ids unique in the turn, and
answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.brain import BrainStep, ToolCall
from assistant.events import Outcome, ToolRecord
from assistant.transcript import Turn, split_context

__all__ = ["Case", "Conversation", "answer"]

# errors that are the server's fault (or a technique's), not something the user can change in the request
_FAILURES = ("internal_error", "technique_failed", "evaluation_failed", "job_failed")


def answer(text: str, outcome: Outcome) -> BrainStep:
    """A final answer."""
    return BrainStep(text=text, outcome=outcome)


@dataclass
class Case:
    """The last sweep of the conversation: its model, data, job, report and the last verdict on it."""

    model: str
    data: str | None
    job_id: str | None
    job: dict[str, Any] | None
    report: dict[str, Any] | None  # the get_pareto_report result
    goal: dict[str, Any] | None  # the goal of the last verdict on this job (report or recommend)
    recommended: str | None = None  # what the last verdict recommends
    misses: dict[str, list[dict[str, Any]]] | None = None  # the last verdict's misses (server goal check)


class Conversation:
    """The turns so far, the tool records of this turn and of earlier ones, and the user's message."""

    def __init__(self, turns: list[Turn]):
        self.turns = turns
        self.turn = turns[-1]
        self.all: list[ToolRecord] = [r for t in turns for r in t.records]
        # a follow-up refers to what the user saw (earlier turns), never to this turn's own work
        self.prior: list[ToolRecord] = [r for t in turns[:-1] for r in t.records]
        self.text, self.context = split_context(self.turn.user)
        self._n = len(self.turn.records)

    # ------------------------------------------------------------ steps

    def call(self, *calls: tuple[str, dict[str, Any]]) -> BrainStep:
        """A step that calls these tools (ids unique in the conversation)."""
        tc = []
        for i, (name, args) in enumerate(calls):
            tc.append(ToolCall(id=f"q{len(self.turns)}-{self._n + i}", name=name, arguments=args))
        return BrainStep(tool_calls=tc)

    def error_answer(self, what: str, r: ToolRecord) -> BrainStep:
        """The answer to a failed call: what could not be done, the server's message and hint."""
        err = r.error or {}
        code = str(err.get("code", "error"))
        msg = str(err.get("message", r.text))
        hint = str(err.get("hint", ""))
        text = f"I could not {what}: {msg}" + (f" Hint: {hint}" if hint else "")
        return answer(text, "error" if code in _FAILURES else "needs_input")

    # ------------------------------------------------------------ the records

    def find(self, name: str, args: dict[str, Any], *, this_turn: bool = False) -> ToolRecord | None:
        """The last call of ``name`` with exactly ``args`` (this turn only with ``this_turn``), whatever it returned."""
        pool = self.turn.records if this_turn else self.all
        for r in reversed(pool):
            if r.name == name and r.arguments == args:
                return r
        return None

    def catalog(self) -> tuple[list[str], list[str]]:
        """The zoo names and the stored model ids the server listed (and the models registered since)."""
        zoo: list[str] = []
        stored: list[str] = []
        for r in self.all:
            if not r.ok or r.result is None:
                continue
            if r.name == "list_zoo":
                zoo = [str(e.get("name")) for e in r.result.get("entries", [])]
            elif r.name == "list_models":
                stored = [str(m.get("id")) for m in r.result.get("models", [])]
                zoo = zoo or [str(z) for z in r.result.get("zoo", [])]
            elif r.name == "register_model":
                mid = str(r.result.get("model", {}).get("id", ""))
                if mid and mid not in stored:
                    stored.append(mid)
        return zoo, stored

    def case(self) -> Case | None:
        """The last sweep of earlier turns and the last verdict on it, or None before any sweep."""
        sweeps = [
            r
            for r in self.prior
            if r.name == "run_sweep" and r.ok and r.result is not None and "model" in r.arguments
        ]
        if not sweeps:
            return None
        s = sweeps[-1]
        job_id = str((s.result or {}).get("job_id", ""))
        report = None
        goal: dict[str, Any] | None = None
        recommended: str | None = None
        misses: dict[str, list[dict[str, Any]]] | None = None
        for r in self.prior:
            if not r.ok or r.result is None or r.result.get("job_id") != job_id:
                continue
            if r.name == "get_pareto_report":
                report = r.result
                body = r.result.get("report", {})
                goal, recommended, misses = body.get("goal"), body.get("recommended"), body.get("misses")
            elif r.name == "recommend":
                goal, misses = r.result.get("goal"), r.result.get("misses")
                recommended = r.result.get("recommendation", {}).get("recommended")
        if goal is None:  # no verdict yet (the sweep failed): the goal the sweep ran
            goal = (s.job or {}).get("goal_fields") or (s.result or {}).get("goal_fields")
        return Case(
            model=str(s.arguments["model"]),
            data=s.arguments.get("data"),
            job_id=job_id or None,
            job=s.job,
            report=report,
            goal=goal,
            recommended=recommended,
            misses=misses,
        )
