"""The LLM brain: any litellm model (OpenAI, Anthropic, Ollama, an OpenAI-compatible server) calling the tools.

litellm is imported on first use only (it takes seconds to import), so the offline default never pays for it.
Every failure of the call (no key, rate limit, context too long, network) becomes a :class:`BrainError` whose
sentence the user reads before the offline planner answers instead.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from assistant.brain import BrainError, BrainStep, ToolCall
from assistant.settings import AssistantSettings

__all__ = ["OFFLINE_MODEL", "SYSTEM_PROMPT", "LiteLLMBrain", "import_litellm", "register_offline_provider"]

SYSTEM_PROMPT = """\
You are QuantTaaS, an assistant that compresses trained neural networks (int8, fp16 and int4 quantization) and \
proves the trade-off with measurements. You act only through the tools you are given.

Workflow for a request such as "make digits-cnn under 40 KB with less than 1% accuracy loss":
1. Find the model: list_zoo and list_models show the names the tools accept (a file path is stored with \
register_model; evaluation data with register_data).
2. The goal is structured data (max_size_mb, max_size_ratio, max_accuracy_drop_pct, max_latency_ms, min_speedup, \
objective, methods_allowed / methods_forbidden / methods_requested, precision, device). parse_goal(text) reads the \
user's words (without the model's name) into it: keep the `goal` it returns, mention any words it did not \
understand, and check `runnable` (false: the goal sets nothing run_sweep can aim at; ask for a limit). You may also \
fill the goal's fields yourself and pass that object.
3. inspect_model, then profile_layers (samples=16) to learn which layers int8 hurts most.
4. run_sweep(model, goal=<the goal object>): the agent waits for the job and gives you its final state in the same \
tool result; then get_pareto_report(job_id) for the measured candidates, the Pareto front, the recommendation and \
`misses` (each candidate's misses against the goal, from the server's goal check).
5. For a changed goal on the same model ("I can accept 2%", "no pruning"), call parse_goal(text=<the new words>, \
prior=<the goal of the last result>): the server merges them (what the words set replaces, the rest is kept). Then \
recommend(job_id, goal=<the merged goal>) re-ranks what was measured; run a new sweep only when nothing measured \
meets it. For "make it smaller" set a bound just under the current recommendation in the goal object yourself.
6. Answer in plain English: the recommended candidate and its measured size, accuracy (drop in points) and latency \
against the original, why it was chosen, and its files (the candidate's model_path, the best_artifact and \
'<job_id>/report.json'). When nothing meets the goal, say plainly that it cannot be met and show the nearest \
candidates and by how much they miss.

Rules: every number you write must come from a tool result of this conversation (copy it, or convert its unit). \
Say the goal is met only when get_pareto_report or recommend recommends a candidate for that goal. Errors come back \
as {"error": {"code", "message", "hint"}}: read the hint and act on it. Be brief."""


_REASONS: dict[str, str] = {
    "AuthenticationError": "no valid API key",
    "PermissionDeniedError": "the key is not allowed to use this model",
    "RateLimitError": "it hit a rate limit",
    "ContextWindowExceededError": "the conversation is too long for its context window",
    "APIConnectionError": "it could not be reached",
    "Timeout": "it timed out",
    "NotFoundError": "the model was not found",
    "BadRequestError": "it refused the request",
    "ServiceUnavailableError": "the service is unavailable",
    "InternalServerError": "the service failed",
}


def import_litellm() -> Any:
    """litellm, imported offline-safe (no cost-map download, no feedback banners)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def failure_sentence(model: str, e: BaseException) -> str:
    """One sentence that says why the LLM call failed."""
    reason = None
    for cls in type(e).__mro__:
        reason = reason or next((r for k, r in _REASONS.items() if k in cls.__name__), None)
    detail = " ".join(str(e).split()).split(" - ", 1)[-1]
    detail = re.split(r"(?<=[.!?])\s", detail, maxsplit=1)[0].rstrip(".")[:100]
    if re.search(r"credential|api[_ ]key", detail, re.I):
        reason, detail = "no API key is configured", ""
    why = f"{reason or type(e).__name__}" + (f": {detail}" if detail else "")
    return f"The LLM {model} could not answer ({why}), so the offline planner answered instead."


class LiteLLMBrain:
    """A brain backed by ``litellm.acompletion`` with the tools' OpenAI-style specs."""

    def __init__(self, settings: AssistantSettings):
        llm = (settings.llm or "").strip()
        self.settings = settings
        self.api_base = settings.llm_api_base
        self.api_key: str | None = None
        if llm.startswith(("http://", "https://")):
            self.model = f"openai/{settings.llm_model}"
            self.api_base = llm
            self.api_key = os.environ.get("OPENAI_API_KEY") or "none"
        else:
            self.model = llm
        self.name = self.model
        self._register_offline = self.model == OFFLINE_MODEL

    async def next(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> BrainStep:
        try:
            litellm = import_litellm()
            if self._register_offline:
                register_offline_provider()
                self._register_offline = False
            kwargs: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *messages],
                "tools": tools,
                "tool_choice": "auto",
                "temperature": self.settings.llm_temperature,
                "timeout": self.settings.llm_timeout_s,
                "num_retries": 0,
            }
            if self.api_base:
                kwargs["api_base"] = self.api_base
            if self.api_key:
                kwargs["api_key"] = self.api_key
            response = await litellm.acompletion(**kwargs)
            message = response.choices[0].message
        except Exception as e:
            raise BrainError(failure_sentence(self.model, e)) from e
        calls: list[ToolCall] = []
        for i, tc in enumerate(getattr(message, "tool_calls", None) or []):
            fn = tc.function
            raw = fn.arguments or "{}"
            try:
                args = json.loads(raw) if isinstance(raw, str) else dict(raw)
            except (ValueError, TypeError):
                args = {"_unparsable_arguments": str(raw)[:200]}
            if not isinstance(args, dict):
                args = {"_arguments": args}
            calls.append(ToolCall(id=str(tc.id or f"llm-{i}"), name=str(fn.name), arguments=args))
        text = message.content if isinstance(message.content, str) else None
        if not calls and not (text and text.strip()):
            raise BrainError(
                f"The LLM {self.model} returned an empty answer, so the offline planner answered instead."
            )
        return BrainStep(tool_calls=calls, text=text if not calls else None)


OFFLINE_MODEL = "quanttaas-offline/planner"


def register_offline_provider() -> str:
    """Serve the offline planner through litellm as ``quanttaas-offline/planner`` (a ``litellm.CustomLLM``).

    The planner is a pure function of the messages, so it answers behind the very ``completion()`` call an LLM
    answers behind: ``QUANTTAAS_LLM=quanttaas-offline/planner`` runs it through litellm. Returns the model string.
    """
    litellm = import_litellm()
    from assistant.planner import plan

    class OfflinePlannerLLM(litellm.CustomLLM):  # type: ignore[misc,name-defined]
        def _respond(self, messages: list[dict[str, Any]]) -> Any:
            step = plan([m if isinstance(m, dict) else dict(m) for m in messages])
            if step.tool_calls:
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in step.tool_calls
                    ],
                }
                return litellm.ModelResponse(choices=[{"message": message, "finish_reason": "tool_calls"}])
            message = {"role": "assistant", "content": step.text or ""}
            return litellm.ModelResponse(choices=[{"message": message, "finish_reason": "stop"}])

        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            return self._respond(messages)

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
        ) -> Any:
            return self._respond(messages)

    provider = OFFLINE_MODEL.split("/", 1)[0]
    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != provider],
        {"provider": provider, "custom_handler": OfflinePlannerLLM()},
    ]
    return OFFLINE_MODEL
