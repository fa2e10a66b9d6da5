"""The tool log: a conversation's tool calls, and the questions every reader asks of them.

The agent, the planner, the honesty checker, the answers, the evals and the page all read the same past tool calls:
the last report of a job, the sweeps run so far, the verdict on the active goal, the files of a result. They ask
:class:`ToolLog` instead of walking the records by hand::

    log = ToolLog(reply.tool_calls)
    log.latest("get_pareto_report", job_id=job)   # the last successful call whose result has job_id == job
    log.all("run_sweep")                          # every successful call, oldest first
    log.call("inspect_model", {"model": "digits-cnn"})  # the last call with exactly these arguments, ok or not
    log.report(job)                               # the last report of a job, typed (ReportView)
    log.verdict()                                 # what the tool results say about the active goal

Results stay the JSON the tools return (the assistant never imports the library's types); :class:`ReportView` and
:class:`Verdict` name the fields every reader uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from assistant.events import ToolRecord

__all__ = ["Catalog", "ReportView", "ToolLog", "Verdict", "latest_verdict"]

VERDICT_TOOLS = ("get_pareto_report", "recommend")


def _matches(r: ToolRecord, name: str, args: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> bool:
    """A successful call of ``name`` whose arguments hold ``args`` and whose result holds ``fields``."""
    if r.name != name or not r.ok or r.result is None:
        return False
    if args is not None and any(r.arguments.get(k) != v for k, v in args.items()):
        return False
    return all(r.result.get(k) == v for k, v in fields.items())


@dataclass(frozen=True)
class ReportView:
    """A ``get_pareto_report`` result (``result``) with the fields its readers use."""

    result: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.result.get("job_id", ""))

    @property
    def report(self) -> dict[str, Any]:
        """The Pareto report as JSON (baseline, candidates, front, recommendation, goal, misses, ...)."""
        body = self.result.get("report")
        return body if isinstance(body, dict) else {}

    @property
    def baseline(self) -> dict[str, Any]:
        return dict(self.report.get("baseline") or {})

    @property
    def candidates(self) -> list[dict[str, Any]]:
        return list(self.report.get("candidates") or [])

    @property
    def measured(self) -> list[dict[str, Any]]:
        """The candidates that were built and measured (the failed ones have no metrics)."""
        return [c for c in self.candidates if c.get("metrics")]

    @property
    def recommended(self) -> str | None:
        rec = self.report.get("recommended")
        return str(rec) if rec else None

    @property
    def nearest(self) -> list[dict[str, Any]]:
        return list(self.report.get("nearest") or [])

    @property
    def nearest_id(self) -> str | None:
        """The nearest candidate when nothing meets the goal."""
        return str(self.nearest[0].get("candidate_id")) if self.nearest else None

    @property
    def goal(self) -> dict[str, Any] | None:
        return self.report.get("goal")

    @property
    def misses(self) -> dict[str, list[dict[str, Any]]]:
        """Candidate id -> the limits of the report's goal it misses (the server's goal check)."""
        return _misses_of(self.report)

    def candidate(self, candidate_id: str | None) -> dict[str, Any] | None:
        return next((dict(c) for c in self.candidates if c.get("id") == candidate_id), None)

    def artifact_of(self, candidate_id: str | None) -> str | None:
        """The artifact id of a candidate's model (``best.onnx`` for the recommended one)."""
        if candidate_id is None:
            return None
        if candidate_id == self.recommended and self.result.get("best_artifact"):
            return str(self.result["best_artifact"])
        found = (self.result.get("candidate_artifacts") or {}).get(candidate_id)
        return str(found) if found else None


@dataclass(frozen=True)
class Catalog:
    """The model names the tools accept: zoo names and stored ids (with the models registered since)."""

    zoo: list[str]
    stored: list[str]


@dataclass(frozen=True)
class Verdict:
    """What the tool results say about the active goal."""

    state: Literal["met", "not_met", "unknown"]
    source: str = ""
    recommended: str | None = None
    feasible: tuple[str, ...] = ()
    infeasible: tuple[str, ...] = ()
    goal: dict[str, Any] | None = None
    reason: str = ""
    job_id: str | None = None
    misses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _misses_of(result: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A report's or recommendation's ``misses`` (candidate id -> the limits it misses), {} when absent."""
    raw = result.get("misses")
    if not isinstance(raw, dict):
        return {}
    return {
        str(cid): [m for m in found if isinstance(m, dict)]
        for cid, found in raw.items()
        if isinstance(found, list)
    }


def _missing(misses: Mapping[str, list[dict[str, Any]]]) -> tuple[str, ...]:
    """The candidates that miss at least one limit (a failed candidate misses 'measured')."""
    return tuple(cid for cid, found in misses.items() if found)


class ToolLog(Sequence[ToolRecord]):
    """The tool calls of a conversation (or of one reply), oldest first. See the module docstring."""

    def __init__(self, records: Iterable[ToolRecord] = ()):
        self._records: list[ToolRecord] = list(records)

    # ------------------------------------------------------------ the sequence

    @overload
    def __getitem__(self, index: int) -> ToolRecord: ...

    @overload
    def __getitem__(self, index: slice) -> ToolLog: ...

    def __getitem__(self, index: int | slice) -> ToolRecord | ToolLog:
        if isinstance(index, slice):
            return ToolLog(self._records[index])
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ToolRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"ToolLog({[r.name for r in self._records]})"

    def append(self, record: ToolRecord) -> None:
        self._records.append(record)

    def called(self, name: str) -> bool:
        """Whether ``name`` was called (whatever it returned)."""
        return any(r.name == name for r in self._records)

    def counts(self) -> dict[str, int]:
        """How many times each tool was called (failures included), in order of first call."""
        counts: dict[str, int] = {}
        for r in self._records:
            counts[r.name] = counts.get(r.name, 0) + 1
        return counts

    # ------------------------------------------------------------ finding calls

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolRecord | None:
        """The last call of ``name`` with exactly ``arguments``, whatever it returned (a planner never repeats it)."""
        return self._last(lambda r: r.name == name and r.arguments == arguments)

    def latest(
        self, name: str, /, *, args: Mapping[str, Any] | None = None, **fields: Any
    ) -> ToolRecord | None:
        """The last successful call of ``name`` whose result has ``fields`` (and whose arguments hold ``args``)."""
        return self._last(lambda r: _matches(r, name, args, fields))

    def all(self, name: str, /, *, args: Mapping[str, Any] | None = None, **fields: Any) -> list[ToolRecord]:
        """Every successful call of ``name`` whose result has ``fields`` (and arguments hold ``args``), oldest first."""
        return [r for r in self._records if _matches(r, name, args, fields)]

    def for_job(self, job_id: str) -> ToolLog:
        """The calls whose result (or waited-for job) belongs to ``job_id``."""
        return ToolLog(
            r
            for r in self._records
            if (r.result is not None and r.result.get("job_id") == job_id)
            or (r.job is not None and r.job.get("job_id") == job_id)
        )

    def _last(self, test: Callable[[ToolRecord], bool]) -> ToolRecord | None:
        return next((r for r in reversed(self._records) if test(r)), None)

    # ------------------------------------------------------------ typed accessors

    def report(self, job_id: str | None = None) -> ReportView | None:
        """The last report (of ``job_id``, when given)."""
        fields: dict[str, Any] = {"job_id": job_id} if job_id is not None else {}
        found = self.latest("get_pareto_report", **fields)
        return ReportView(found.result) if found is not None and found.result is not None else None

    def verdicts(self, job_id: str | None = None) -> list[ToolRecord]:
        """The reports and recommendations (of ``job_id``, when given), oldest first."""
        fields: dict[str, Any] = {"job_id": job_id} if job_id is not None else {}
        return [r for r in self._records if any(_matches(r, name, None, fields) for name in VERDICT_TOOLS)]

    def verdict_record(self, job_id: str | None = None) -> ToolRecord | None:
        """The last report or recommendation (of ``job_id``, when given): the one whose goal is active."""
        found = self.verdicts(job_id)
        return found[-1] if found else None

    def sweeps(self) -> list[ToolRecord]:
        """The sweeps started (successful run_sweep calls that named a model; resumptions name none)."""
        return [r for r in self.all("run_sweep") if "model" in r.arguments]

    def catalog(self) -> Catalog:
        """The zoo names and stored model ids the server listed, and the models registered since."""
        zoo: list[str] = []
        stored: list[str] = []
        for r in self._records:
            if not r.ok or r.result is None:
                continue
            if r.name == "list_zoo":
                zoo = [str(e.get("name")) for e in r.result.get("entries", [])]
            elif r.name == "list_models":
                stored = [str(m.get("id")) for m in r.result.get("models", [])]
                zoo = zoo or [str(z) for z in r.result.get("zoo", [])]
            elif r.name == "register_model":
                mid = str(r.result.get("model", {}).get("id", ""))
                if mid and mid not in stored:
                    stored.append(mid)
        return Catalog(zoo, stored)

    def inspection(self, model: str) -> dict[str, Any] | None:
        """The last inspect_model result of ``model``."""
        found = self.latest("inspect_model", args={"model": model})
        return found.result if found is not None else None

    def profile(self, model: str) -> dict[str, Any] | None:
        """The last profile_layers result of ``model`` (its layers, most sensitive first)."""
        found = self.latest("profile_layers", args={"model": model})
        return found.result if found is not None else None

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """The get_artifact results of a job's files, oldest first."""
        return [
            r.result
            for r in self.all("get_artifact")
            if r.result is not None and str(r.result.get("artifact_id", "")).startswith(f"{job_id}/")
        ]

    # ------------------------------------------------------------ the verdict

    def verdict(self) -> Verdict:
        """The verdict of the last report, recommendation or goal-refused sweep.

        ``infeasible`` lists the measured candidates known to miss the goal: those the server's goal check found
        misses for (the result's ``misses``); from a result without them, for a recommendation every measured
        candidate of its job that is not feasible, for a report that recommends nothing its nearest candidates.
        """
        for r in reversed(self._records):
            if not r.ok or r.result is None:
                continue
            if r.name == "get_pareto_report":
                view = ReportView(r.result)
                rec = view.recommended
                misses = view.misses
                nearest = tuple(str(n.get("candidate_id", "")) for n in view.nearest)
                return Verdict(
                    "met" if rec else "not_met",
                    f"get_pareto_report#{r.call_id}",
                    rec,
                    (rec,) if rec else (),
                    _missing(misses) if misses else () if rec else nearest,
                    view.goal,
                    str(view.report.get("reason", "")),
                    r.result.get("job_id"),
                    misses,
                )
            if r.name == "recommend":
                rec_obj = r.result.get("recommendation", {})
                rec = rec_obj.get("recommended")
                feasible = tuple(str(x) for x in rec_obj.get("feasible", []))
                job_id = r.result.get("job_id")
                misses = _misses_of(r.result)
                if misses:
                    infeasible = _missing(misses)
                else:
                    report = self.report(job_id)
                    measured = [str(c.get("id", "")) for c in report.measured] if report else []
                    infeasible = tuple(c for c in measured if c not in feasible)
                return Verdict(
                    "met" if rec else "not_met",
                    f"recommend#{r.call_id}",
                    rec,
                    feasible,
                    infeasible,
                    r.result.get("goal"),
                    str(rec_obj.get("reason", "")),
                    job_id,
                    misses,
                )
            if r.name in ("run_sweep", "get_job"):
                job = r.job if r.name == "run_sweep" else r.result
                err = _job_failed_on_goal(job)
                if err is not None:
                    return Verdict(
                        "not_met",
                        f"{r.name}#{r.call_id}",
                        reason=str(err.get("message", "")),
                        job_id=(job or {}).get("job_id"),
                    )
        return Verdict("unknown")


def _job_failed_on_goal(job: dict[str, Any] | None) -> dict[str, Any] | None:
    if not job or job.get("state") != "failed":
        return None
    err = job.get("error") or {}
    return err if err.get("code") == "goal_invalid" else None


def latest_verdict(records: Iterable[ToolRecord]) -> Verdict:
    """The verdict of the last report, recommendation or goal-refused sweep among ``records`` (see
    :meth:`ToolLog.verdict`)."""
    log = records if isinstance(records, ToolLog) else ToolLog(records)
    return log.verdict()
