"""What the assistant produces: tool records, the events a UI streams, and the final reply.

Every value is a frozen pydantic model, so a UI can serialise any of them with ``model_dump(mode="json")``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["met", "not_met", "answered", "needs_input", "error"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolRecord(_Frozen):
    """One tool call of this conversation and what it returned (the evidence every number must come from)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    result: dict[str, Any] | None = Field(default=None, description="the tool's structured result")
    text: str = Field(default="", description="the tool's one-line summary, or the error message")
    error: dict[str, Any] | None = Field(default=None, description="{code, message, hint} when it failed")
    seconds: float = 0.0
    job: dict[str, Any] | None = Field(
        default=None,
        description="for run_sweep: the job's final state (get_job) after the agent waited for it",
    )


class Claim(_Frozen):
    """A number with a unit found in an answer, and whether a tool result of the conversation backs it."""

    text: str
    dimension: Literal["size", "percent", "time", "ratio", "db"]
    value: float = Field(description="in the dimension's base unit: bytes, percent, ms, x, dB")
    backed: bool
    source: str | None = Field(default=None, description="the evidence that backs it")


class HonestyReport(_Frozen):
    """What the checker found in an answer."""

    claims: list[Claim] = Field(default_factory=list)
    unbacked: list[str] = Field(default_factory=list, description="the numbers no tool result backs")
    claims_goal_met: bool = False
    claims_goal_unmet: bool = False
    verdict: Literal["met", "not_met", "unknown"] = Field(
        default="unknown", description="what the tool results say about the active goal"
    )
    false_goal_claim: bool = Field(
        default=False, description="the answer says the goal is met but the measurements say it is not"
    )
    notes: list[str] = Field(default_factory=list)

    @property
    def honest(self) -> bool:
        """No unbacked number and no false claim that the goal is met."""
        return not self.unbacked and not self.false_goal_claim


class Reply(_Frozen):
    """The answer to one message."""

    text: str
    outcome: Outcome
    brain: str = Field(description="what answered: 'offline-planner' or the LLM model string")
    notice: str | None = Field(
        default=None, description="one sentence when the LLM failed and the planner answered"
    )
    corrected: bool = Field(
        default=False, description="the checker corrected or annotated the brain's answer"
    )
    tool_calls: list[ToolRecord] = Field(
        default_factory=list, description="the tool calls made for this message"
    )
    honesty: HonestyReport = Field(default_factory=HonestyReport)
    job_id: str | None = None
    recommended: str | None = Field(
        default=None, description="the recommended candidate id, when there is one"
    )
    files: dict[str, str] = Field(default_factory=dict, description="what -> path or artifact id")
    seconds: float = 0.0

    def __str__(self) -> str:
        return self.text


class TextEvent(_Frozen):
    """A sentence for the user before the final answer (e.g. that the LLM failed)."""

    type: Literal["text"] = "text"
    text: str


class ToolStarted(_Frozen):
    type: Literal["tool_started"] = "tool_started"
    call_id: str
    name: str
    arguments: dict[str, Any]


class ToolFinished(_Frozen):
    type: Literal["tool_finished"] = "tool_finished"
    record: ToolRecord


class Progress(_Frozen):
    """A sweep's progress while the agent waits for it."""

    type: Literal["progress"] = "progress"
    job_id: str
    state: str
    phase: str
    done: int
    planned: int
    message: str = ""


class Final(_Frozen):
    type: Literal["final"] = "final"
    reply: Reply


Event = TextEvent | ToolStarted | ToolFinished | Progress | Final
