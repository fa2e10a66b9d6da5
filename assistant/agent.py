"""The agent loop: one loop for both brains, tools through MCP, and an honesty check before every answer.

For each user message: the brain (an LLM through litellm, or the offline planner) returns tool calls or a final
text; tool calls run through the MCP client; a ``run_sweep`` is waited for (``get_job`` polling, streamed as
progress events) and its final state is handed back with the call's result. The final text is checked
(:func:`assistant.honesty.check_answer`): an LLM answer that says the goal is met when the measurements say
otherwise is replaced by the planner's answer with a one-sentence correction, and numbers no tool result backs are
flagged. When the LLM call fails, the user is told in one sentence and the planner answers instead.

:class:`AsyncAssistant` is the async API; :class:`Assistant` is the same thing for synchronous callers (the CLI and
Streamlit), running the async one in a background event loop.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from assistant.answers import files_for, files_text
from assistant.brain import Brain, BrainError, BrainStep
from assistant.connection import DownloadError, ToolClient
from assistant.crosscheck import crosscheck_question, goal_differences, same_reading
from assistant.events import (
    Event,
    Final,
    Outcome,
    Progress,
    Reply,
    TextEvent,
    ToolFinished,
    ToolRecord,
    ToolStarted,
)
from assistant.honesty import build_evidence, check_answer
from assistant.planner import PLANNER_NAME, OfflinePlanner
from assistant.settings import AssistantSettings
from assistant.toollog import ToolLog
from assistant.transcript import split_context, tool_message, with_context

__all__ = ["Assistant", "AsyncAssistant", "make_brain"]

_ACTIVE = ("queued", "running")
_PLANNER_STEPS = 40


def make_brain(settings: AssistantSettings) -> Brain:
    """The LLM brain when ``QUANTTAAS_LLM`` is set, else the offline planner."""
    if settings.llm_configured():
        from assistant.llm import LiteLLMBrain

        return LiteLLMBrain(settings)
    return OfflinePlanner()


class AsyncAssistant:
    """A conversation with QuantTaaS. Use as ``async with AsyncAssistant() as a: reply = await a.ask("...")``.

    ``brain`` replaces the configured one (tests pass a scripted LLM); ``server_settings`` configures the in-process
    server (ignored with ``QUANTTAAS_MCP_URL`` or ``QUANTTAAS_MCP_COMMAND``); with ``save_dir`` the recommended
    model and the report are downloaded there through ``get_artifact``.
    """

    def __init__(
        self,
        settings: AssistantSettings | None = None,
        *,
        brain: Brain | None = None,
        server_settings: Any = None,
        save_dir: str | Path | None = None,
        chart_writer: Any = None,
    ):
        self.settings = settings or AssistantSettings()
        self.brain: Brain = brain or make_brain(self.settings)
        self.planner: OfflinePlanner = (
            self.brain if isinstance(self.brain, OfflinePlanner) else OfflinePlanner()
        )
        # chart_writer(report, path) writes each in-process sweep's pareto.html (the page hands its charts down)
        self.tools = ToolClient(self.settings, server_settings=server_settings, chart_writer=chart_writer)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.messages: list[dict[str, Any]] = []
        self.records = ToolLog()  # every tool call of the conversation, with its result
        self._specs: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        # the two readings of a goal the last cross-check asked about: either may then run
        self._offered: list[dict[str, Any]] = []

    async def __aenter__(self) -> AsyncAssistant:
        await self.tools.__aenter__()
        try:
            self._specs = await self.tools.tool_specs()
        except BaseException:
            await self.tools.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.tools.aclose()

    @property
    def tool_specs(self) -> list[dict[str, Any]]:
        """The tools the brain is given (OpenAI-style), as the server lists them."""
        return list(self._specs)

    # ------------------------------------------------------------------ public API

    async def ask(
        self, message: str, *, model: str | None = None, data: str | None = None, calib: str | None = None
    ) -> Reply:
        """Answer one message (``model``/``data``/``calib``: a zoo name, stored id or file path chosen outside the
        text; ``calib``: calibration data apart from the evaluation data)."""
        reply: Reply | None = None
        async for event in self.stream(message, model=model, data=data, calib=calib):
            if isinstance(event, Final):
                reply = event.reply
        if reply is None:  # never: stream always ends with Final
            raise RuntimeError("the agent loop ended without an answer")
        return reply

    async def stream(
        self, message: str, *, model: str | None = None, data: str | None = None, calib: str | None = None
    ) -> AsyncIterator[Event]:
        """Answer one message as events: text, tool started/finished, sweep progress, and the final reply.

        When the caller stops it (Ctrl-C cancels the task), a running sweep is cancelled on the server and the
        conversation is left consistent: every tool call gets a result, and the turn ends with a note.
        """
        try:
            async for event in self._stream(message, model=model, data=data, calib=calib):
                yield event
        except BaseException:
            self._repair()
            raise

    def _repair(self) -> None:
        """Give every tool call without a result an error result, and close the turn (after an interruption)."""
        answered = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        for m in list(self.messages):
            for call in m.get("tool_calls") or []:
                if call["id"] not in answered:
                    record = ToolRecord(
                        call_id=call["id"],
                        name=call["function"]["name"],
                        arguments=json.loads(call["function"]["arguments"] or "{}"),
                        ok=False,
                        text="stopped by the user",
                        error={"code": "cancelled", "message": "stopped by the user", "hint": ""},
                    )
                    self.records.append(record)
                    self.messages.append(tool_message(record))
                    answered.add(call["id"])
        if self.messages and self.messages[-1].get("role") != "assistant":
            self.messages.append({"role": "assistant", "content": "(stopped by the user)"})

    async def _stream(
        self, message: str, *, model: str | None, data: str | None, calib: str | None = None
    ) -> AsyncIterator[Event]:
        t0 = time.perf_counter()
        self.messages.append(
            {"role": "user", "content": with_context(message, model=model, data=data, calib=calib)}
        )
        first_record = len(self.records)
        brain = self.brain
        notice: str | None = None
        corrected = False
        steps = 0
        final: BrainStep | None = None
        while final is None:
            limit = _PLANNER_STEPS if brain is self.planner else self.settings.max_steps
            if steps >= limit:
                if brain is self.planner:
                    final = BrainStep(
                        text="I could not finish this request within the step limit.", outcome="error"
                    )
                    break
                notice = f"The LLM {brain.name} did not finish within {limit} steps, so the offline planner answered instead."
                yield TextEvent(text=notice)
                brain, steps = self.planner, 0
                continue
            steps += 1
            try:
                step = await brain.next(self.messages, self._specs)
            except BrainError as e:
                if brain is self.planner:
                    raise
                notice = e.sentence
                yield TextEvent(text=notice)
                brain, steps = self.planner, 0
                continue
            if step.tool_calls:
                if brain is not self.planner:
                    question = await self._crosscheck(step, brain.name)
                    if question is not None:
                        final = question
                        break
                async for event in self._run_calls(step):
                    yield event
                continue
            final = step

        text = final.text or ""
        outcome: Outcome | None = final.outcome
        user_texts = [str(m.get("content", "")) for m in self.messages if m.get("role") == "user"]
        evidence = build_evidence(self.records, user_texts)
        for reading in self._offered:  # a cross-check question quotes the LLM's reading as limits
            evidence.add_goal(reading, "the goal the LLM filled in")
        honesty = check_answer(text, self.records, user_texts, evidence=evidence)
        if brain is not self.planner and honesty.false_goal_claim:
            sentence = (
                f"Correction: the answer of {brain.name} said the goal was met, but "
                + (honesty.notes[0] if honesty.notes else "the measurements do not support it")
                + "; here is what the tools measured."
            )
            yield TextEvent(text=sentence)
            planner_final: BrainStep | None = None
            for _ in range(_PLANNER_STEPS):
                step = await self.planner.next(self.messages, self._specs)
                if not step.tool_calls:
                    planner_final = step
                    break
                async for event in self._run_calls(step):
                    yield event
            text = sentence + "\n\n" + ((planner_final.text if planner_final else None) or "")
            outcome = planner_final.outcome if planner_final else "error"
            corrected = True
            honesty = check_answer(text, self.records, user_texts)
        elif brain is not self.planner and honesty.unbacked:
            text += (
                "\n\n(Checker: no tool result of this conversation backs these numbers: "
                + ", ".join(honesty.unbacked)
                + ".)"
            )
            corrected = True

        verdict = self.records.verdict()
        report = self.records.report(verdict.job_id) if verdict.job_id else None
        shown = verdict.recommended or (report.nearest_id if report is not None else None)
        files = files_for(self.records, verdict.job_id, shown)
        if brain is not self.planner and files and not any(v in text for v in files.values()):
            text += "\n" + files_text(files)
        if outcome is None:
            outcome = (
                "met" if honesty.claims_goal_met else "not_met" if honesty.claims_goal_unmet else "answered"
            )
        if self.save_dir is not None and outcome in ("met", "not_met") and verdict.job_id:
            saved, problems = await self._save(verdict.job_id, files)
            if problems:
                text += "\nNot saved: " + "; ".join(problems) + "."
            if saved:
                files.update(saved)
                text += (
                    "\nSaved: " + "; ".join(f"{k.removeprefix('saved_')} {v}" for k, v in saved.items()) + "."
                )
        self.messages.append({"role": "assistant", "content": text})
        reply = Reply(
            text=text,
            outcome=outcome,
            brain=brain.name if notice is None else PLANNER_NAME,
            notice=notice,
            corrected=corrected,
            tool_calls=list(self.records[first_record:]),
            honesty=honesty,
            job_id=verdict.job_id,
            recommended=verdict.recommended if outcome == "met" else None,
            files=files,
            seconds=round(time.perf_counter() - t0, 3),
        )
        yield Final(reply=reply)

    async def _crosscheck(self, step: BrainStep, llm_name: str) -> BrainStep | None:
        """When an LLM fills ``run_sweep``'s goal itself, the rule reader reads the user's last message too (merged
        into the last sweep's goal); where the two readings differ, the question to ask instead of sweeping.

        A goal the user chose after such a question (one of the two readings offered) runs as it is. The rule
        reader's call is part of the conversation (the user sees what it read). Raises nothing.
        """
        call = next((c for c in step.tool_calls if c.name == "run_sweep"), None)
        if call is None or not isinstance(call.arguments.get("goal"), dict):
            return None
        llm_goal: dict[str, Any] = call.arguments["goal"]
        if any(same_reading(llm_goal, g) for g in self._offered):
            self._offered = []
            return None
        user = next(
            (str(m.get("content", "")) for m in reversed(self.messages) if m.get("role") == "user"), ""
        )
        text, _ = split_context(user)
        args: dict[str, Any] = {"text": text[:2000]}
        prior = self._last_sweep_goal()
        if prior is not None:
            args["prior"] = prior
        cid = self._unique_id("crosscheck")
        self.messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": "parse_goal", "arguments": json.dumps(args, ensure_ascii=False)},
                    }
                ],
            }
        )
        record = await self.tools.call("parse_goal", args, cid)
        self.records.append(record)
        self.messages.append(tool_message(record))
        if not record.ok or record.result is None:
            return None  # no second reading to compare with: the LLM's stands, as before the cross-check
        rules = dict(record.result.get("goal") or {})
        if not goal_differences(llm_goal, rules):
            return None
        self._offered = [llm_goal, {k: v for k, v in rules.items() if k != "has_constraints"}]
        unread = [str(w) for w in rules.get("unparsed_words") or []]
        return BrainStep(text=crosscheck_question(llm_name, llm_goal, rules, unread), outcome="needs_input")

    def _last_sweep_goal(self) -> dict[str, Any] | None:
        """The structured goal of the conversation's last sweep, as the server read it."""
        for r in reversed(list(self.records)):
            if r.name != "run_sweep" or not r.ok:
                continue
            fields = (r.job or {}).get("goal_fields")
            if isinstance(fields, dict):
                return {k: v for k, v in fields.items() if k != "has_constraints"}
            if isinstance(r.arguments.get("goal"), dict):
                return dict(r.arguments["goal"])
        return None

    async def call_tool(self, name: str, arguments: dict[str, Any], call_id: str = "direct") -> ToolRecord:
        """Run one tool outside the conversation (a UI action such as an upload); the brain does not see it.

        A refused or failed call comes back with ``ok=False`` and the server's ``{code, message, hint}``.
        """
        return await self.tools.call(name, arguments, call_id)

    # ------------------------------------------------------------------ tools

    def _unique_id(self, call_id: str) -> str:
        cid = call_id or "call"
        n = 1
        while cid in self._ids:
            n += 1
            cid = f"{call_id}-{n}"
        self._ids.add(cid)
        return cid

    async def _run_calls(self, step: BrainStep) -> AsyncIterator[Event]:
        calls = [(self._unique_id(c.id), c) for c in step.tool_calls]
        self.messages.append(
            {
                "role": "assistant",
                "content": step.text or None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": json.dumps(c.arguments, ensure_ascii=False),
                        },
                    }
                    for cid, c in calls
                ],
            }
        )
        for cid, c in calls:
            yield ToolStarted(call_id=cid, name=c.name, arguments=c.arguments)
            record = await self.tools.call(c.name, c.arguments, cid)
            if record.ok and c.name == "run_sweep" and record.result is not None:
                job_id = str(record.result.get("job_id", ""))
                job: dict[str, Any] | None = None
                try:
                    async for event in self._wait(job_id):
                        if isinstance(event, Progress):
                            yield event
                        else:
                            job = event
                except anyio.get_cancelled_exc_class():
                    with anyio.CancelScope(shield=True):  # the job was cancelled: keep what it became
                        last = await self.tools.call("get_job", {"job_id": job_id}, "stopped")
                    self.records.append(record.model_copy(update={"job": last.result}))
                    self.messages.append(tool_message(self.records[-1]))
                    raise
                record = record.model_copy(update={"job": job})
            self.records.append(record)
            self.messages.append(tool_message(record))
            yield ToolFinished(record=record)

    async def _wait(self, job_id: str) -> AsyncIterator[Any]:
        """Poll get_job until the sweep ends (progress events), then yield its final state (a dict).

        Cancelling the waiting task (Ctrl-C in the CLI) cancels the job on the server.
        """
        deadline = time.monotonic() + self.settings.sweep_timeout_s
        last: tuple[Any, ...] | None = None
        info: dict[str, Any] = {}
        try:
            while True:
                r = await self.tools.call("get_job", {"job_id": job_id, "include_trials": False}, "poll")
                if not r.ok or r.result is None:
                    break
                info = r.result
                p = info.get("progress") or {}
                key = (info.get("state"), p.get("phase"), p.get("done"), p.get("planned"), p.get("message"))
                if key != last:
                    last = key
                    yield Progress(
                        job_id=job_id,
                        state=str(info.get("state")),
                        phase=str(p.get("phase", "")),
                        done=int(p.get("done") or 0),
                        planned=int(p.get("planned") or 0),
                        message=str(p.get("message", ""))[:300],
                    )
                if info.get("state") not in _ACTIVE or time.monotonic() > deadline:
                    break
                await anyio.sleep(self.settings.poll_interval_s)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.tools.call("cancel_job", {"job_id": job_id}, "cancel")
            raise
        final = await self.tools.call("get_job", {"job_id": job_id, "include_trials": True}, "final")
        yield final.result if final.ok and final.result is not None else info

    async def download(self, artifact_id: str) -> bytes:
        """The bytes of a job artifact, whatever its size (see :meth:`assistant.connection.ToolClient.download`).

        Raises:
            DownloadError: it could not be fetched (the error says why and what to do).
        """
        return await self.tools.download(artifact_id, self._unique_id("download"))

    async def _save(self, job_id: str, files: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """Download the model and the report into ``save_dir/<job_id>/``; (what was saved, what could not be)."""
        if self.save_dir is None:
            return {}, []
        wanted = {"saved_model": files.get("model_artifact"), "saved_report": f"{job_id}/report.json"}
        saved: dict[str, str] = {}
        problems: list[str] = []
        for key, aid in wanted.items():
            if not aid:
                continue
            try:
                data = await self.tools.download(aid, self._unique_id(f"save-{key}"))
            except DownloadError as e:  # said in the answer, never skipped in silence
                problems.append(f"{aid} ({e.message}" + (f"; {e.hint}" if e.hint else "") + ")")
                continue
            target = self.save_dir / job_id / Path(aid).name
            target.parent.mkdir(parents=True, exist_ok=True)
            await anyio.Path(target).write_bytes(data)
            saved[key] = str(target)
        return saved, problems


_DONE = object()


class Assistant:
    """The synchronous assistant: ``with Assistant() as a: print(a.ask("make digits-cnn under 40 KB"))``.

    Takes the same arguments as :class:`AsyncAssistant`; runs it on a private event loop thread.
    """

    def __init__(self, settings: AssistantSettings | None = None, **kwargs: Any):
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self.inner = AsyncAssistant(settings, **kwargs)
        self._session = self._portal.wrap_async_context_manager(self.inner)
        try:
            self._session.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        self._closed = False

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the MCP session (in process: stop the server's jobs) and the event loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._session.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)

    @property
    def brain_name(self) -> str:
        return self.inner.brain.name

    def call_tool(self, name: str, arguments: dict[str, Any], call_id: str = "direct") -> ToolRecord:
        """Run one tool outside the conversation; see :meth:`AsyncAssistant.call_tool`."""
        return self._portal.call(self.inner.call_tool, name, arguments, call_id)

    def download(self, artifact_id: str) -> bytes:
        """The bytes of a job artifact, whatever its size; see :meth:`AsyncAssistant.download`.

        Raises:
            DownloadError: it could not be fetched.
        """
        return self._portal.call(self.inner.download, artifact_id)

    def ask(
        self, message: str, *, model: str | None = None, data: str | None = None, calib: str | None = None
    ) -> Reply:
        """Answer one message; see :meth:`AsyncAssistant.ask`."""
        reply: Reply | None = None
        for event in self.stream(message, model=model, data=data, calib=calib):
            if isinstance(event, Final):
                reply = event.reply
        if reply is None:
            raise RuntimeError("the agent loop ended without an answer")
        return reply

    def stream(
        self,
        message: str,
        *,
        model: str | None = None,
        data: str | None = None,
        calib: str | None = None,
        tick: Callable[[], None] | None = None,
        tick_s: float = 0.5,
    ) -> Iterator[Event]:
        """Answer one message as events (see :meth:`AsyncAssistant.stream`).

        ``tick`` is called every ``tick_s`` seconds while no event arrives (a page redraws a clock there, and
        learns that its user pressed Stop). Whatever stops the answer (Ctrl-C, an exception raised by ``tick``,
        the caller closing this iterator) cancels it: a running sweep is cancelled on the server and the
        conversation is left consistent before the exception goes on.
        """
        q: queue.Queue[Any] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in self.inner.stream(message, model=model, data=data, calib=calib):
                    q.put(event)
            except BaseException as e:
                q.put(e)
                raise
            finally:
                q.put(_DONE)

        future = self._portal.start_task_soon(pump)
        try:
            while True:
                try:
                    item = q.get(timeout=tick_s) if tick is not None else q.get()
                except queue.Empty:
                    if tick is not None:
                        tick()
                    continue
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        except BaseException:
            # stopped from outside (Ctrl-C, the page's Stop, the consumer gone): cancel the task and wait until
            # it has cancelled its sweep and repaired the conversation, so the next message starts clean
            if not future.done():
                future.cancel()
                try:
                    while q.get(timeout=30) is not _DONE:
                        pass
                except queue.Empty:
                    pass
            raise
