"""Helpers for the page-logic tests: tool records and replies as an answer carries them, and a fake assistant."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from test_charts import make_report

from assistant.events import Reply, ToolRecord

JOB = "0123456789abcdef"


def record(name: str, result: dict[str, Any] | None, *, ok: bool = True) -> ToolRecord:
    return ToolRecord(call_id=f"c-{name}", name=name, ok=ok, result=result)


def reply(*records: ToolRecord) -> Reply:
    return Reply(text="answer", outcome="met", brain="offline-planner", tool_calls=list(records))


def report_record(**report_kw: Any) -> ToolRecord:
    report = make_report(**report_kw)
    return record(
        "get_pareto_report",
        {
            "job_id": JOB,
            "state": "succeeded",
            "report": report.model_dump(mode="json"),
            "best_artifact": f"{JOB}/best.onnx",
            "chart_artifact": None,
            "candidate_artifacts": {c.id: f"{JOB}/candidates/{c.id}.onnx" for c in report.candidates if c.ok},
        },
    )


def fake_assistant(**settings: Any) -> Any:
    from assistant.planner import OfflinePlanner
    from assistant.settings import AssistantSettings

    planner = OfflinePlanner()
    inner = SimpleNamespace(
        settings=AssistantSettings(llm="offline", **settings),
        planner=planner,
        brain=planner,
        tools=SimpleNamespace(transport="in-process"),
    )
    return SimpleNamespace(inner=inner)
