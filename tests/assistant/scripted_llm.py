"""A scripted model served through litellm (``litellm.CustomLLM``): it issues real tool calls and reads their real
results from the messages, so the LLM brain is tested end to end without any LLM service."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from assistant.llm import import_litellm

litellm = import_litellm()

Script = Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedLLM(litellm.CustomLLM):  # type: ignore[misc,name-defined]
    """Answers with what ``script(messages)`` returns: ``{"tool": name, "args": {...}}``, ``{"text": ...}`` or
    ``{"raise": exception}``. Records the tools it was offered."""

    def __init__(self, script: Script):
        super().__init__()
        self.script = script
        self.offered: list[Any] = []
        self.calls = 0

    async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.offered.append((kwargs.get("optional_params") or {}).get("tools"))
        action = self.script(messages)
        if "raise" in action:
            raise action["raise"]
        if "tool" in action:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"s{self.calls}",
                        "type": "function",
                        "function": {"name": action["tool"], "arguments": json.dumps(action.get("args", {}))},
                    }
                ],
            }
            return litellm.ModelResponse(choices=[{"message": message, "finish_reason": "tool_calls"}])
        message = {"role": "assistant", "content": action["text"]}
        return litellm.ModelResponse(choices=[{"message": message, "finish_reason": "stop"}])


def register(name: str, llm: ScriptedLLM) -> str:
    """Serve ``llm`` as ``<name>/scripted`` through litellm; returns the model string."""
    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != name],
        {"provider": name, "custom_handler": llm},
    ]
    return f"{name}/scripted"


def tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool results since the last user message, parsed."""
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    return [json.loads(m["content"]) for m in messages[last_user:] if m.get("role") == "tool"]


def analyst(goal: str | dict[str, Any], *, claim_met: bool | None = None) -> Script:
    """Sweep digits-cnn for ``goal`` (the user's words, or the structured goal filled in directly), read the
    report, answer from it.

    ``claim_met=None`` answers honestly; ``True`` says the goal is met whatever the report says (a dishonest model).
    """

    def script(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = tool_results(messages)
        if not results:
            return {"tool": "run_sweep", "args": {"model": "digits-cnn", "goal": goal}}
        if len(results) == 1:
            return {"tool": "get_pareto_report", "args": {"job_id": results[0]["result"]["job_id"]}}
        report = results[-1]["result"]["report"]
        base = report["baseline"]
        cid = report["recommended"] or report["nearest"][0]["candidate_id"]
        cand = next(c for c in report["candidates"] if c["id"] == cid)
        m = cand["metrics"]
        numbers = (
            f"{m['size_bytes'] / 1000:.1f} KB instead of {base['size_bytes'] / 1000:.1f} KB, "
            f"accuracy drop {m['accuracy_drop_pct']:.2f} pt"
        )
        if claim_met or (claim_met is None and report["recommended"]):
            return {"text": f"Great news: {cid} meets your goal. It is {numbers}."}
        return {"text": f"No candidate meets your goal; the nearest is {cid}: {numbers}."}

    return script
