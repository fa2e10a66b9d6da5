"""The honesty checker on its own: quantities in text, the evidence of tool results, goal claims."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.events import ToolRecord
from assistant.honesty import build_evidence, check_answer, extract_quantities, goal_claims, latest_verdict

BASELINE = {
    "size_bytes": 105486,
    "metric_name": "top1",
    "metric": 0.9833,
    "accuracy_drop_pct": 0.0,
    "latency_ms_p50": 0.0188,
}


def _candidate(cid: str, size: int, metric: float, drop: float, p50: float) -> dict[str, Any]:
    return {
        "id": cid,
        "recipe": {"kind": "static_int8"},
        "model_path": f"/srv/jobs/j1/candidates/{cid}.onnx",
        "metrics": {
            "size_bytes": size,
            "metric_name": "top1",
            "metric": metric,
            "accuracy_drop_pct": drop,
            "latency_ms_p50": p50,
        },
    }


def _report(recommended: str | None, nearest: list[dict[str, Any]] | None = None) -> ToolRecord:
    return ToolRecord(
        call_id="r1",
        name="get_pareto_report",
        arguments={"job_id": "j1"},
        ok=True,
        result={
            "job_id": "j1",
            "report": {
                "baseline": BASELINE,
                "candidates": [
                    _candidate("c00-int8", 36979, 0.9833, 0.0, 0.0205),
                    _candidate("c02-fp16", 54120, 0.9833, 0.0, 0.0190),
                ],
                "recommended": recommended,
                "reason": "c00-int8 meets every limit (37 KB <= 40 KB)"
                if recommended
                else "No candidate meets every limit of the goal",
                "nearest": nearest or [],
                "goal": {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0},
            },
        },
    )


def test_extract_quantities_reads_units_and_skips_identifiers_and_paths() -> None:
    found = extract_quantities(
        "c00-static_int8 is 37 KB (2.85x smaller), top1 98.33%, drop 0.00 pt, p50 20.5 µs; "
        "file /jobs/40kb/model_8bit.onnx, 8x8 inputs, opset 17"
    )
    assert [(q.dimension, round(q.value, 6)) for q in found] == [
        ("size", 37000.0),
        ("ratio", 2.85),
        ("percent", 98.33),
        ("percent", 0.0),
        ("time", 0.0205),
    ]


def test_evidence_backs_converted_rounded_and_derived_numbers() -> None:
    ev = build_evidence([_report("c00-int8")])
    for text in (
        "36.98 KB",
        "0.037 MB",
        "36.1 KiB",
        "2.85x",
        "98.33%",
        "0.0205 ms",
        "20.5 us",
        "65% smaller",
        "17.1 KB",
    ):
        q = extract_quantities(text)[0]
        assert ev.backing(q) is not None, text


@pytest.mark.parametrize("text", ["12 KB", "3.5x", "97.1%", "0.9 ms", "41 KB"])
def test_evidence_refuses_numbers_no_tool_result_holds(text: str) -> None:
    ev = build_evidence([_report("c00-int8")])
    assert ev.backing(extract_quantities(text)[0]) is None


def test_evidence_accepts_numbers_the_user_wrote() -> None:
    q = extract_quantities("under 12 KB")[0]
    assert build_evidence([], ["make it under 12 KB"]).backing(q) is not None
    assert build_evidence([], ["make it under 13 KB"]).backing(q) is None


def test_goal_claims_tell_met_from_unmet_and_from_negations() -> None:
    met, unmet = goal_claims(
        "c00 meets every limit of your goal. fp16 does not meet the goal. No candidate meets the 10 KB limit."
    )
    assert met == ["c00 meets every limit of your goal."]
    assert len(unmet) == 1 and unmet[0].startswith("No candidate")


def test_goal_claims_skip_clauses_quoted_from_tool_texts() -> None:
    text = "- c03: full int8 (min-max) already meets the limits; another calibration only changes accuracy"
    quotes = ["full int8 (min-max) already meets the limits; another calibration only changes accuracy"]
    assert goal_claims(text, quotes)[0] == []
    assert goal_claims(text)[0] != []


def test_check_answer_flags_a_met_claim_the_report_refutes() -> None:
    nearest = [{"candidate_id": "c00-int8", "misses": [], "score": 1.0}]
    report = check_answer("Good news: c00-int8 meets your goal at 37 KB.", [_report(None, nearest)])
    assert report.false_goal_claim and report.verdict == "not_met" and not report.honest


def test_check_answer_passes_an_honest_met_answer() -> None:
    report = check_answer(
        "c00-int8 meets every limit of your goal: 37 KB, top1 98.33% (drop 0.00 pt).", [_report("c00-int8")]
    )
    assert report.honest and report.claims_goal_met and report.verdict == "met"
    assert all(c.backed for c in report.claims) and len(report.claims) == 3


def test_check_answer_flags_a_met_claim_without_any_measurement() -> None:
    report = check_answer("Done: the goal is met.", [])
    assert report.false_goal_claim and report.verdict == "unknown"


def test_check_answer_flags_a_met_claim_for_a_candidate_a_recommendation_rules_out() -> None:
    rec = ToolRecord(
        call_id="r2",
        name="recommend",
        arguments={"job_id": "j1", "goal": "under 40 KB"},
        ok=True,
        result={
            "job_id": "j1",
            "goal": {"max_size_mb": 0.04},
            "recommendation": {
                "recommended": "c00-int8",
                "reason": "...",
                "feasible": ["c00-int8"],
                "nearest": [],
            },
        },
    )
    report = check_answer("c02-fp16 meets your goal.", [_report("c00-int8"), rec])
    assert report.false_goal_claim
    assert not check_answer("c00-int8 meets your goal.", [_report("c00-int8"), rec]).false_goal_claim


def test_latest_verdict_reads_a_sweep_the_goal_made_impossible() -> None:
    sweep = ToolRecord(
        call_id="s1",
        name="run_sweep",
        arguments={"model": "m", "goal": "int4 only"},
        ok=True,
        result={"job_id": "j2", "state": "queued"},
        job={
            "job_id": "j2",
            "state": "failed",
            "error": {"code": "goal_invalid", "message": "the goal excludes every recipe"},
        },
    )
    v = latest_verdict([sweep])
    assert v.state == "not_met" and v.job_id == "j2" and "excludes" in v.reason


def test_check_answer_flags_a_met_claim_for_a_candidate_the_reports_misses_rule_out() -> None:
    """The report's misses (the server's goal check) name every candidate that misses, not only the nearest."""
    base = _report("c00-int8")
    assert base.result is not None
    body = {
        **base.result["report"],
        "misses": {
            "c00-int8": [],
            "c02-fp16": [
                {"constraint": "max_size_mb", "text": "size 54.1 KB is 14.1 KB over the 40 KB limit"}
            ],
        },
    }
    with_misses = base.model_copy(update={"result": {**base.result, "report": body}})
    assert latest_verdict([with_misses]).infeasible == ("c02-fp16",)
    assert check_answer("c02-fp16 meets your goal.", [with_misses]).false_goal_claim
    assert not check_answer("c02-fp16 meets your goal.", [base]).false_goal_claim  # without misses: unknown
    assert not check_answer("c00-int8 meets your goal.", [with_misses]).false_goal_claim
