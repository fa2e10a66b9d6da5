"""One sweep trial: quantize (or prune, train, chain), evaluate, return the candidate (or the error that stopped it).

A trial takes the model as bytes and the data as arrays, and returns the candidate model as bytes, so it runs
the same in-process or as a Ray task on another machine of a cluster: nothing is shared through the file system,
except for recipes that need the PyTorch model: those read the files a :class:`~optimizer.types.TorchSource`
names (its state_dict and training data), which a cluster must see at the same paths.
A trial never raises: a failure is recorded in the candidate (failures are data).
"""

from __future__ import annotations

import tempfile
import time
import traceback
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


class TrialSpec(Frozen):
    id: str
    recipe: Recipe
    baseline_metric: float
    threads: int = 1
    batch_size: int = 1
    latency_runs: int = 30
    provider: str | None = None
    torch_source: TorchSource | None = None


def run_trial(
    spec: TrialSpec,
    model_bytes: bytes,
    data: Dataset,
    calib: Dataset | None,
    reference: list[np.ndarray] | None,
) -> tuple[Candidate, bytes | None]:
    """Apply ``spec.recipe`` to the (pre-processed) model and measure it. Never raises."""
    t0 = time.perf_counter()
    detail: dict[str, Any] = {}

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
            src = Path(tmp) / "input.onnx"
            src.write_bytes(model_bytes)
            target = Path(tmp) / "candidate.onnx"
            applied = apply_recipe(
                src,
                spec.recipe,
                target,
                calib=calib,
                torch_source=spec.torch_source,
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
