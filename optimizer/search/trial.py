"""One sweep trial: quantize (or prune, train, chain), evaluate, return the candidate (or the error that stopped it).

A trial takes everything it reads from one :class:`TrialInputs` (the model as bytes, the data as arrays, and the
files a :class:`~optimizer.types.TorchSource` names, as bytes) and returns the candidate model as bytes, so it
runs the same in-process or as a Ray task on another machine of a cluster: nothing is shared through the file
system. A trial never raises: a failure is recorded in the candidate (failures are data).
"""

from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.errors import QuantTaaSError
from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import evaluate_model
from optimizer.models.files import name_data_after, pack_model, unpack_model
from optimizer.techniques.chain import apply_recipe, complete_steps
from optimizer.techniques.failures import classify_failure
from optimizer.techniques.prune import compressed_size_bytes
from optimizer.types import Candidate, ErrorInfo, Frozen, Metrics, Recipe, TorchSource

#: latency runs for the intermediate steps of a chain (the final model gets the trial's full count)
STEP_LATENCY_RUNS = 10


@dataclass
class TrialInputs:
    """What every trial of a sweep reads, sent once (a Ray object) rather than read from shared paths."""

    model_bytes: bytes
    data: Dataset
    calib: Dataset | None
    reference: list[np.ndarray] | None
    #: the files of the sweep's TorchSource (state_dict, training data) by the path the source names
    torch_files: dict[str, bytes] = field(default_factory=dict)
    #: the original file, for the trials that run on it (the one-liners); None: the pre-processed one serves
    original_bytes: bytes | None = None

    def model_for(self, spec: TrialSpec) -> bytes:
        """The model bytes a trial starts from: the original file for the one-liners, else the prepared one."""
        return (
            self.original_bytes if spec.on_original and self.original_bytes is not None else self.model_bytes
        )

    @classmethod
    def for_sweep(
        cls,
        model_bytes: bytes,
        data: Dataset,
        calib: Dataset | None,
        reference: list[np.ndarray] | None,
        torch_source: TorchSource | None = None,
        original_bytes: bytes | None = None,
    ) -> TrialInputs:
        """Read the torch source's files once, on the machine that has them."""
        files: dict[str, bytes] = {}
        if torch_source is not None:
            for path in (torch_source.state_dict_path, torch_source.train_path):
                if path and Path(path).is_file():
                    files[path] = Path(path).read_bytes()
        return cls(model_bytes, data, calib, reference, files, original_bytes)


def localize_source(source: TorchSource | None, files: dict[str, bytes], folder: Path) -> TorchSource | None:
    """The source with its files written into ``folder`` (on the worker), so a node that does not share the
    driver's file system reads what the driver sent."""
    if source is None or not files:
        return source
    updates: dict[str, str] = {}
    for key in ("state_dict_path", "train_path"):
        path = getattr(source, key)
        if path and path in files:
            local = folder / f"{key}{Path(path).suffix}"
            local.write_bytes(files[path])
            updates[key] = str(local)
    return source.model_copy(update=updates)


class TrialSpec(Frozen):
    id: str
    recipe: Recipe
    baseline_metric: float
    threads: int = 1
    batch_size: int = 1
    latency_runs: int = 30
    provider: str | None = None
    torch_source: TorchSource | None = None
    #: the one-liners run on the original file (the executor hands them its bytes), not the pre-processed one
    on_original: bool = False
    #: most calibration samples for histogram calibration (entropy, percentile), from the sweep's memory plan
    calib_cap: int | None = None
    #: how many times this trial was retried after its worker was killed for memory (each halves calibration)
    memory_retry: int = 0


def uses_histograms(recipe: Recipe) -> bool:
    """Whether a recipe calibrates with histograms (entropy, percentile): memory grows with the samples."""
    from optimizer.techniques.registry import steps_of

    return any(getattr(step, "calibration", "minmax") != "minmax" for step in steps_of(recipe))


def bounded_calib(spec: TrialSpec, calib: Dataset | None) -> tuple[Dataset | None, dict[str, Any]]:
    """The calibration data a trial may use under the memory plan and its retries, and what was cut."""
    if calib is None:
        return None, {}
    n = calib.samples
    if spec.calib_cap is not None and uses_histograms(spec.recipe):
        n = min(n, spec.calib_cap)
    if spec.memory_retry:
        n = max(1, min(n, getattr(spec.recipe, "calib_samples", n)) >> spec.memory_retry)
    if n >= calib.samples:
        return calib, {}
    return calib.head(n), {"calib_samples_used": n, "calib_samples_given": calib.samples}


def run_trial(spec: TrialSpec, inputs: TrialInputs) -> tuple[Candidate, bytes | None]:
    """Apply ``spec.recipe`` to the (pre-processed) model and measure it. Never raises."""
    data, calib, reference = inputs.data, inputs.calib, inputs.reference
    t0 = time.perf_counter()
    detail: dict[str, Any] = {}
    calib, cut = bounded_calib(spec, calib)

    def measure(path: Path, runs: int) -> Metrics:
        metrics, _ = evaluate_model(
            path,
            data,
            baseline_metric=spec.baseline_metric,
            reference_outputs=reference,
            threads=spec.threads,
            batch_size=spec.batch_size,
            latency_runs=runs,
            provider=spec.provider,
        )
        return metrics.model_copy(update={"compressed_size_bytes": compressed_size_bytes(path)})

    try:
        with tempfile.TemporaryDirectory(prefix="quanttaas-trial-") as tmp:
            src = unpack_model(inputs.model_for(spec), Path(tmp) / "input.onnx")
            source = localize_source(spec.torch_source, inputs.torch_files, Path(tmp))
            target = Path(tmp) / "candidate.onnx"
            applied = apply_recipe(
                src,
                spec.recipe,
                target,
                calib=calib,
                torch_source=source,
                evaluate=lambda p: measure(p, min(STEP_LATENCY_RUNS, spec.latency_runs)),
                prepared=not spec.on_original,
            )
            out, detail = applied.path, {**applied.detail, **cut}
            # external data named as the sweep will store the file, so the size measured is the size stored
            name_data_after(out, f"{spec.id}.onnx")
            metrics = measure(out, spec.latency_runs)
            if "steps" in detail:
                detail = {**detail, "steps": complete_steps(detail["steps"], metrics)}
            blob = pack_model(out)
        cand = Candidate(
            id=spec.id,
            recipe=spec.recipe,
            metrics=metrics,
            seconds=round(time.perf_counter() - t0, 3),
            detail=detail,
        )
        return cand, blob
    except QuantTaaSError as e:
        err = ErrorInfo(code=e.code, message=e.message, hint=e.hint)
        detail = {k: v for k, v in e.details.items() if k in ("steps", "inc", "failure", "workarounds_tried")}
    except Exception as e:  # a trial must never take the sweep down; the error is kept as data
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        err = ErrorInfo(code="technique_failed", message=last[:500], hint="this recipe failed on this model")
        detail = {"failure": classify_failure(e)}
    return Candidate(
        id=spec.id, recipe=spec.recipe, error=err, seconds=round(time.perf_counter() - t0, 3), detail=detail
    ), None
