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
from assistant.toollog import ReportView, ToolLog
from assistant.transcript import Turn, split_context

__all__ = ["ASK_BACK", "Case", "Conversation", "Pending", "answer"]

# errors that are the server's fault (or a technique's), not something the user can change in the request
_FAILURES = ("internal_error", "technique_failed", "evaluation_failed", "job_failed")


#: the sentence that ends a reading read back to the user: the next message may confirm it ("yes") or restate it
ASK_BACK = "Say yes to run it as I read it, or say it another way"


@dataclass(frozen=True)
class Pending:
    """A request the planner read back instead of running (:data:`ASK_BACK`): its message and the goal it read."""

    user: str
    goal: dict[str, Any] | None


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
    report: ReportView | None  # its report (get_pareto_report)
    goal: dict[str, Any] | None  # the goal of the last verdict on this job (report or recommend)
    recommended: str | None = None  # what the last verdict recommends
    calib: str | None = None  # the calibration data id the sweep was given (None: its default)
    misses: dict[str, list[dict[str, Any]]] | None = None  # the last verdict's misses (server goal check)


class Conversation:
    """The turns so far, the tool log of the conversation, of earlier turns and of this one, and the message."""

    def __init__(self, turns: list[Turn]):
        self.turns = turns
        self.turn = turns[-1]
        self.log = ToolLog(r for t in turns for r in t.records)
        # a follow-up refers to what the user saw (earlier turns), never to this turn's own work
        self.earlier = ToolLog(r for t in turns[:-1] for r in t.records)
        self.this_turn = ToolLog(self.turn.records)
        self.text, self.context = split_context(self.turn.user)

    # ------------------------------------------------------------ steps

    def call(self, *calls: tuple[str, dict[str, Any]]) -> BrainStep:
        """A step that calls these tools (ids unique in the conversation)."""
        n = len(self.this_turn)
        tc = [
            ToolCall(id=f"q{len(self.turns)}-{n + i}", name=name, arguments=args)
            for i, (name, args) in enumerate(calls)
        ]
        return BrainStep(tool_calls=tc)

    def error_answer(self, what: str, r: ToolRecord) -> BrainStep:
        """The answer to a failed call: what could not be done, the server's message and hint."""
        err = r.error or {}
        code = str(err.get("code", "error"))
        msg = str(err.get("message", r.text))
        hint = str(err.get("hint", ""))
        text = f"I could not {what}: {msg}" + (f" Hint: {hint}" if hint else "")
        return answer(text, "error" if code in _FAILURES else "needs_input")

    # ------------------------------------------------------------ the case

    def pending_question(self) -> Pending | None:
        """The request of the turn before, when its answer read the goal back and asked (nothing ran)."""
        if len(self.turns) < 2:
            return None
        before = self.turns[-2]
        if not before.answer or ASK_BACK not in before.answer:
            return None
        if any(r.name == "run_sweep" for r in before.records):
            return None
        parsed = [r for r in before.records if r.name == "parse_goal" and r.ok and r.result is not None]
        goal = (parsed[-1].result or {}).get("goal") if parsed else None
        return Pending(user=before.user, goal=goal if isinstance(goal, dict) else None)

    def case(self) -> Case | None:
        """The last sweep of earlier turns and the last verdict on it, or None before any sweep."""
        sweeps = self.earlier.sweeps()
        if not sweeps:
            return None
        s = sweeps[-1]
        job_id = str((s.result or {}).get("job_id", ""))
        verdict = self.earlier.for_job(job_id).verdict()
        report = self.earlier.report(job_id)
        # no verdict yet (the sweep failed): the goal the sweep ran
        goal = verdict.goal or (s.job or {}).get("goal_fields") or (s.result or {}).get("goal_fields")
        return Case(
            model=str(s.arguments["model"]),
            data=s.arguments.get("data"),
            job_id=job_id or None,
            job=s.job,
            report=report,
            goal=goal,
            recommended=verdict.recommended,
            misses=verdict.misses or None,
            calib=s.arguments.get("calib"),
        )
