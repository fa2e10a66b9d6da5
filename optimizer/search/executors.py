"""Where trials run: in this process (serial) or as Ray tasks (parallel, local or on a cluster)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import CUDA
from optimizer.search.trial import TrialSpec, run_trial
from optimizer.types import Candidate, ErrorInfo

TrialFn = Callable[
    [TrialSpec, bytes, Dataset, "Dataset | None", "list[np.ndarray] | None"], "tuple[Candidate, bytes | None]"
]


class Executor:
    """Runs trials and yields each (candidate, model bytes) as it finishes."""

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        raise NotImplementedError

    def cancel(self) -> None:
        pass

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until no trial is running (side-by-side latency is measured alone); True when idle."""
        return True


@dataclass
class Shared:
    model_bytes: bytes
    data: Dataset
    calib: Dataset | None
    reference: list[np.ndarray] | None


class SerialExecutor(Executor):
    def __init__(self, shared: Shared, cancelled: threading.Event, trial_fn: TrialFn = run_trial):
        self.s = shared
        self.trial_fn = trial_fn
        self.cancelled = cancelled

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        for spec in specs:
            if self.cancelled.is_set():
                return
            yield self.trial_fn(spec, self.s.model_bytes, self.s.data, self.s.calib, self.s.reference)


class RayExecutor(Executor):
    """Trials as Ray tasks; the model and data go to the object store once per sweep."""

    def __init__(
        self,
        shared: Shared,
        cancelled: threading.Event,
        workers: int | None,
        gpus: float,
        trial_fn: TrialFn = run_trial,
    ):
        from optimizer.search.runtime import ensure_ray

        self.ray = ensure_ray()
        self.cancelled = cancelled
        self.refs = [
            self.ray.put(x) for x in (shared.model_bytes, shared.data, shared.calib, shared.reference)
        ]
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        self.slots = max(1, int(workers or cpus))
        self.gpus = gpus
        self._task = self.ray.remote(num_cpus=1, max_retries=0)(trial_fn)
        self._in_flight: dict[Any, TrialSpec] = {}

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        queue = list(specs)
        by_ref = self._in_flight  # shared with cancel(), which stops what is still running
        while queue or by_ref:
            if self.cancelled.is_set():
                self.cancel()
                return
            while queue and len(by_ref) < self.slots:
                spec = queue.pop(0)
                opts: dict[str, Any] = {"num_gpus": 1} if self.gpus and spec.provider == CUDA else {}
                ref = self._task.options(**opts).remote(spec, *self.refs)
                by_ref[ref] = spec
            done, _ = self.ray.wait(list(by_ref), num_returns=1, timeout=1.0)
            for ref in done:
                spec = by_ref.pop(ref)
                try:
                    yield self.ray.get(ref)
                except Exception as e:  # the worker died (segfault, OOM): the trial failed, the sweep goes on
                    msg = f"the trial's worker failed: {e.__class__.__name__}: {str(e)[:300]}"
                    yield (
                        Candidate(
                            id=spec.id,
                            recipe=spec.recipe,
                            error=ErrorInfo(
                                code="technique_failed",
                                message=msg,
                                hint="the backend crashed on this recipe",
                            ),
                        ),
                        None,
                    )

    def cancel(self) -> None:
        for ref in list(self._in_flight):
            self.ray.cancel(ref, force=True)
        self._in_flight.clear()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait for trials still in flight (a run cut short) to end, so nothing competes for the CPU."""
        refs = list(self._in_flight)
        if not refs:
            return True
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        return len(ready) == len(refs)


def make_executor(
    kind: str,
    shared: Shared,
    cancelled: threading.Event,
    workers: int | None,
    gpus: float,
    trial_fn: TrialFn = run_trial,
) -> Executor:
    """A Ray executor (``kind="ray"``) or an in-process one; ``trial_fn`` replaces the trial (tests, extensions)."""
    if kind == "ray":
        return RayExecutor(shared, cancelled, workers, gpus, trial_fn)
    return SerialExecutor(shared, cancelled, trial_fn)
