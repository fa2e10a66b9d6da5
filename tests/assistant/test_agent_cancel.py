"""Stopping the assistant while a sweep runs (Ctrl-C in the CLI) cancels the job and keeps the conversation whole."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from assistant.agent import AsyncAssistant
from assistant.events import Progress

pytestmark = pytest.mark.anyio


@pytest.mark.slow
async def test_agent_cancelled_during_a_sweep_cancels_the_job_and_repairs_the_transcript(
    server_settings: Any, offline_settings: Any
) -> None:
    async with AsyncAssistant(offline_settings, server_settings=server_settings) as a:
        with anyio.CancelScope() as scope:
            async for event in a.stream("make digits-cnn 5x faster"):
                if isinstance(event, Progress):
                    scope.cancel()
        assert scope.cancelled_caught
        sweep = next(r for r in a.records if r.name == "run_sweep")
        job_id = sweep.result["job_id"]  # type: ignore[index]
        deadline = time.monotonic() + 300
        while True:
            job = await a.tools.call("get_job", {"job_id": job_id}, "check")
            if job.result["state"] not in ("queued", "running") or time.monotonic() > deadline:  # type: ignore[index]
                break
            await anyio.sleep(0.5)
        assert job.result["state"] == "cancelled"  # type: ignore[index]
        calls = [c["id"] for m in a.messages for c in m.get("tool_calls") or []]
        results = [m["tool_call_id"] for m in a.messages if m.get("role") == "tool"]
        assert sorted(calls) == sorted(results) and a.messages[-1]["role"] == "assistant"

        reply = await a.ask("what did you try?")
    assert (
        reply.outcome == "answered"
        and job_id in reply.text
        and [r.name for r in reply.tool_calls] == ["list_models"]
    )
