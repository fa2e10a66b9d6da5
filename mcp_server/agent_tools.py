"""The agent's tool list: OpenAI-style function specs generated from the same registry as MCP and HTTP.

``litellm.completion(..., tools=openai_tools())`` gives an LLM exactly the tools, descriptions and input schemas an
MCP client sees; the agent then runs the chosen tool through an MCP client (or :func:`mcp_server.tools.call_tool`).
The goal is typed data here too: ``run_sweep`` and ``recommend`` take the structured goal (``$defs.Goal``, the object
``parse_goal`` returns, which an LLM may also fill field by field) as well as plain words, and ``parse_goal`` takes
a ``prior`` goal to merge a follow-up into.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp_server.tools import REGISTRY


def openai_tool(name: str) -> dict[str, Any]:
    """One tool as ``{"type": "function", "function": {"name", "description", "parameters"}}``.

    Raises:
        KeyError: no tool of that name.
    """
    tool = REGISTRY[name]
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.describe(), "parameters": tool.input_schema()},
    }


def openai_tools(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every tool (or those named, in that order) as OpenAI-style function specs."""
    return [openai_tool(n) for n in (names if names is not None else REGISTRY)]
