"""Reports out of answers: the Pareto report (and the sensitivity ranking) an answer produced, from its tool log.

A ``get_pareto_report`` result adds its job to the page's jobs; a ``recommend`` result re-ranks the report of a known
job for the new goal, with the server's misses for that goal (nothing is measured again).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optimizer.search.pareto import ParetoReport
from optimizer.types import SensitivityReport

if TYPE_CHECKING:
    from assistant.events import Reply

__all__ = ["JobView", "absorb_reply"]


@dataclass
class JobView:
    """A finished sweep as the page knows it: its report (as the server wrote it) and its artifact ids."""

    job_id: str
    report_json: str
    best_artifact: str | None = None
    candidate_artifacts: dict[str, str] = field(default_factory=dict)
    sensitivity_json: str | None = None

    def report(self) -> ParetoReport:
        return ParetoReport.model_validate_json(self.report_json)


def _rerank(report: ParetoReport, result: dict[str, Any]) -> ParetoReport:
    """The report with the goal, recommendation and misses of a ``recommend`` result (nothing was measured
    again; the misses are the server's goal check for the new goal)."""
    from optimizer.search.pareto import ConstraintMiss, Recommendation
    from optimizer.types import Goal

    rec = Recommendation.model_validate(result["recommendation"])
    misses = {
        str(cid): [ConstraintMiss.model_validate(m) for m in found]
        for cid, found in (result.get("misses") or {}).items()
    }
    return report.model_copy(
        update={
            "goal": Goal.model_validate(result["goal"]),
            "recommended": rec.recommended,
            "reason": rec.reason,
            "nearest": rec.nearest,
            "misses": misses,
        }
    )


def absorb_reply(
    reply: Reply, jobs: dict[str, JobView]
) -> tuple[str | None, ParetoReport | None, SensitivityReport | None]:
    """The job, report and sensitivity ranking an answer produced (``None`` each when it produced none).

    A ``get_pareto_report`` result adds (or replaces) its job in ``jobs``; a ``recommend`` result re-ranks the
    report of a known job for the new goal. Results that do not parse are skipped (the answer's text still says
    what happened). Raises nothing.
    """
    from assistant.toollog import ToolLog

    log = ToolLog(reply.tool_calls)
    job_id: str | None = None
    report: ParetoReport | None = None
    sens: SensitivityReport | None = None
    profile = log.latest("profile_layers")
    if profile is not None:
        with contextlib.suppress(ValueError):
            sens = SensitivityReport.model_validate(profile.result)
    for record in log.verdicts():  # reports and re-rankings, oldest first: the last one stands
        result = record.result or {}
        try:
            if record.name == "get_pareto_report":
                report = ParetoReport.model_validate(result["report"])
                job_id = str(result["job_id"])
                jobs[job_id] = JobView(
                    job_id=job_id,
                    report_json=report.model_dump_json(),
                    best_artifact=result.get("best_artifact"),
                    candidate_artifacts=dict(result.get("candidate_artifacts") or {}),
                )
            elif str(result.get("job_id")) in jobs:
                job_id = str(result["job_id"])
                report = _rerank(jobs[job_id].report(), result)
        except (KeyError, TypeError, ValueError):
            continue
    if report is not None and report.sensitivity is not None:
        sens = report.sensitivity
    if job_id is not None:
        job = jobs[job_id]
        if sens is not None and job.sensitivity_json is None:
            job.sensitivity_json = sens.model_dump_json()
        elif sens is None and job.sensitivity_json is not None:
            sens = SensitivityReport.model_validate_json(job.sensitivity_json)
    return job_id, report, sens
