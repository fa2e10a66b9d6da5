"""Reports out of answers: the report and job an answer produced, re-ranked by a recommendation."""

from __future__ import annotations

from sessionkit import JOB, record, reply, report_record
from test_charts import CANDIDATES, make_report

from ui.results import JobView, absorb_reply


def test_absorb_reply_keeps_the_report_its_job_and_the_sensitivity_ranking() -> None:
    jobs: dict[str, JobView] = {}
    job_id, report, _ = absorb_reply(reply(report_record()), jobs)
    assert job_id == JOB and report is not None
    assert report.recommended == make_report().recommended
    assert jobs[JOB].best_artifact == f"{JOB}/best.onnx"
    assert set(jobs[JOB].candidate_artifacts) == {c.id for c in CANDIDATES if c.ok}


def test_absorb_reply_reranks_a_known_report_for_a_recommend_result() -> None:
    jobs: dict[str, JobView] = {}
    absorb_reply(reply(report_record()), jobs)
    recommendation = {
        "recommended": "b",
        "reason": "b is the best balance",
        "feasible": ["b"],
        "nearest": [],
    }
    goal = {"objective": "accuracy", "max_accuracy_drop_pct": 2.0}
    rerank = record("recommend", {"job_id": JOB, "goal": goal, "recommendation": recommendation})
    job_id, report, _ = absorb_reply(reply(rerank), jobs)
    assert job_id == JOB and report is not None
    assert report.recommended == "b" and report.reason == "b is the best balance"
    assert report.goal is not None and report.goal.max_accuracy_drop_pct == 2.0
    assert [c.id for c in report.candidates] == [c.id for c in CANDIDATES]  # nothing measured again


def test_absorb_reply_ignores_failed_and_unknown_results() -> None:
    jobs: dict[str, JobView] = {}
    failed = record("get_pareto_report", None, ok=False)
    orphan = record("recommend", {"job_id": "f" * 16, "goal": {}, "recommendation": {}})
    assert absorb_reply(reply(failed, orphan), jobs) == (None, None, None)
    assert jobs == {}
