"""The one registry of QuantTaaS tools: each tool declared once, adapted to MCP, HTTP and the agent.

A :class:`Tool` holds the name (the handler's name), a description written for an LLM (when to use it, what it
costs, what it returns), a frozen ``*Args`` model (unknown fields refused, bounds on numbers and strings), a
``*Result`` model, the handler, a one-line summary for people, and the flags ``read_only`` and ``long_running``.
:mod:`mcp_server.mcp_app`, :mod:`mcp_server.http_app` and :mod:`mcp_server.agent_tools` are generated from
:data:`REGISTRY`; a contract test checks that they expose the same names and input schemas.

Handlers are plain synchronous functions ``handler(services, args) -> result``; the surfaces run them in worker
threads. They raise the optimizer's error tree (``QuantTaaSError``), which every surface renders the same way.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

import optimizer.goals.parse as goal_reader
import optimizer.models.inspect as onnx_inspect
import optimizer.search.pareto as pareto
import optimizer.search.profile as layer_profile
import optimizer.zoo as zoo
from mcp_server.artifacts import ARTIFACT_ID_PATTERN, ARTIFACT_ID_RE, media_type, parse_artifact_id
from mcp_server.errors import (
    ArgumentsError,
    JobStateError,
    PayloadTooLargeError,
    UnknownToolError,
    arguments_error,
)
from mcp_server.jobs import RESUMABLE, JobRecord
from mcp_server.services import DATA_SUFFIXES, MODEL_SUFFIXES, DataCheck, DataRef, Services, SweepSpec
from optimizer.errors import GoalError
from optimizer.search.pareto import ConstraintMiss, ParetoReport, Recommendation
from optimizer.types import Candidate, ErrorInfo, Goal, ModelInspection, ModelRef, SensitivityReport
from optimizer.units import format_bytes
from optimizer.zoo import ZooEntry

__all__ = ["REGISTRY", "Tool", "ToolOutput", "call_tool", "get_tool"]

# --------------------------------------------------------------------------- argument types


class Args(BaseModel):
    """Base of every tool's arguments: immutable, unknown fields refused, and strict: a value of the wrong JSON
    type is refused, not converted (``true``, ``"4"`` or ``1.0`` for an integer, ``"yes"`` for a boolean).

    ``one_of`` states a rule the validator enforces across fields as JSON-schema branches (exactly one must
    match); the OpenAPI document carries them. The tools' own input schemas keep them in their description
    only: several LLM APIs refuse ``oneOf`` at the top of a function's parameters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    one_of: ClassVar[list[dict[str, Any]]] = []


class Result(BaseModel):
    """Base of every tool's result."""

    model_config = ConfigDict(frozen=True, extra="forbid")


_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,80}$"

ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=81,
        pattern=_ID_PATTERN,
        description="a stored model id from list_models (e.g. 'resnet-3f2a9c1b7d4e') or a zoo name (e.g. 'digits-cnn')",
        examples=["digits-cnn"],
    ),
]
DataId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=81,
        pattern=_ID_PATTERN,
        description="a registered data id from list_data / register_data",
    ),
]
JobId = Annotated[
    str, Field(min_length=16, max_length=16, pattern=r"^[0-9a-f]{16}$", description="a job id from run_sweep")
]
GoalText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="what the user wants, in plain English, e.g. 'under 5 MB with less than 1% accuracy loss'",
        examples=["under 5 MB with less than 1% accuracy loss"],
    ),
]
GoalArg = Annotated[
    GoalText | Goal,
    Field(
        description="the goal: plain English (read once, here), or the structured goal itself (fields as "
        "parse_goal returns them; set only the fields the user asked for)",
    ),
]
DisplayName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
        description="a short name the id is built from (letters, digits, space, . _ -)",
    ),
]
ServerPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00-\x1f]+$",
        description="absolute path of a file on the server's disk",
    ),
]
FileName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,254}$",
        description="the file's name; its extension tells the type (e.g. 'model.onnx', 'eval.npz')",
    ),
]


def _extension_pattern(suffixes: tuple[str, ...]) -> str:
    """A file name pattern that also states the extensions the server takes (any letter case)."""
    either = "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in x[1:]) for x in suffixes
    )
    return rf"^[A-Za-z0-9][A-Za-z0-9 ._-]{{0,249}}\.(?:{either})$"


# The schema states the extension; the tool refuses another one itself, with file_type (415) and a hint, rather
# than as a pattern mismatch.
ModelFileName = Annotated[FileName, Field(json_schema_extra={"pattern": _extension_pattern(MODEL_SUFFIXES)})]
DataFileName = Annotated[FileName, Field(json_schema_extra={"pattern": _extension_pattern(DATA_SUFFIXES)})]
# 16 M base64 characters = 12 MB of file; larger files go through HTTP POST /models or /data
Base64Content = Annotated[
    str,
    Field(
        min_length=4,
        max_length=16_000_000,
        description="the file's bytes, base64-encoded (up to 12 MB; use HTTP POST /models or /data for more)",
    ),
]


# --------------------------------------------------------------------------- the Tool type

A = TypeVar("A", bound=Args)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result and the short text a person reads."""

    result: BaseModel
    text: str

    def structured(self) -> dict[str, Any]:
        """The result as JSON data (NaN and infinities become null, as JSON has neither)."""
        data: dict[str, Any] = json.loads(self.result.model_dump_json())
        return data


@dataclass(frozen=True)
class Tool(Generic[A, R]):
    """One tool, declared once."""

    name: str
    title: str
    #: the text an LLM reads (when to use it, what it costs, what it returns); a function when it is generated
    #: from a registry that can grow (the techniques), so it is read afresh
    description: str | Callable[[], str]
    args_model: type[A]
    result_model: type[R]
    handler: Callable[[Services, A], R]
    summarize: Callable[[R], str]
    read_only: bool
    long_running: bool = False
    idempotent: bool = False

    def __post_init__(self) -> None:
        if self.handler.__name__ != self.name:
            raise ValueError(f"tool {self.name!r} must be handled by a function of the same name")

    def describe(self) -> str:
        """The tool's description as of now."""
        return self.description() if callable(self.description) else self.description

    def input_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.result_model.model_json_schema()

    def parse(self, raw: Any) -> A:
        """Validate raw arguments (a JSON object). Raises ArgumentsError (HTTP 422 / an MCP tool error)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ArgumentsError(
                f"the arguments of {self.name} must be a JSON object, not {type(raw).__name__}",
                hint=f"send an object such as {{}}; see the input schema of {self.name!r}",
            )
        try:
            # strict all the way down (a structured goal's numbers too), whatever the surface
            return self.args_model.model_validate(dict(raw), strict=True)
        except ValidationError as e:
            raise arguments_error(self.name, e) from None

    def run(self, services: Services, args: A) -> ToolOutput:
        result = self.handler(services, args)
        return ToolOutput(result=result, text=self.summarize(result))

    def call(self, services: Services, raw: Any) -> ToolOutput:
        """Validate and run. Raises QuantTaaSError (and, for bugs, anything else)."""
        return self.run(services, self.parse(raw))


# --------------------------------------------------------------------------- results


# Answers name stored things by id and a download route, never by a path on the server's disk: the stored types
# keep their path (the server needs it), hidden from the wire and from the schema.
HiddenPath = SkipJsonSchema[str]


def model_download_path(model: str) -> str:
    return f"/models/{model}/file"


def data_download_path(data_id: str) -> str:
    return f"/data/{data_id}/file"


class StoredModel(ModelRef):
    """A stored model as the tools show it."""

    path: HiddenPath = Field(default="", exclude=True)
    download_path: str = Field(
        description="HTTP path that streams the model file: GET <server><download_path>"
    )

    @classmethod
    def of(cls, ref: ModelRef) -> StoredModel:
        return cls(**ref.model_dump(exclude={"path"}), download_path=model_download_path(ref.id))


class InspectionResult(ModelInspection):
    """A model's inspection as the tools show it: its id (or zoo name) and download route, no server path."""

    path: HiddenPath = Field(default="", exclude=True)
    model: str = Field(description="the model id or zoo name inspected")
    download_path: str = Field(
        description="HTTP path that streams the model file: GET <server><download_path>"
    )

    @classmethod
    def of(cls, inspection: ModelInspection, model: str) -> InspectionResult:
        return cls(
            **inspection.model_dump(exclude={"path"}), model=model, download_path=model_download_path(model)
        )


class DataInfo(DataRef):
    """A registered data file as the tools show it."""

    path: HiddenPath = Field(default="", exclude=True)
    download_path: str = Field(
        description="HTTP path that streams the .npz file: GET <server><download_path>"
    )

    @classmethod
    def of(cls, ref: DataRef) -> DataInfo:
        return cls(**ref.model_dump(exclude={"path"}), download_path=data_download_path(ref.id))


class ListModelsResult(Result):
    models: list[StoredModel] = Field(description="models stored on this server, by id")
    zoo: list[str] = Field(description="zoo names every tool also accepts as a model")


class RegisterModelResult(Result):
    model: StoredModel
    inspection: InspectionResult


class ListDataResult(Result):
    data: list[DataInfo]


class RegisterDataResult(Result):
    data: DataInfo
    checked_model: str | None = Field(
        default=None, description="the model the data was checked against (the `model` argument), if any"
    )
    baseline_metric: float | None = Field(
        default=None,
        description="the checked model's score on the data's labels (its metric), when it has labels",
    )


class ParseGoalResult(Result):
    goal: Goal
    description: str = Field(description="the goal in one plain line")
    understood_all: bool = Field(
        description="false when some words were not understood (see goal.unparsed_words)"
    )
    runnable: bool = Field(
        description="whether run_sweep accepts this goal: it sets a limit, an objective or a precision"
    )


class TrialSummary(Result):
    """One finished trial of a sweep (partial results while it runs)."""

    id: str
    recipe: str
    ok: bool
    size_bytes: int | None = None
    metric: float | None = None
    accuracy_drop_pct: float | None = None
    latency_ms_p50: float | None = None
    seconds: float | None = Field(default=None, description="how long the trial took")
    error: ErrorInfo | None = None
    artifact_id: str | None = Field(default=None, description="the candidate model, for get_artifact")


class JobProgress(Result):
    phase: str = Field(
        description="queued, baseline, profiled, trial, skipped, remeasured, finished or a state"
    )
    done: int = 0
    planned: int = 0
    message: str = ""
    resumed_trials: int = Field(default=0, description="trials kept from an earlier run of this job")


JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class JobInfo(Result):
    job_id: str
    kind: str
    state: JobStateName
    model: str
    goal: str = Field(description="the goal as understood, in one plain line")
    goal_fields: Goal | None = Field(default=None, description="the structured goal the sweep runs")
    created_at: str
    updated_at: str
    progress: JobProgress
    cancel_requested: bool
    resumable: bool
    report_ready: bool
    error: ErrorInfo | None = None
    trials_finished: int
    trials: list[TrialSummary] = Field(default_factory=list, description="finished trials (partial results)")
    next_step: str = Field(description="what to call next")


class ListJobsResult(Result):
    jobs: list[JobInfo]


class ReportResult(Result):
    job_id: str
    state: JobStateName
    report: ParetoReport
    best_artifact: str | None = Field(description="artifact id of the recommended model (best.onnx)")
    chart_artifact: str | None = Field(description="artifact id of the interactive chart (pareto.html)")
    candidate_artifacts: dict[str, str] = Field(description="candidate id -> artifact id of its model")


class RecommendResult(Result):
    job_id: str
    goal: Goal
    recommendation: Recommendation
    misses: dict[str, list[ConstraintMiss]] = Field(
        default_factory=dict,
        description="candidate id -> the limits of this goal it misses (empty: meets all)",
    )


class ArtifactResult(Result):
    artifact_id: str
    media_type: str
    size_bytes: int
    sha256: str
    download_path: str = Field(description="HTTP path that streams the file: GET <server><download_path>")
    content_base64: str | None = Field(
        default=None, description="the file, base64-encoded (when inline was asked and it is small enough)"
    )
    inline_limit_bytes: int


class TechniqueInfo(Result):
    """One registered technique: what it does, what it counts as, what it needs, and its recipe's fields."""

    kind: str
    cli_name: str = Field(description="the name `quanttaas quantize --recipe` takes")
    description: str
    methods: list[str] = Field(description="the compression methods it counts as (quantize, prune, qat)")
    precision: str | None = Field(description="the numeric precision it produces (int8, int4, fp16), if any")
    needs: list[str] = Field(description="calibration, torch_source (the PyTorch model), training_data")
    recipe_schema: dict[str, Any] = Field(description="the JSON schema of its recipe's fields")


class ListTechniquesResult(Result):
    techniques: list[TechniqueInfo]


class ListZooResult(Result):
    entries: list[ZooEntry]


# --------------------------------------------------------------------------- arguments


class NoArgs(Args):
    pass


_ONE_SOURCE: list[dict[str, Any]] = [
    {
        "title": "a file on the server",
        "required": ["path"],
        "properties": {"path": {"type": "string"}, "content_base64": {"type": "null"}},
    },
    {
        "title": "the file's bytes",
        "required": ["content_base64", "filename"],
        "properties": {
            "content_base64": {"type": "string"},
            "filename": {"type": "string"},
            "path": {"type": "null"},
        },
    },
]


class RegisterModelArgs(Args):
    """Give exactly one of `path` (a file on the server) or `content_base64` together with `filename`."""

    one_of = _ONE_SOURCE

    path: ServerPath | None = None
    content_base64: Base64Content | None = None
    filename: ModelFileName | None = Field(
        default=None, description="needed with content_base64: e.g. 'model.onnx'"
    )
    name: DisplayName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> RegisterModelArgs:
        if (self.path is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of `path` or `content_base64`")
        if self.content_base64 is not None and self.filename is None:
            raise ValueError("`filename` is required with `content_base64` (its extension tells the type)")
        return self


class RegisterDataArgs(RegisterModelArgs):
    """Give exactly one of `path` (a file on the server) or `content_base64` together with `filename`; with
    `model`, the data is checked against that model before it is stored."""

    filename: DataFileName | None = Field(
        default=None, description="needed with content_base64: e.g. 'eval.npz'"
    )
    model: ModelName | None = Field(
        default=None,
        description="check the data against this model before storing it: inputs, labels within its classes, "
        "and that the model scores above chance on the labels (one pass over the data)",
    )


class InspectModelArgs(Args):
    model: ModelName


class ParseGoalArgs(Args):
    text: GoalText
    prior: Goal | None = Field(
        default=None,
        description="the goal so far (from an earlier parse_goal); the text is then a follow-up merged into it: "
        "what it sets replaces, the rest is kept",
    )


class ProfileLayersArgs(Args):
    model: ModelName
    data: DataId | None = Field(
        default=None, description="calibration data id; leave it out for a zoo model (its own data is used)"
    )
    samples: int = Field(default=32, ge=1, le=1024, description="calibration samples to run (more = slower)")


class RunSweepArgs(Args):
    """Give `model` and `goal` (with `data`, `calib`, `exhaustive` as needed) to start a sweep, or only
    `resume_job_id` to resume one."""

    one_of: ClassVar[list[dict[str, Any]]] = [
        {
            "title": "a new sweep",
            "required": ["model", "goal"],
            "properties": {"model": {"type": "string"}, "goal": {"not": {"type": "null"}}},
            "not": {"required": ["resume_job_id"], "properties": {"resume_job_id": {"type": "string"}}},
        },
        {
            "title": "resume a sweep",
            "required": ["resume_job_id"],
            "properties": {
                "resume_job_id": {"type": "string"},
                **{k: {"type": "null"} for k in ("model", "goal", "data", "calib")},
            },
        },
    ]

    model: ModelName | None = None
    goal: GoalArg | None = None
    data: DataId | None = Field(
        default=None, description="evaluation data id (inputs + labels); leave it out for a zoo model"
    )
    calib: DataId | None = Field(
        default=None, description="calibration data id; default: the first evaluation samples (zoo: its own)"
    )
    exhaustive: bool = Field(
        default=False, description="evaluate the whole grid instead of a goal-directed search (slower)"
    )
    resume_job_id: JobId | None = Field(
        default=None,
        description="continue this interrupted, cancelled or failed sweep instead of starting one",
    )

    @model_validator(mode="after")
    def _new_or_resume(self) -> RunSweepArgs:
        if self.resume_job_id is not None:
            if any(v is not None for v in (self.model, self.goal, self.data, self.calib)):
                raise ValueError("with `resume_job_id` give nothing else: the job's own arguments are reused")
        elif self.model is None or self.goal is None:
            raise ValueError("give `model` and `goal` (or `resume_job_id` to resume a sweep)")
        return self


class JobArgs(Args):
    job_id: JobId


class GetJobArgs(JobArgs):
    include_trials: bool = Field(default=True, description="list the finished trials (partial results)")


class ListJobsArgs(Args):
    state: JobStateName | None = Field(default=None, description="only jobs in this state")
    limit: int = Field(default=20, ge=1, le=200, description="at most this many jobs, newest first")


class RecommendArgs(JobArgs):
    goal: GoalArg


class GetArtifactArgs(Args):
    artifact_id: str = Field(
        min_length=1,
        max_length=220,
        pattern=ARTIFACT_ID_PATTERN,
        description="'<job_id>/best.onnx', '<job_id>/report.json', '<job_id>/pareto.html' or "
        "'<job_id>/candidates/<candidate id>.onnx' (get_pareto_report lists them)",
    )
    inline: bool = Field(
        default=True, description="return the content base64-encoded when it is small enough"
    )


# --------------------------------------------------------------------------- helpers


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="seconds")


def _decode_upload(args: RegisterModelArgs, services: Services, suffixes: tuple[str, ...], what: str) -> Path:
    """Write inline base64 content to an upload file (the caller removes it)."""
    content, filename = args.content_base64 or "", args.filename or ""
    suffix = services.check_type(filename, suffixes, what)
    try:
        blob = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ArgumentsError(
            "content_base64 is not valid base64", hint="encode the file's bytes with base64 (RFC 4648)"
        ) from None
    limit = services.settings.max_upload_bytes
    if len(blob) > limit:
        raise PayloadTooLargeError(f"the file is {len(blob):,} bytes; the limit is {limit:,}")
    path = services.new_upload_path(suffix)
    path.write_bytes(blob)
    return path


def _trial_summary(job_id: str, c: Candidate) -> TrialSummary:
    m = c.metrics
    artifact = f"{job_id}/candidates/{c.id}.onnx"
    return TrialSummary(
        id=c.id,
        recipe=c.recipe.label,
        ok=c.ok,
        size_bytes=m.size_bytes if m else None,
        metric=m.metric if m else None,
        accuracy_drop_pct=m.accuracy_drop_pct if m else None,
        latency_ms_p50=m.latency_ms_p50 if m else None,
        seconds=c.seconds,
        error=c.error,
        artifact_id=artifact if c.model_path and ARTIFACT_ID_RE.match(artifact) else None,
    )


_NEXT = {
    "queued": "it waits for a free slot; poll get_job in a few seconds",
    "running": "poll get_job in a few seconds; partial results are in `trials`",
    "succeeded": "call get_pareto_report(job_id) for the front, the recommendation and the artifacts",
    "failed": "read `error`; fix the input and call run_sweep again, or resume with run_sweep(resume_job_id=...)",
    "cancelled": "resume with run_sweep(resume_job_id=...) to finish it (finished trials are kept)",
    "interrupted": "resume with run_sweep(resume_job_id=...); finished trials are kept and not run again",
}


def job_info(services: Services, record: JobRecord, *, include_trials: bool = True) -> JobInfo:
    """The public view of a job record (with its finished trials when asked)."""
    args = record.args
    goal = args.get("goal")
    trials = services.job_store.trials(record.id)
    known = {k: record.progress[k] for k in JobProgress.model_fields if k in record.progress}
    progress = JobProgress(**{"phase": record.state, **known})
    error = None
    if record.error:
        error = ErrorInfo(
            code=str(record.error.get("code", "job_failed")),
            message=str(record.error.get("message", "")),
            hint=str(record.error.get("hint", "")),
        )
    return JobInfo(
        job_id=record.id,
        kind=record.kind,
        state=record.state,
        model=str(args.get("model", "")),
        goal=Goal.model_validate(goal).describe() if isinstance(goal, dict) else "",
        goal_fields=Goal.model_validate(goal) if isinstance(goal, dict) else None,
        created_at=_iso(record.created),
        updated_at=_iso(record.updated),
        progress=progress,
        cancel_requested=record.cancel_requested,
        resumable=record.state in RESUMABLE,
        report_ready=record.result is not None,
        error=error,
        trials_finished=len(trials),
        trials=[_trial_summary(record.id, c) for c in trials] if include_trials else [],
        next_step=_NEXT[record.state],
    )


def _finished_report(services: Services, job_id: str) -> tuple[JobRecord, ParetoReport]:
    record = services.job_store.get(job_id)
    if record.result is None:
        if record.state in ("queued", "running"):
            msg = f"job {job_id} is {record.state}; its report is not ready yet"
            hint = "poll get_job until the state is 'succeeded' (partial results are in its trials)"
        else:
            msg = f"job {job_id} is {record.state} and has no report"
            hint = "resume it with run_sweep(resume_job_id=...) or read its error with get_job"
        raise JobStateError(msg, hint=hint)
    return record, ParetoReport.model_validate_json(record.result)


def _goal(value: str | Goal, prior: Goal | None = None) -> Goal:
    """The structured goal: text is read once, here (merged into ``prior`` when given); a Goal is used as is."""
    if isinstance(value, Goal):
        return value if prior is None else prior.merged_with(value)
    try:
        return goal_reader.parse_goal(value, prior=prior)
    except (ValueError, TypeError) as e:  # the reader built an invalid Goal from contradicting words
        raise GoalError(f"could not read the goal: {str(e)[:200]}") from e


# --------------------------------------------------------------------------- handlers


def list_models(services: Services, args: NoArgs) -> ListModelsResult:
    return ListModelsResult(
        models=[StoredModel.of(m) for m in services.models.list()], zoo=[e.name for e in zoo.list_zoo()]
    )


def register_model_result(ref: ModelRef) -> RegisterModelResult:
    """What register_model (and HTTP POST /models) answer for a stored model."""
    inspection = onnx_inspect.inspect_model(ref.path)
    return RegisterModelResult(model=StoredModel.of(ref), inspection=InspectionResult.of(inspection, ref.id))


def register_model(services: Services, args: RegisterModelArgs) -> RegisterModelResult:
    if args.path is not None:
        source = services.check_source(Path(args.path), MODEL_SUFFIXES, "model")
        ref = services.register_model_file(source, args.name)
    else:
        tmp = _decode_upload(args, services, MODEL_SUFFIXES, "model")
        try:
            ref = services.register_model_file(tmp, args.name or Path(args.filename or "model").stem)
        finally:
            tmp.unlink(missing_ok=True)
    return register_model_result(ref)


def list_data(services: Services, args: NoArgs) -> ListDataResult:
    return ListDataResult(data=[DataInfo.of(d) for d in services.data.list()])


def register_data_result(checked: DataCheck) -> RegisterDataResult:
    """What register_data (and HTTP POST /data) answer for a stored data file."""
    return RegisterDataResult(
        data=DataInfo.of(checked.ref), checked_model=checked.model, baseline_metric=checked.baseline_metric
    )


def register_data(services: Services, args: RegisterDataArgs) -> RegisterDataResult:
    if args.path is not None:
        source = services.check_source(Path(args.path), DATA_SUFFIXES, "data")
        checked = services.register_data_file(source, args.name, model=args.model)
    else:
        tmp = _decode_upload(args, services, DATA_SUFFIXES, "data")
        try:
            name = args.name or Path(args.filename or "data").stem
            checked = services.register_data_file(tmp, name, model=args.model)
        finally:
            tmp.unlink(missing_ok=True)
    return register_data_result(checked)


def inspect_model(services: Services, args: InspectModelArgs) -> InspectionResult:
    inspection = onnx_inspect.inspect_model(services.resolve_model(args.model).path)
    return InspectionResult.of(inspection, args.model)


def parse_goal(services: Services, args: ParseGoalArgs) -> ParseGoalResult:
    goal = _goal(args.text, args.prior)
    return ParseGoalResult(
        goal=goal,
        description=goal.describe(),
        understood_all=not goal.unparsed_words,
        runnable=goal.has_target,
    )


def profile_layers(services: Services, args: ProfileLayersArgs) -> SensitivityReport:
    from optimizer.measure.data import load_data

    model = services.resolve_model(args.model)
    data_path = services.resolve_data(args.data, model, calib=True)
    calib = load_data(data_path, onnx_inspect.inspect_model(model.path).inputs, metric="agreement")
    return layer_profile.profile_layers(model.path, calib, samples=args.samples)


def run_sweep(services: Services, args: RunSweepArgs) -> JobInfo:
    from optimizer.measure.data import check_labels, num_classes
    from optimizer.optimize import load_case_data

    if args.resume_job_id is not None:
        return job_info(services, services.resume_sweep(args.resume_job_id))
    model_name = args.model or ""
    goal = _goal(args.goal or "")
    goal.require_target()
    model = services.resolve_model(model_name)
    data_path = services.resolve_data(args.data, model)
    calib_path = services.data.get(args.calib).path if args.calib else model.calib_path
    # data that does not fit the model fails now, not in the job: inputs, values, and labels inside its classes
    data, _ = load_case_data(Path(model.path), data_path, calib_path)
    if data.labels is not None:
        check_labels(
            data.labels,
            data.metric,
            data.samples,
            num_classes(onnx_inspect.inspect_model(model.path).outputs),
        )
    spec = SweepSpec(
        model=model_name,
        model_path=model.path,
        data_path=data_path,
        calib_path=calib_path,
        goal=goal,
        exhaustive=args.exhaustive,
    )
    return job_info(services, services.start_sweep(spec))


def get_job(services: Services, args: GetJobArgs) -> JobInfo:
    return job_info(services, services.job_store.get(args.job_id), include_trials=args.include_trials)


def list_jobs(services: Services, args: ListJobsArgs) -> ListJobsResult:
    records = services.job_store.recent(limit=args.limit, states=[args.state] if args.state else None)
    return ListJobsResult(jobs=[job_info(services, r, include_trials=False) for r in records])


def cancel_job(services: Services, args: JobArgs) -> JobInfo:
    return job_info(services, services.jobs.cancel(args.job_id), include_trials=False)


def get_pareto_report(services: Services, args: JobArgs) -> ReportResult:
    record, report = _finished_report(services, args.job_id)
    job = args.job_id
    artifacts = set(services.artifacts.list(job))
    return ReportResult(
        job_id=job,
        state=record.state,
        report=report,
        best_artifact=f"{job}/best.onnx" if f"{job}/best.onnx" in artifacts else None,
        chart_artifact=f"{job}/pareto.html" if f"{job}/pareto.html" in artifacts else None,
        candidate_artifacts={
            c.id: f"{job}/candidates/{c.id}.onnx"
            for c in report.candidates
            if f"{job}/candidates/{c.id}.onnx" in artifacts
        },
    )


def recommend(services: Services, args: RecommendArgs) -> RecommendResult:
    _, report = _finished_report(services, args.job_id)
    goal = _goal(args.goal)
    misses = pareto.goal_misses(report.candidates, report.baseline, goal)
    return RecommendResult(
        job_id=args.job_id,
        goal=goal,
        recommendation=pareto.recommend(report.candidates, report.baseline, goal, misses),
        misses=misses,
    )


def get_artifact(services: Services, args: GetArtifactArgs) -> ArtifactResult:
    job_id, name = parse_artifact_id(args.artifact_id)
    services.job_store.get(job_id)  # NotFoundError for an unknown job
    limit = services.settings.max_inline_artifact_bytes
    data = services.artifacts.read(args.artifact_id)
    inline = args.inline and len(data) <= limit
    return ArtifactResult(
        artifact_id=args.artifact_id,
        media_type=media_type(name),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        download_path=f"/artifacts/{args.artifact_id}",
        content_base64=base64.b64encode(data).decode() if inline else None,
        inline_limit_bytes=limit,
    )


def list_techniques(services: Services, args: NoArgs) -> ListTechniquesResult:
    from optimizer.techniques.registry import techniques

    return ListTechniquesResult(
        techniques=[
            TechniqueInfo(
                kind=t.kind,
                cli_name=t.cli_name,
                description=t.description,
                methods=sorted(t.methods),
                precision=t.precision,
                needs=sorted(t.needs),
                recipe_schema=t.recipe_type.model_json_schema(),
            )
            for t in techniques()
        ]
    )


def list_zoo(services: Services, args: NoArgs) -> ListZooResult:
    return ListZooResult(entries=zoo.list_zoo())


# --------------------------------------------------------------------------- one-line summaries for people


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _sum_list_models(r: ListModelsResult) -> str:
    stored = ", ".join(f"{m.id} ({format_bytes(m.size_bytes)})" for m in r.models[:10]) or "none"
    more = f" and {len(r.models) - 10} more" if len(r.models) > 10 else ""
    return f"{len(r.models)} stored model(s): {stored}{more}. Zoo: {', '.join(r.zoo)}."


def _inputs(i: ModelInspection) -> str:
    return ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in i.inputs)


def _sum_register_model(r: RegisterModelResult) -> str:
    i = r.inspection
    return (
        f"Stored {r.model.id}: ONNX opset {i.opset}, {format_bytes(i.size_bytes)}, {i.param_count:,} parameters, "
        f"inputs {_inputs(i)}{', already quantized' if i.quantized else ''}."
    )


def _sum_list_data(r: ListDataResult) -> str:
    shown = ", ".join(f"{d.id} ({d.samples} samples)" for d in r.data[:10]) or "none"
    return f"{len(r.data)} registered data file(s): {shown}."


def _sum_register_data(r: RegisterDataResult) -> str:
    d = r.data
    arrays = ", ".join(f"{k}{v}" for k, v in d.arrays.items())
    return f"Stored data {d.id}: {d.samples} samples, arrays {arrays}{'' if d.has_labels else ', no labels'}."


def _sum_inspect(i: InspectionResult) -> str:
    top = ", ".join(
        f"{la.name} ({la.op_type})" for la in sorted(i.layers, key=lambda la: -la.param_count)[:3]
    )
    return (
        f"ONNX opset {i.opset}, {format_bytes(i.size_bytes)}, {i.param_count:,} parameters in {len(i.layers)} "
        f"weighted layers (largest: {top or '-'}); inputs {_inputs(i)}; "
        + ("already quantized." if i.quantized else "not quantized.")
    )


def _sum_goal(r: ParseGoalResult) -> str:
    extra = f" Not understood: {', '.join(r.goal.unparsed_words)}." if r.goal.unparsed_words else ""
    return f"Goal: {r.description}.{extra}"


def _sum_profile(r: SensitivityReport) -> str:
    top = ", ".join(f"{la.name} ({_fmt(la.sqnr_db, '.1f')} dB)" for la in r.layers[:3]) or "none"
    return (
        f"{len(r.layers)} layers ranked by {r.method} over {r.calib_samples} samples in {r.seconds:.1f} s; "
        f"most sensitive: {top}."
    )


def _sum_job(r: JobInfo) -> str:
    p = r.progress
    counts = f"{r.trials_finished} trial(s) finished" + (f" of ~{p.planned}" if p.planned else "")
    err = f" Error [{r.error.code}]: {r.error.message}." if r.error else ""
    return f"Job {r.job_id} ({r.model}) is {r.state}: {counts}.{err} Next: {r.next_step}."


def _sum_jobs(r: ListJobsResult) -> str:
    shown = ", ".join(f"{j.job_id} {j.model} {j.state}" for j in r.jobs[:10]) or "none"
    return f"{len(r.jobs)} job(s): {shown}."


def _sum_report(r: ReportResult) -> str:
    rep = r.report
    head = f"{rep.evaluations} of {rep.grid_size} candidates measured, {len(rep.front)} on the front. "
    return head + ("Recommended: " if rep.recommended else "Nothing meets the goal: ") + rep.reason


def _sum_recommend(r: RecommendResult) -> str:
    rec = r.recommendation
    return ("Recommended: " if rec.recommended else "Nothing meets the goal: ") + rec.reason


def _sum_artifact(r: ArtifactResult) -> str:
    how = (
        "content inline (base64)"
        if r.content_base64 is not None
        else f"download it with GET {r.download_path}"
    )
    return f"{r.artifact_id}: {r.media_type}, {format_bytes(r.size_bytes)}, sha256 {r.sha256[:12]}...; {how}."


def _sum_techniques(r: ListTechniquesResult) -> str:
    return "Techniques: " + "; ".join(f"{t.kind} ({t.description})" for t in r.techniques) + "."


def _sum_zoo(r: ListZooResult) -> str:
    return "Zoo: " + "; ".join(f"{e.name} ({e.task}, metric {e.metric})" for e in r.entries) + "."


# --------------------------------------------------------------------------- the registry

_INSTANT = "Cost: instant; read-only."


def _technique_kinds() -> str:
    from optimizer.techniques.registry import techniques

    return ", ".join(t.kind for t in techniques())


_TOOLS: list[Tool[Any, Any]] = [
    Tool(
        name="list_models",
        title="List models",
        description=(
            "List the models stored on this server (added with register_model) with id, size and sha256, and the "
            "zoo names every tool also accepts as a model. Use it first to find the `model` argument of "
            "inspect_model, profile_layers and run_sweep. " + _INSTANT
        ),
        args_model=NoArgs,
        result_model=ListModelsResult,
        handler=list_models,
        summarize=_sum_list_models,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="register_model",
        title="Register a model",
        description=(
            "Store a model on the server so the other tools can use it by id. Give `path` (a file on the server: "
            ".onnx, or a torch.export .pt2 program, converted to ONNX with weights-only loading) or "
            "`content_base64` + `filename` for a small file (large files: HTTP POST /models). The file is checked "
            "first: a corrupt or non-model file is refused and nothing is stored; the same content twice returns "
            "the same id. Returns the id and an inspection. Cost: about a second for ONNX; 10-60 s for a .pt2."
        ),
        args_model=RegisterModelArgs,
        result_model=RegisterModelResult,
        handler=register_model,
        summarize=_sum_register_model,
        read_only=False,
        idempotent=True,
    ),
    Tool(
        name="list_data",
        title="List data files",
        description=(
            "List the evaluation/calibration data files registered on this server (id, samples, array names and "
            "shapes, whether they carry labels). Zoo models need none: they bring their own. " + _INSTANT
        ),
        args_model=NoArgs,
        result_model=ListDataResult,
        handler=list_data,
        summarize=_sum_list_data,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="register_data",
        title="Register a data file",
        description=(
            "Store an evaluation or calibration data file (.npz: one array per model input, named after it, first "
            "axis = samples; optional `labels`) so run_sweep and profile_layers can use it by id. Give `path` (a "
            "file on the server) or `content_base64` + `filename` (large files: HTTP POST /data). Pickled (object) "
            "arrays, NaN/Inf values and malformed archives are refused. Give `model` to check the file against it "
            "now (inputs, label range, and a baseline that is not degenerate: a model at chance level is refused) "
            "rather than at run_sweep. Cost: about a second; a few seconds with `model`."
        ),
        args_model=RegisterDataArgs,
        result_model=RegisterDataResult,
        handler=register_data,
        summarize=_sum_register_data,
        read_only=False,
        idempotent=True,
    ),
    Tool(
        name="inspect_model",
        title="Inspect a model",
        description=(
            "Describe a model without running it: ONNX opset, size on disk, parameter count, inputs and outputs "
            "with shapes, op counts, the layers that carry weights, and whether it is already quantized. Use it "
            "before a sweep to check the model and learn its input names (data files must use them). Cost: well "
            "under a second (a zoo model is built on its first use, ~10 s for digits-cnn); read-only."
        ),
        args_model=InspectModelArgs,
        result_model=InspectionResult,
        handler=inspect_model,
        summarize=_sum_inspect,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="parse_goal",
        title="Read a goal",
        description=(
            "Read a compression goal in plain English ('under 5 MB, <1% accuracy loss', 'as fast as possible on a "
            "phone') into the structured goal that run_sweep and recommend use, without running anything. Words it "
            "did not understand are listed in goal.unparsed_words: ask the user about them instead of guessing. "
            "Deterministic (no LLM). " + _INSTANT
        ),
        args_model=ParseGoalArgs,
        result_model=ParseGoalResult,
        handler=parse_goal,
        summarize=_sum_goal,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="profile_layers",
        title="Rank layers by sensitivity",
        description=(
            "Rank a model's quantizable layers by how much error int8 quantization adds to each (SQNR in dB: lower "
            "= more sensitive), most sensitive first. Use it to explain why int8 costs accuracy or which layers to "
            "keep in float32. Needs calibration data: a registered data id, or nothing for a zoo model. Cost: a few "
            "forward passes over `samples` samples: about a second for a small CNN, up to a minute for a "
            "20M-parameter transformer; read-only."
        ),
        args_model=ProfileLayersArgs,
        result_model=SensitivityReport,
        handler=profile_layers,
        summarize=_sum_profile,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="run_sweep",
        title="Start a compression sweep (job)",
        description=lambda: (
            "Start a goal-directed sweep of compression recipes on a model, measured on its data, and return a job "
            "id AT ONCE; the sweep runs in the background. The techniques it draws on: "
            + _technique_kinds()
            + " (list_techniques says what each does and needs). Then poll get_job (progress and finished "
            "trials) until the state is 'succeeded' and read the result with get_pareto_report. To continue a "
            "sweep that was interrupted (server restart), cancelled or failed, pass only `resume_job_id`: finished "
            "trials are kept and not run again. Cost: seconds for a small CNN, minutes for larger models; several "
            "sweeps run at once and extra ones wait queued."
        ),
        args_model=RunSweepArgs,
        result_model=JobInfo,
        handler=run_sweep,
        summarize=_sum_job,
        read_only=False,
        long_running=True,
    ),
    Tool(
        name="get_job",
        title="Job state and progress",
        description=(
            "State of a job (queued, running, succeeded, failed, cancelled or interrupted), its progress, the "
            "trials finished so far (partial results: size, metric, accuracy drop, latency per candidate), the "
            "error when it failed, and what to call next. Poll it every few seconds while a sweep runs. "
            + _INSTANT
        ),
        args_model=GetJobArgs,
        result_model=JobInfo,
        handler=get_job,
        summarize=_sum_job,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="list_jobs",
        title="List jobs",
        description="List the server's jobs, newest first, optionally only those in one state. " + _INSTANT,
        args_model=ListJobsArgs,
        result_model=ListJobsResult,
        handler=list_jobs,
        summarize=_sum_jobs,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="cancel_job",
        title="Cancel a job",
        description=(
            "Stop a queued or running job without touching the others. Finished trials are kept and the job can "
            "be resumed later with run_sweep(resume_job_id=...). A running sweep stops after its current trial, "
            "so get_job may show 'running' with cancel_requested=true for a moment. Cancelling a job that already "
            "succeeded or failed is an error; cancelling a cancelled one changes nothing. Cost: instant."
        ),
        args_model=JobArgs,
        result_model=JobInfo,
        handler=cancel_job,
        summarize=_sum_job,
        read_only=False,
        idempotent=True,
    ),
    Tool(
        name="get_pareto_report",
        title="Sweep result (Pareto report)",
        description=(
            "The result of a finished sweep: the original model's metrics, every candidate (failed ones with their "
            "error), the Pareto front over size, accuracy drop and latency, the recommended candidate and why (or, "
            "when nothing meets the goal, the nearest candidates and by how much they miss), and the artifact ids "
            "of the models and the chart for get_artifact. Only for jobs whose report is ready (succeeded, or "
            "cancelled after it stopped). " + _INSTANT
        ),
        args_model=JobArgs,
        result_model=ReportResult,
        handler=get_pareto_report,
        summarize=_sum_report,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="recommend",
        title="Recommend for another goal",
        description=(
            "Pick the best candidate of a finished sweep for a different goal without running anything (e.g. "
            "'what if 2% accuracy loss is fine?'). Returns the recommended candidate and why, the candidates that "
            "meet the goal, or the nearest misses. To try recipes the sweep never built, start a new run_sweep. "
            + _INSTANT
        ),
        args_model=RecommendArgs,
        result_model=RecommendResult,
        handler=recommend,
        summarize=_sum_recommend,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="get_artifact",
        title="Download an artifact",
        description=(
            "Fetch a job artifact: a candidate model (.onnx), the recommended model (best.onnx), the report "
            "(report.json) or the interactive chart (pareto.html). Returns size, sha256, media type, the HTTP "
            "download path (GET /artifacts/<id>) and, when inline=true and the file is within the server's inline "
            "limit (8 MB by default), the content base64-encoded. Cost: proportional to the file size; read-only."
        ),
        args_model=GetArtifactArgs,
        result_model=ArtifactResult,
        handler=get_artifact,
        summarize=_sum_artifact,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="list_zoo",
        title="List the zoo",
        description=(
            "The built-in demo models, each with its own data and metric, that every tool accepts by name (e.g. "
            "'digits-cnn', a small CNN on 8x8 digits). Nothing is downloaded: a zoo model is built from installed "
            "packages on its first use (digits-cnn ~10 s, minilm-l6 about a minute). " + _INSTANT
        ),
        args_model=NoArgs,
        result_model=ListZooResult,
        handler=list_zoo,
        summarize=_sum_zoo,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="list_techniques",
        title="List the compression techniques",
        description=lambda: (
            "The compression techniques the sweep draws on, one record each: what it does, which methods and "
            "precision it counts as (what a goal's methods/precision filters act on), what it needs (calibration "
            "data, the PyTorch model, labelled training data) and its recipe's fields. Use it to explain a "
            "recipe or why one was not tried. Now: " + _technique_kinds() + ". " + _INSTANT
        ),
        args_model=NoArgs,
        result_model=ListTechniquesResult,
        handler=list_techniques,
        summarize=_sum_techniques,
        read_only=True,
        idempotent=True,
    ),
]

#: every tool, by name, in a stable order
REGISTRY: dict[str, Tool[Any, Any]] = {t.name: t for t in _TOOLS}


def get_tool(name: str) -> Tool[Any, Any]:
    """Raises UnknownToolError (a NotFoundError, HTTP 404) for a name that is not in the registry."""
    tool = REGISTRY.get(name)
    if tool is None:
        raise UnknownToolError(f"no tool named {name[:100]!r}", hint="the tools are: " + ", ".join(REGISTRY))
    return tool


def call_tool(services: Services, name: str, raw: Any) -> ToolOutput:
    """Validate and run a tool by name (the path every surface takes). Raises QuantTaaSError."""
    return get_tool(name).call(services, raw)
