"""The QuantTaaS assistant: turns a request in plain words into measured compression results.

It drives the tools through an MCP client (in process by default, or a server by URL or stdio command), never by
importing the optimizer. Two brains share one agent loop: any LLM through litellm (``QUANTTAAS_LLM``), or, by
default and whenever the LLM fails, a deterministic offline planner. Every answer is checked: its numbers must come
from tool results and a goal it calls met must be met by the measurements.

```python
from assistant import Assistant

with Assistant() as a:
    reply = a.ask("make digits-cnn under 40 KB with less than 1% accuracy loss")
    print(reply.text, reply.files)
    print(a.ask("I can accept 2%").text)
```

Importing this package is light: the agent, MCP and litellm are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.agent import Assistant, AsyncAssistant
    from assistant.events import (
        Event,
        Final,
        Progress,
        Reply,
        TextEvent,
        ToolFinished,
        ToolRecord,
        ToolStarted,
    )
    from assistant.honesty import check_answer
    from assistant.settings import AssistantSettings

__all__ = [
    "Assistant",
    "AssistantSettings",
    "AsyncAssistant",
    "Event",
    "Final",
    "Progress",
    "Reply",
    "TextEvent",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "check_answer",
]

_WHERE = {
    "Assistant": "assistant.agent",
    "AsyncAssistant": "assistant.agent",
    "AssistantSettings": "assistant.settings",
    "check_answer": "assistant.honesty",
    **{
        name: "assistant.events"
        for name in (
            "Event",
            "Final",
            "Progress",
            "Reply",
            "TextEvent",
            "ToolFinished",
            "ToolRecord",
            "ToolStarted",
        )
    },
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
