"""What the tools act on: the model and data stores, the zoo, the job manager and the artifact store.

One :class:`Services` object per server process, shared by the MCP and the HTTP surfaces. Everything here speaks the
optimizer's types and raises the optimizer's error tree; nothing here knows MCP or HTTP.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mcp_server.artifacts import ArtifactStore
from mcp_server.errors import (
    JobStateError,
    PayloadTooLargeError,
    StorageError,
    UnsupportedFileError,
    environment_error,
)
from mcp_server.jobs import JobContext, JobManager, JobRecord, JobStore
from mcp_server.settings import ServerSettings
from optimizer.errors import DataError, ModelLoadError, NotFoundError
from optimizer.models.store import ModelStore, sha256_file, slug
from optimizer.types import Frozen, Goal, ModelRef

if TYPE_CHECKING:
    from optimizer.optimize import ChartWriter

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")
MODEL_SUFFIXES = (".onnx", ".pt2")
DATA_SUFFIXES = (".npz",)
# an archive may hold at most this many times its size once unpacked (zip bombs)
MAX_UNPACK_RATIO = 20
RESERVED_ARRAYS = ("labels", "metric")


class DataRef(Frozen):
    """A registered data file (.npz): inputs named after a model's inputs, optional labels."""

    id: str
    path: str
    sha256: str
    size_bytes: int = Field(ge=0)
    samples: int = Field(ge=0, description="length of the first axis of the input arrays")
    arrays: dict[str, list[int]] = Field(description="array name -> shape")
    has_labels: bool
    metric: str | None = Field(default=None, description="the metric the file names, if any")


class DataCheck(Frozen):
    """A stored data file, and what checking it against a model found."""

    ref: DataRef
    model: str | None = None
    baseline_metric: float | None = None


class ResolvedModel(Frozen):
    """A model argument resolved to a file, and the data a zoo model brings with it."""

    name: str
    path: str
    zoo: bool = False
    eval_path: str | None = None
    calib_path: str | None = None


class SweepSpec(Frozen):
    """What a sweep job stores as its arguments: the request, and everything resolved from it."""

    model: str
    model_path: str
    data_path: str
    calib_path: str | None
    goal: Goal
    exhaustive: bool = False


def check_archive(path: Path, max_bytes: int, what: str) -> None:
    """Refuse a zip archive that is not one, or that would unpack to far more than it weighs.

    Raises:
        DataError / ModelLoadError (per ``what``): not a zip archive, or a suspicious unpacked size.
    """
    error = DataError if what == "data" else ModelLoadError
    if not zipfile.is_zipfile(path):
        raise error(f"{path.name} is not a {'.npz' if what == 'data' else '.pt2'} archive (not a zip file)")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError) as e:
        raise error(f"{path.name} is a damaged archive: {e}") from e
    limit = max(max_bytes, path.stat().st_size * MAX_UNPACK_RATIO)
    if unpacked > limit:
        raise error(
            f"{path.name} would unpack to {unpacked:,} bytes, more than the {limit:,} allowed",
            hint="store arrays uncompressed (numpy.savez) and within the upload limit",
        )


class DataStore:
    """Registered .npz files: ``<root>/<id>/data.npz`` plus ``ref.json``, content-addressed like the model store."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, path: Path, name: str | None = None, *, max_bytes: int) -> DataRef:
        """Validate and store a .npz file; the same content twice returns the stored reference.

        What can be checked without a model is: a well-formed archive (headers that match their data, no object
        arrays), input arrays with a sample axis, finite values, labels the metric can score, a known metric.

        Raises:
            DataError: naming the array and the problem.
        """
        from optimizer.measure.data import check_finite, check_labels, read_npz
        from optimizer.measure.metrics import get_metric

        check_archive(path, max_bytes, "data")
        arrays = read_npz(path)
        inputs = {k: v for k, v in arrays.items() if k not in RESERVED_ARRAYS and not k.startswith("meta__")}
        if not inputs:
            raise DataError(
                f"{path.name} holds no input arrays", hint="name one array after each model input"
            )
        if any(v.ndim == 0 for v in inputs.values()):
            raise DataError(
                f"{path.name} has 0-d input arrays", hint="the first axis of every input counts samples"
            )
        for key, value in inputs.items():
            check_finite(key, value)
        metric = str(arrays["metric"]) if "metric" in arrays and arrays["metric"].ndim == 0 else None
        if metric is not None:
            get_metric(metric)  # an unknown metric is refused now, not at the first sweep
        if "labels" in arrays:
            samples = int(next(iter(inputs.values())).shape[0])
            check_labels(arrays["labels"], metric or "top1", samples)
        digest = sha256_file(path)
        data_id = f"{slug(name or path.stem)}-{digest[:12]}"
        ref = DataRef(
            id=data_id,
            path=str(self.root / data_id / "data.npz"),
            sha256=digest,
            size_bytes=path.stat().st_size,
            samples=int(next(iter(inputs.values())).shape[0]),
            arrays={k: [int(d) for d in v.shape] for k, v in arrays.items()},
            has_labels="labels" in arrays,
            metric=metric,
        )
        final = self.root / data_id
        if (final / "ref.json").is_file():
            return self.get(data_id)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=self.root))
        try:
            shutil.copyfile(path, tmp / "data.npz")
            (tmp / "ref.json").write_text(ref.model_dump_json(indent=2))
            try:
                tmp.rename(final)
            except OSError:  # stored concurrently by another request
                return self.get(data_id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ref

    def get(self, data_id: str) -> DataRef:
        """Raises NotFoundError for an unknown or malformed id."""
        if not NAME_RE.match(data_id) or ".." in data_id or not (self.root / data_id / "ref.json").is_file():
            raise NotFoundError(
                f"no registered data {data_id[:100]!r}", hint="list_data shows the registered data"
            )
        return DataRef.model_validate_json((self.root / data_id / "ref.json").read_text())

    def list(self) -> list[DataRef]:
        if not self.root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(self.root.iterdir()) if (p / "ref.json").is_file()]


class Services:
    """The server's state: stores, zoo, jobs, artifacts. Thread-safe; one per process."""

    def __init__(self, settings: ServerSettings | None = None, *, chart_writer: ChartWriter | None = None):
        self.settings = settings or ServerSettings()
        self.chart_writer = chart_writer
        s = self.settings
        # a home that cannot be written still serves what it holds: problems are recorded (GET /health), and
        # each write that fails says why (StorageError), instead of the server refusing to start
        self._home_problems: list[StorageError] = []
        for d in (s.state_dir, s.upload_dir, s.work_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                self._note(e)
        for d in (s.home, s.models_dir, s.data_dir, s.upload_dir, s.work_dir):
            if os.path.isdir(d) and not os.access(d, os.W_OK):  # os.path.isdir never raises
                self._home_problems.append(
                    StorageError(
                        f"{d} is not writable: nothing new can be stored there (reads keep working)",
                        hint="Give the server's user write access to QUANTTAAS_HOME (chown/chmod, or mount it "
                        "read-write) and restart the server.",
                        details={"path": str(d), "mode": "read_only"},
                    )
                )
                break
        self.models = ModelStore(s.models_dir)
        self.data = DataStore(s.data_dir)
        self.artifacts = ArtifactStore(s.artifact_root, s.work_dir)
        self.job_store = JobStore(s.db_path)
        self.jobs = JobManager(self.job_store, s.work_dir, max_concurrent=s.max_concurrent_jobs)
        self._closed = False

    def _note(self, e: OSError) -> None:
        err = environment_error(e)
        if err is None:
            raise e
        err.details = {"path": str(e.filename or self.settings.home), "mode": "read_only"}
        self._home_problems.append(err)

    @property
    def problems(self) -> list[StorageError]:
        """What is wrong with the server's storage (found at start): empty when it is healthy."""
        return [*self._home_problems, *self.job_store.problems]

    def close(self) -> None:
        """Stop the running jobs (they become interrupted) and close the database."""
        if self._closed:
            return
        self._closed = True
        self.jobs.shutdown()
        self.job_store.close()

    # ------------------------------------------------------------------ models and data

    def resolve_model(self, model: str) -> ResolvedModel:
        """A zoo name or a stored model id as a file (a zoo model is built on first use).

        Raises:
            NotFoundError: neither a zoo name nor a stored id. TechniqueError: building the zoo case failed.
        """
        from optimizer import zoo

        if zoo.is_zoo_name(model):
            case = zoo.get_zoo_case(model, root=self.settings.zoo_root)
            return ResolvedModel(
                name=model,
                path=case.model_path,
                zoo=True,
                eval_path=case.eval_path,
                calib_path=case.calib_path,
            )
        if NAME_RE.match(model):
            try:
                return ResolvedModel(name=model, path=self.models.get(model).path)
            except NotFoundError:
                pass
        raise NotFoundError(
            f"no model {model[:100]!r}: it is neither a stored model id nor a zoo name",
            hint="list_models shows the stored ids and the zoo names; register_model stores a new file",
        )

    def resolve_data(self, data_id: str | None, model: ResolvedModel, *, calib: bool = False) -> str:
        """The file of a data argument; a zoo model's own eval (or calibration) data when none is given.

        Raises:
            NotFoundError: unknown data id. DataError: none given for a model that is not from the zoo.
        """
        if data_id is not None:
            return self.data.get(data_id).path
        own = model.calib_path if calib else model.eval_path
        if own is None:
            raise DataError(
                f"{model.name} is not a zoo model, so it has no data of its own",
                hint="register a .npz with register_data (inputs named after the model's, plus `labels`) "
                "and pass its id as `data`",
            )
        return own

    def check_source(self, path: Path, suffixes: tuple[str, ...], what: str) -> Path:
        """A server-side file given by path: it must exist, be a regular file of the right type and size.

        Raises:
            NotFoundError: no such file. UnsupportedFileError: wrong type. PayloadTooLargeError: too big.
        """
        try:
            p = path.expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFoundError(
                f"no file {str(path)[:300]!r} on the server", hint="give an absolute path"
            ) from None
        if not p.is_file():
            raise NotFoundError(f"{str(p)[:300]} is not a regular file")
        self.check_type(p.name, suffixes, what)
        size = p.stat().st_size
        if size > self.settings.max_upload_bytes:
            raise PayloadTooLargeError(
                f"{p.name} is {size:,} bytes; the limit is {self.settings.max_upload_bytes:,}",
            )
        return p

    @staticmethod
    def check_type(filename: str, suffixes: tuple[str, ...], what: str) -> str:
        suffix = Path(filename).suffix.lower()
        if suffix not in suffixes:
            raise UnsupportedFileError(
                f"{filename[:200]!r} is not a {what} file this server takes ({', '.join(suffixes)})",
            )
        return suffix

    def new_upload_path(self, suffix: str) -> Path:
        return self.settings.upload_dir / f"{uuid.uuid4().hex}{suffix}"

    def register_model_file(self, path: Path, name: str | None) -> ModelRef:
        """Validate (and convert a .pt2) and store a model; nothing is stored when it is not a valid model.

        Raises:
            ModelLoadError: not a valid ONNX model or .pt2 program. UnsupportedFileError: wrong type.
        """
        suffix = self.check_type(path.name, MODEL_SUFFIXES, "model")
        if path.stat().st_size == 0:
            raise ModelLoadError(f"{name or path.name} is empty (0 bytes)")
        if suffix == ".pt2":
            check_archive(path, self.settings.max_upload_bytes, "model")
        return self.models.add(path, name=name or None)

    def register_data_file(self, path: Path, name: str | None, *, model: str | None = None) -> DataCheck:
        """Validate and store a data file; with ``model``, check it against that model first (nothing is stored
        when it does not fit): inputs, labels inside the model's classes, and a baseline score the model's
        compressed versions can be compared with (one forward pass over the data).

        Raises:
            DataError (the data, or its baseline, cannot be used), UnsupportedFileError, NotFoundError (model),
            ModelLoadError, EvaluationError.
        """
        self.check_type(path.name, DATA_SUFFIXES, "data")
        baseline: float | None = None
        if model is not None:
            resolved = self.resolve_model(model)
            check_archive(path, self.settings.max_upload_bytes, "data")
            baseline = self.check_data_against(path, resolved)
        ref = self.data.add(path, name, max_bytes=self.settings.max_upload_bytes)
        return DataCheck(ref=ref, model=model, baseline_metric=baseline)

    def check_data_against(self, data_path: Path | str, model: ResolvedModel) -> float | None:
        """The model's score on the data's labels (None without labels: then candidates are compared by agreement).

        Raises:
            DataError: the data does not fit the model, or the model's score is degenerate (the metric's floor,
                chance level: see ``optimizer.measure.metrics.check_baseline``).
        """
        from optimizer.measure.data import load_data
        from optimizer.measure.evaluate import evaluate_model
        from optimizer.models.inspect import inspect_model

        info = inspect_model(model.path)
        data = load_data(data_path, info.inputs, model_outputs=info.outputs)
        if data.labels is None:
            return None
        metrics, _ = evaluate_model(
            model.path, data, as_reference=True, latency_runs=0, threads=self.settings.sweep_threads
        )
        return metrics.metric

    # ------------------------------------------------------------------ sweeps

    def start_sweep(self, spec: SweepSpec) -> JobRecord:
        return self.jobs.submit("sweep", spec.model_dump(mode="json"), self.run_sweep_job)

    def resume_sweep(self, job_id: str) -> JobRecord:
        record = self.jobs.store.get(job_id)
        if record.kind != "sweep":
            raise JobStateError(
                f"job {job_id} is a {record.kind} job, not a sweep", hint="resume sweeps only"
            )
        return self.jobs.resume(job_id, self.run_sweep_job)

    def run_sweep_job(self, ctx: JobContext) -> str:
        """The body of a sweep job (runs in its thread): the one pipeline (:func:`optimizer.optimize.optimize`)
        with this job's hooks: progress into the trial store, its cancel flag, and the trials an interrupted run
        already finished (failed ones too: failures are data)."""
        from optimizer.optimize import optimize
        from optimizer.search.sweep import SweepEvent, SweepOptions

        spec = SweepSpec.model_validate(ctx.args)
        stored = ctx.stored_trials()
        base: dict[str, Any] = {"resumed_trials": len(stored)}
        ctx.set_progress(
            {**base, "phase": "baseline", "done": len(stored), "planned": 0, "message": "starting"}
        )

        def on_event(e: SweepEvent) -> None:
            progress = {
                **base,
                "phase": e.kind,
                "done": e.done,
                "planned": e.planned,
                "message": e.message[:300],
            }
            if e.kind == "trial" and e.candidate is not None:
                ctx.add_trial(e.candidate, progress)
            else:
                ctx.set_progress(progress)

        s = self.settings
        report = optimize(
            spec.model_path,
            spec.data_path,
            goal=spec.goal,
            out_dir=ctx.work_dir,
            calib_path=spec.calib_path,
            options=SweepOptions(
                executor=s.sweep_executor,
                exhaustive=spec.exhaustive,
                threads=s.sweep_threads,
                front_points=s.sweep_front_points,
                time_budget_s=s.sweep_time_budget_s,
            ),
            progress=on_event,
            cancel=ctx.cancel,
            chart_writer=self.chart_writer,
            resume=stored,
            model_name=spec.model,
        )
        self.artifacts.publish(ctx.job_id)
        return report.model_dump_json(indent=2)
