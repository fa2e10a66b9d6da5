"""One step of the offline planner: read the message, then route it to the workflow or to an answer.

:func:`plan` is the whole brain: a pure function from the conversation's messages to the next step. It makes sure
the server's catalog is known, registers the files the message names, finds the model it names, and then either
answers a question about the last sweep (what was tried, why not a technique, why this one) or hands a goal to the
:class:`~assistant.planner.workflow.Workflow`.
"""

from __future__ import annotations

from typing import Any

from assistant.brain import BrainStep
from assistant.planner import prose
from assistant.planner.intent import files_named, mentions, read_question, without_mentions
from assistant.planner.state import Conversation, answer
from assistant.planner.workflow import Workflow
from assistant.transcript import turns_of

__all__ = ["PLANNER_NAME", "OfflinePlanner", "plan"]

PLANNER_NAME = "offline-planner"


class OfflinePlanner:
    """The rule-based brain (no network, no LLM)."""

    name = PLANNER_NAME

    async def next(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> BrainStep:
        return plan(messages)


def plan(messages: list[dict[str, Any]]) -> BrainStep:
    """The next step for the conversation ``messages`` (OpenAI-style). Raises nothing."""
    turns = turns_of(messages)
    if not turns:
        return BrainStep(text=prose.HELP, outcome="needs_input")
    return _step(Conversation(turns))


def _step(conv: Conversation) -> BrainStep:
    # 1. what the server holds
    # the zoo is fixed; stored models change (uploads, other clients), so they are listed again each turn
    need: list[tuple[str, dict[str, Any]]] = []
    if conv.log.call("list_zoo", {}) is None:
        need.append(("list_zoo", {}))
    if conv.this_turn.call("list_models", {}) is None:
        need.append(("list_models", {}))
    if need:
        return conv.call(*need)
    catalog = conv.log.catalog()

    # 2. files named in the text or given with --model / --data
    files = files_named(conv.text, conv.context)
    registered: dict[str, str] = {}
    for path, tool, key in (
        (files.model_path, "register_model", "model"),
        (files.data_path, "register_data", "data"),
    ):
        if path is None:
            continue
        args = {"path": path}
        r = conv.log.call(tool, args)
        if r is None:
            return conv.call((tool, args))
        if not r.ok:
            return conv.error_answer(f"use the file {path}", r)
        registered[key] = str((r.result or {}).get(key, {}).get("id", ""))

    # 3. the model
    found = mentions(files.text, [*catalog.zoo, *catalog.stored])
    named = registered.get("model") or files.model_id or (found[0][2] if found else None)
    cleaned = without_mentions(files.text, found)
    data = registered.get("data") or files.data_id
    calib = conv.context.get("calib") or None  # a stored data id chosen outside the text (the page's upload)
    case = conv.case()
    follow_up = case is not None and (named is None or named == case.model)

    # 4. what is asked
    question = read_question(cleaned)
    if follow_up and case is not None and question is not None:
        if question.kind == "tried":
            return answer(prose.tried(conv, case), "answered")
        if question.kind == "why_not":
            return prose.why_not(conv, case, question.about)
        if question.kind == "show":
            return Workflow(conv).show(case, question.about)
        if question.kind == "more":
            return Workflow(conv).more(case, question.about)
        return prose.explain_choice(conv, case)
    if not follow_up and question is not None and question.kind in ("tried", "why_not"):
        return answer(
            "I have not run a sweep in this conversation yet, so there is nothing to explain. " + prose.HELP,
            "needs_input",
        )
    return Workflow(conv).goal_request(
        cleaned, named, data, case, follow_up=case is not None and named is None, calib=calib
    )
