"""The typed tool log: finding past calls by result fields or exact arguments, and the typed accessors."""

from __future__ import annotations

from typing import Any

from assistant.events import ToolRecord
from assistant.toollog import ToolLog

JOB_A = "a" * 16
JOB_B = "b" * 16


def rec(
    call_id: str,
    name: str,
    args: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    *,
    ok: bool = True,
    job: dict[str, Any] | None = None,
) -> ToolRecord:
    return ToolRecord(
        call_id=call_id,
        name=name,
        arguments=args or {},
        ok=ok,
        result=result if ok else None,
        error=None if ok else {"code": "not_found", "message": "no", "hint": ""},
        job=job,
    )


def report_result(job_id: str, recommended: str | None, **extra: Any) -> dict[str, Any]:
    candidates = [
        {"id": "c00-int8", "model_path": "/m/c00.onnx", "metrics": {"size_bytes": 36979}},
        {"id": "c01-fp16", "model_path": "/m/c01.onnx", "metrics": {"size_bytes": 54120}},
        {"id": "c02-int4", "error": {"code": "technique_failed"}},
    ]
    nearest = [] if recommended else [{"candidate_id": "c01-fp16", "misses": [], "score": 0.2}]
    body = {
        "candidates": candidates,
        "recommended": recommended,
        "nearest": nearest,
        "baseline": {"size_bytes": 1},
    }
    return {
        "job_id": job_id,
        "report": {**body, **extra},
        "best_artifact": f"{job_id}/best.onnx" if recommended else None,
        "candidate_artifacts": {"c00-int8": f"{job_id}/candidates/c00-int8.onnx"},
    }


def conversation() -> ToolLog:
    return ToolLog(
        [
            rec("1", "list_zoo", {}, {"entries": [{"name": "digits-cnn"}]}),
            rec("2", "list_models", {}, {"models": [{"id": "resnet-3f2a9c1b7d4e"}], "zoo": ["digits-cnn"]}),
            rec("3", "register_model", {"path": "/x.onnx"}, {"model": {"id": "x-0123456789ab"}}),
            rec("4", "inspect_model", {"model": "digits-cnn"}, {"layers": [{"op_type": "Conv"}]}),
            rec("5", "inspect_model", {"model": "nope"}, ok=False),
            rec(
                "6",
                "run_sweep",
                {"model": "digits-cnn", "goal": {}},
                {"job_id": JOB_A},
                job={"job_id": JOB_A},
            ),
            rec("7", "get_pareto_report", {"job_id": JOB_A}, report_result(JOB_A, "c00-int8")),
            rec("8", "run_sweep", {"resume_job_id": JOB_B}, {"job_id": JOB_B}),
            rec("9", "get_pareto_report", {"job_id": JOB_B}, report_result(JOB_B, None)),
            rec("10", "recommend", {"job_id": JOB_A, "goal": {}}, {"job_id": JOB_A, "recommendation": {}}),
            rec(
                "11",
                "get_artifact",
                {"artifact_id": f"{JOB_A}/report.json"},
                {"artifact_id": f"{JOB_A}/report.json"},
            ),
        ]
    )


def test_toollog_latest_matches_result_fields_and_skips_failed_calls() -> None:
    log = conversation()
    found = log.latest("get_pareto_report", job_id=JOB_A)
    assert found is not None and found.call_id == "7"
    last = log.latest("get_pareto_report")
    assert last is not None and last.call_id == "9"
    assert log.latest("get_pareto_report", job_id="c" * 16) is None
    inspected = log.latest("inspect_model")
    assert inspected is not None and inspected.call_id == "4"  # the failed call 5 is not a result
    assert log.latest("inspect_model", args={"model": "nope"}) is None


def test_toollog_all_lists_successful_calls_oldest_first_and_filters_by_arguments() -> None:
    log = conversation()
    assert [r.call_id for r in log.all("run_sweep")] == ["6", "8"]
    assert [r.call_id for r in log.all("run_sweep", args={"model": "digits-cnn"})] == ["6"]
    assert [r.call_id for r in log.all("get_pareto_report", job_id=JOB_B)] == ["9"]
    assert log.all("profile_layers") == []


def test_toollog_call_finds_exact_arguments_whatever_the_call_returned() -> None:
    log = conversation()
    failed = log.call("inspect_model", {"model": "nope"})
    assert failed is not None and not failed.ok and failed.call_id == "5"
    assert log.call("inspect_model", {"model": "digits-cnn", "extra": 1}) is None
    assert log.call("list_zoo", {}) is not None and log.call("list_data", {}) is None


def test_toollog_counts_every_call_and_called_says_whether_a_tool_ran() -> None:
    log = conversation()
    assert log.counts()["inspect_model"] == 2 and log.counts()["get_pareto_report"] == 2
    assert list(log.counts())[:2] == ["list_zoo", "list_models"]
    assert log.called("recommend") and not log.called("cancel_job")
    assert (
        len(log) == 11 and log[0].name == "list_zoo" and isinstance(log[1:3], ToolLog) and len(log[1:3]) == 2
    )


def test_toollog_report_is_typed_with_the_fields_readers_use() -> None:
    log = conversation()
    met = log.report(JOB_A)
    assert met is not None and met.job_id == JOB_A and met.recommended == "c00-int8"
    assert [c["id"] for c in met.measured] == ["c00-int8", "c01-fp16"] and len(met.candidates) == 3
    assert met.artifact_of("c00-int8") == f"{JOB_A}/best.onnx"  # the recommended model is best.onnx
    candidate = met.candidate("c01-fp16")
    assert candidate is not None and candidate["model_path"] == "/m/c01.onnx"
    assert met.artifact_of("c01-fp16") is None and met.candidate("zz") is None and met.nearest_id is None
    unmet = log.report()
    assert unmet is not None and unmet.job_id == JOB_B and unmet.recommended is None
    assert (
        unmet.nearest_id == "c01-fp16"
        and unmet.artifact_of("c00-int8") == f"{JOB_B}/candidates/c00-int8.onnx"
    )
    misses = {"c01-fp16": [{"constraint": "max_size_mb", "text": "over"}], "c00-int8": []}
    view = ToolLog(
        [rec("r", "get_pareto_report", {}, report_result(JOB_A, "c00-int8", misses=misses))]
    ).report()
    assert view is not None and view.misses == misses


def test_toollog_verdicts_follow_the_last_report_or_recommendation_of_a_job() -> None:
    log = conversation()
    assert [r.call_id for r in log.verdicts()] == ["7", "9", "10"]
    assert [r.call_id for r in log.verdicts(JOB_A)] == ["7", "10"]
    last = log.verdict_record(JOB_A)
    assert last is not None and last.name == "recommend"
    assert [r.call_id for r in log.for_job(JOB_A)] == ["6", "7", "10"]
    assert log.verdict().source == "recommend#10" and log.for_job(JOB_B).verdict().state == "not_met"


def test_toollog_catalog_sweeps_inspections_and_artifacts() -> None:
    log = conversation()
    catalog = log.catalog()
    assert catalog.zoo == ["digits-cnn"] and catalog.stored == ["resnet-3f2a9c1b7d4e", "x-0123456789ab"]
    assert [r.call_id for r in log.sweeps()] == ["6"]  # a resumption names no model
    assert (
        log.inspection("digits-cnn") == {"layers": [{"op_type": "Conv"}]} and log.inspection("nope") is None
    )
    assert log.profile("digits-cnn") is None
    assert [a["artifact_id"] for a in log.artifacts(JOB_A)] == [f"{JOB_A}/report.json"] and not log.artifacts(
        JOB_B
    )
