"""One step of the offline planner: read the message, then route it to the workflow or to an answer.

:func:`plan` is the whole brain: a pure function from the conversation's messages to the next step. It makes sure
the server's catalog is known, registers the files the message names, finds the model it names, and then either
answers a question about the last sweep (what was tried, why not a technique, why this one), goes on with a request
it asked back about ("yes" to the goal it read back, or the goal said another way), or hands a goal to the
:class:`~assistant.planner.workflow.Workflow`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from assistant.brain import BrainStep
from assistant.planner import prose
from assistant.planner.intent import (
    direction_in,
    files_named,
    is_confirmation,
    is_refusal,
    mentions,
    read_question,
    without_mentions,
)
from assistant.planner.state import Conversation, answer
from assistant.planner.workflow import Request, Workflow
from assistant.transcript import split_context, turns_of

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
        return BrainStep(text=prose.help_text(), outcome="needs_input")
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

    request = _request(conv, conv.text, conv.context)
    if isinstance(request, BrainStep):
        return request
    case = conv.case()
    follow_up = case is not None and (request.model is None or request.model == case.model)

    # 2. a request the planner asked back about: "yes" runs the goal it read back, other words restate it
    pending = conv.pending_question()
    if pending is not None and request.model is None:
        before = _request(conv, *split_context(pending.user))
        if isinstance(before, BrainStep):
            return before
        before_follows = case is not None and before.model is None
        if is_confirmation(request.words):
            before = before if before_follows else _with_direction(before)
            return Workflow(conv).goal_request(before, case, follow_up=before_follows, confirmed=True)
        if is_refusal(request.words):
            return answer(
                "Then please say your goal another way, for example `under 5 MB with at most 1% accuracy loss` "
                "or `as fast as possible`.",
                "needs_input",
            )
        if before.model is not None and not before_follows:
            restated = _with_direction(replace(before, words=request.words, prior=pending.goal))
            return Workflow(conv).goal_request(restated, case, follow_up=False)

    # 3. what is asked
    question = read_question(request.words)
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
            "I have not run a sweep in this conversation yet, so there is nothing to explain. "
            + prose.help_text(conv),
            "needs_input",
        )
    if not follow_up:
        request = _with_direction(request)
    return Workflow(conv).goal_request(request, case, follow_up=case is not None and request.model is None)


def _with_direction(request: Request) -> Request:
    """ "make digits-cnn faster": a new request that says which way to go (the planner reads those words)."""
    found = direction_in(request.words)
    return request if found is None else replace(request, direction=found)


def _request(conv: Conversation, text: str, context: dict[str, str]) -> Request | BrainStep:
    """The model, data and goal words of a message (files it names are registered first)."""
    catalog = conv.log.catalog()
    files = files_named(text, context)
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
    found = mentions(files.text, [*catalog.zoo, *catalog.stored], catalog.aliases)
    named = registered.get("model") or files.model_id or (found[0][2] if found else None)
    return Request(
        model=named,
        data=registered.get("data") or files.data_id,
        words=without_mentions(files.text, found),
        calib=conv.context.get("calib") or None,
    )
