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
from optimizer.techniques.chain import apply_recipe, complete_steps
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

    @classmethod
    def for_sweep(
        cls,
        model_bytes: bytes,
        data: Dataset,
        calib: Dataset | None,
        reference: list[np.ndarray] | None,
        torch_source: TorchSource | None = None,
    ) -> TrialInputs:
        """Read the torch source's files once, on the machine that has them."""
        files: dict[str, bytes] = {}
        if torch_source is not None:
            for path in (torch_source.state_dict_path, torch_source.train_path):
                if path and Path(path).is_file():
                    files[path] = Path(path).read_bytes()
        return cls(model_bytes, data, calib, reference, files)


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
    latency_runs: int = 30
    provider: str | None = None
    torch_source: TorchSource | None = None


def run_trial(spec: TrialSpec, inputs: TrialInputs) -> tuple[Candidate, bytes | None]:
    """Apply ``spec.recipe`` to the (pre-processed) model and measure it. Never raises."""
    data, calib, reference = inputs.data, inputs.calib, inputs.reference
    t0 = time.perf_counter()
    detail: dict[str, Any] = {}

    def measure(path: Path, runs: int) -> Metrics:
        metrics, _ = evaluate_model(
            path,
            data,
            baseline_metric=spec.baseline_metric,
            reference_outputs=reference,
            threads=spec.threads,
            latency_runs=runs,
            provider=spec.provider,
        )
        return metrics.model_copy(update={"compressed_size_bytes": compressed_size_bytes(path)})

    try:
        with tempfile.TemporaryDirectory(prefix="quanttaas-trial-") as tmp:
            src = Path(tmp) / "input.onnx"
            src.write_bytes(inputs.model_bytes)
            source = localize_source(spec.torch_source, inputs.torch_files, Path(tmp))
            target = Path(tmp) / "candidate.onnx"
            applied = apply_recipe(
                src,
                spec.recipe,
                target,
                calib=calib,
                torch_source=source,
                evaluate=lambda p: measure(p, min(STEP_LATENCY_RUNS, spec.latency_runs)),
                prepared=True,
            )
            out, detail = applied.path, applied.detail
            metrics = measure(out, spec.latency_runs)
            if "steps" in detail:
                detail = {**detail, "steps": complete_steps(detail["steps"], metrics)}
            blob = out.read_bytes()
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
        detail = {k: v for k, v in e.details.items() if k in ("steps", "inc")}
    except Exception as e:  # a trial must never take the sweep down; the error is kept as data
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        err = ErrorInfo(code="technique_failed", message=last[:500], hint="this recipe failed on this model")
    return Candidate(
        id=spec.id, recipe=spec.recipe, error=err, seconds=round(time.perf_counter() - t0, 3), detail=detail
    ), None
