"""One sweep trial: quantize, evaluate, return the candidate (or the error that stopped it).

A trial takes the model as bytes and the data as arrays, and returns the candidate model as bytes, so it runs
the same in-process or as a Ray task on another machine of a cluster: nothing is shared through the file system.
A trial never raises: a failure is recorded in the candidate (failures are data).
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from optimizer.data import Dataset
from optimizer.errors import QuantTaaSError
from optimizer.evaluate import evaluate_model
from optimizer.quantize import quantize_model
from optimizer.types import Candidate, ErrorInfo, Frozen, Recipe


class TrialSpec(Frozen):
    id: str
    recipe: Recipe
    baseline_metric: float
    threads: int = 1
    latency_runs: int = 30
    provider: str | None = None


def run_trial(
    spec: TrialSpec,
    model_bytes: bytes,
    data: Dataset,
    calib: Dataset | None,
    reference: list[np.ndarray] | None,
) -> tuple[Candidate, bytes | None]:
    """Apply ``spec.recipe`` to the (pre-processed) model and measure it. Never raises."""
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="quanttaas-trial-") as tmp:
            src = Path(tmp) / "input.onnx"
            src.write_bytes(model_bytes)
            out = quantize_model(src, spec.recipe, Path(tmp) / "candidate.onnx", calib=calib, prepared=True)
            metrics, _ = evaluate_model(
                out,
                data,
                baseline_metric=spec.baseline_metric,
                reference_outputs=reference,
                threads=spec.threads,
                latency_runs=spec.latency_runs,
                provider=spec.provider,
            )
            blob = out.read_bytes()
        cand = Candidate(
            id=spec.id, recipe=spec.recipe, metrics=metrics, seconds=round(time.perf_counter() - t0, 3)
        )
        return cand, blob
    except QuantTaaSError as e:
        err = ErrorInfo(code=e.code, message=e.message, hint=e.hint)
    except Exception as e:  # a trial must never take the sweep down; the error is kept as data
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        err = ErrorInfo(code="technique_failed", message=last[:500], hint="this recipe failed on this model")
    return Candidate(
        id=spec.id, recipe=spec.recipe, error=err, seconds=round(time.perf_counter() - t0, 3)
    ), None
