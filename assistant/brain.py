"""The one interface both brains implement: given the conversation and the tool specs, the next step.

A step is either tool calls (the agent runs them through the MCP client and asks again) or a final text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.events import Outcome

__all__ = ["Brain", "BrainError", "BrainStep", "ToolCall"]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class BrainStep:
    """Tool calls to run, or the final ``text`` (with the planner's own ``outcome`` when it knows it)."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str | None = None
    outcome: Outcome | None = None


class BrainError(Exception):
    """The brain could not answer (no key, rate limit, context too long, network...); ``sentence`` says why."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence


class Brain(Protocol):
    """Decides the next step of the agent loop."""

    name: str

    async def next(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> BrainStep:
        """The next step for ``messages`` (OpenAI-style). Raises BrainError when it cannot answer."""
        ...
