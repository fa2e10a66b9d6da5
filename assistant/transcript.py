"""The conversation as OpenAI-style messages, and the tool records read back from them.

Both brains see the same messages: ``user`` messages, ``assistant`` messages (text, or ``tool_calls``), and ``tool``
messages whose content is JSON: ``{"ok", "summary", "result" | "error", "job"?}``. The offline planner derives all
its state from these messages, so it can also sit behind litellm as a custom provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from assistant.events import ToolRecord

__all__ = ["Turn", "records_of", "tool_message", "tool_message_content", "turns_of"]

CONTEXT_OPEN = "[context:"


def _strip_blobs(obj: Any) -> Any:
    """Inline file contents are replaced by their size: the brains never need the bytes."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k == "content_base64" and isinstance(v, str):
                out[k] = f"<{len(v)} base64 characters omitted>"
            else:
                out[k] = _strip_blobs(v)
        return out
    if isinstance(obj, list):
        return [_strip_blobs(v) for v in obj]
    return obj


def tool_message_content(record: ToolRecord) -> str:
    """The JSON a brain reads for one tool call."""
    body: dict[str, Any] = {"ok": record.ok, "summary": record.text}
    if record.ok:
        body["result"] = _strip_blobs(record.result)
    else:
        body["error"] = record.error or {"code": "error", "message": record.text, "hint": ""}
    if record.job is not None:
        body["job"] = _strip_blobs(record.job)
    return json.dumps(body, ensure_ascii=False)


def tool_message(record: ToolRecord) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": record.call_id, "content": tool_message_content(record)}


@dataclass
class Turn:
    """One user message and everything that answered it."""

    user: str
    records: list[ToolRecord] = field(default_factory=list)
    answer: str | None = None


def _record(call: dict[str, Any], content: str | None) -> ToolRecord:
    fn = call.get("function") or {}
    raw_args = fn.get("arguments") or "{}"
    try:
        args = json.loads(raw_args) if isinstance(raw_args, str) else dict(raw_args)
    except (ValueError, TypeError):
        args = {}
    if not isinstance(args, dict):
        args = {}
    body: dict[str, Any] = {}
    if content:
        try:
            parsed = json.loads(content)
            body = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            body = {"ok": False, "summary": content[:500]}
    ok = bool(body.get("ok", False))
    result = body.get("result") if ok else None
    return ToolRecord(
        call_id=str(call.get("id", "")),
        name=str(fn.get("name", "")),
        arguments=args,
        ok=ok,
        result=result if isinstance(result, dict) else None,
        text=str(body.get("summary", "")),
        error=body.get("error") if isinstance(body.get("error"), dict) else None,
        job=body.get("job") if isinstance(body.get("job"), dict) else None,
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def turns_of(messages: list[dict[str, Any]]) -> list[Turn]:
    """The conversation split into turns (system messages are skipped)."""
    turns: list[Turn] = []
    results: dict[str, str] = {
        str(m.get("tool_call_id")): _content_text(m.get("content"))
        for m in messages
        if m.get("role") == "tool"
    }
    for m in messages:
        role = m.get("role")
        if role == "user":
            turns.append(Turn(user=_content_text(m.get("content"))))
        elif role == "assistant" and turns:
            for call in m.get("tool_calls") or []:
                call_d = call if isinstance(call, dict) else _call_dict(call)
                turns[-1].records.append(_record(call_d, results.get(str(call_d.get("id")))))
            text = _content_text(m.get("content"))
            if text and not m.get("tool_calls"):
                turns[-1].answer = text
    return turns


def _call_dict(call: Any) -> dict[str, Any]:
    """A tool call object (litellm's) as a plain dict."""
    fn = getattr(call, "function", None)
    return {
        "id": getattr(call, "id", ""),
        "function": {"name": getattr(fn, "name", ""), "arguments": getattr(fn, "arguments", "{}")},
    }


def records_of(messages: list[dict[str, Any]]) -> list[ToolRecord]:
    """Every tool record of the conversation, in order."""
    return [r for t in turns_of(messages) for r in t.records]


def split_context(text: str) -> tuple[str, dict[str, str]]:
    """A user message without its ``[context: model=...; data=...]`` block, and the block's values."""
    start = text.rfind(CONTEXT_OPEN)
    if start < 0 or not text.rstrip().endswith("]"):
        return text, {}
    block = text[start + len(CONTEXT_OPEN) : text.rstrip().rfind("]")]
    values: dict[str, str] = {}
    for part in block.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            values[k.strip()] = v.strip()
    return text[:start].rstrip(), values


def with_context(text: str, **values: str | None) -> str:
    """``text`` with a ``[context: ...]`` block naming the model and data the user chose outside the text."""
    given = {k: v for k, v in values.items() if v}
    if not given:
        return text
    return f"{text}\n{CONTEXT_OPEN} " + "; ".join(f"{k}={v}" for k, v in given.items()) + "]"
