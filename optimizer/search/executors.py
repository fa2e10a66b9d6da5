"""Where trials run: in this process (serial) or as Ray tasks (parallel, local or on a cluster)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from optimizer.measure.evaluate import CUDA
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.types import Candidate, ErrorInfo

TrialFn = Callable[[TrialSpec, TrialInputs], "tuple[Candidate, bytes | None]"]

#: a GPU trial takes this much of a GPU, so one GPU measures several candidates at once
GPU_FRACTION = 0.25
#: a trial whose worker or node died is run again this many times (Ray retries system failures only: a recipe that
#: raises is a failed candidate at once)
NODE_RETRIES = 1


class Executor:
    """Runs trials and yields each (candidate, model bytes) as it finishes."""

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        raise NotImplementedError

    def cancel(self) -> None:
        pass

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until no trial is running (side-by-side latency is measured alone); True when idle."""
        return True

    def describe(self) -> str:
        """Where the trials run, in one line (the report states it)."""
        return "in this process, one trial at a time (serial executor)"


Shared = TrialInputs  # the name the sweep has used for what every trial reads

#: a trial killed for memory is retried this many times, alone and with half the calibration each time
MEMORY_RETRIES = 2


def killed_for_memory(e: BaseException) -> bool:
    """Whether a Ray task failed because its worker was killed for memory (Ray's OOM killer, or SIGKILL)."""
    names = {c.__name__ for c in type(e).__mro__}
    text = str(e)
    return (
        "OutOfMemoryError" in names
        or "MemoryError" in names
        or "killed due to memory" in text.lower()
        or ("WorkerCrashedError" in names and ("SIGKILL" in text or "killed" in text.lower()))
    )


class SerialExecutor(Executor):
    def __init__(self, shared: Shared, cancelled: threading.Event, trial_fn: TrialFn = run_trial):
        self.s = shared
        self.trial_fn = trial_fn
        self.cancelled = cancelled

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        for spec in specs:
            if self.cancelled.is_set():
                return
            yield self.trial_fn(spec, self.s)


class RayExecutor(Executor):
    """Trials as Ray tasks; the model, the data and the torch source's files go to the object store once per
    sweep (no file system is shared with the nodes). A GPU trial takes a fraction of a GPU; a trial whose worker
    or node died is retried elsewhere (``NODE_RETRIES``)."""

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
        self.inputs = self.ray.put(shared)
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        self.slots = max(1, int(workers or cpus))
        self.gpus = gpus
        self._task = self.ray.remote(num_cpus=1, max_retries=NODE_RETRIES)(trial_fn)
        self._in_flight: dict[Any, TrialSpec] = {}

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[Candidate, bytes | None]]:
        queue = list(specs)
        by_ref = self._in_flight  # shared with cancel(), which stops what is still running
        retried: dict[str, list[str]] = {}  # trial id -> why each earlier attempt was killed
        while queue or by_ref:
            if self.cancelled.is_set():
                self.cancel()
                return
            # a trial retried after an OOM kill runs alone: nothing else competes for its memory
            alone = any(s.memory_retry for s in by_ref.values()) or (queue and queue[0].memory_retry)
            while queue and len(by_ref) < (1 if alone else self.slots):
                if alone and by_ref:
                    break
                spec = queue.pop(0)
                opts: dict[str, Any] = (
                    {"num_gpus": GPU_FRACTION} if self.gpus and spec.provider == CUDA else {}
                )
                ref = self._task.options(**opts).remote(spec, self.inputs)
                by_ref[ref] = spec
            done, _ = self.ray.wait(list(by_ref), num_returns=1, timeout=1.0)
            for ref in done:
                spec = by_ref.pop(ref)
                try:
                    cand, blob = self.ray.get(ref)
                    if spec.id in retried:
                        cand = _with_retries(cand, retried[spec.id], spec)
                    yield cand, blob
                except Exception as e:  # the worker died (segfault, OOM): the trial failed, the sweep goes on
                    if killed_for_memory(e) and spec.memory_retry < MEMORY_RETRIES:
                        retried.setdefault(spec.id, []).append(f"{e.__class__.__name__}: {str(e)[:200]}")
                        queue.insert(0, spec.model_copy(update={"memory_retry": spec.memory_retry + 1}))
                        continue
                    msg = f"the trial's worker failed: {e.__class__.__name__}: {str(e)[:300]}"
                    cand = Candidate(
                        id=spec.id,
                        recipe=spec.recipe,
                        error=ErrorInfo(
                            code="technique_failed",
                            message=msg,
                            hint="the backend crashed on this recipe"
                            + (" (also when retried alone with less memory)" if spec.id in retried else ""),
                        ),
                        detail={"failure": "out_of_memory" if killed_for_memory(e) else "crashed"},
                    )
                    yield (_with_retries(cand, retried[spec.id], spec) if spec.id in retried else cand), None

    def describe(self) -> str:
        from optimizer.search.runtime import runtime_info

        info = runtime_info()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        res = self.ray.cluster_resources()
        gpu = f" and {GPU_FRACTION:g} GPU" if self.gpus else ""
        return (
            f"{info.reason if info else 'on Ray'}; {nodes} node(s), {res.get('CPU', 0):g} CPUs, "
            f"{res.get('GPU', 0):g} GPUs; {self.slots} trials at a time, each on 1 CPU{gpu}"
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


def _with_retries(cand: Candidate, reasons: list[str], spec: TrialSpec) -> Candidate:
    """The candidate with a note that its worker was killed for memory and the trial ran again with less."""
    note = {
        "memory_retries": len(reasons),
        "memory_retry_reasons": reasons,
        "memory_retry_note": f"the worker was killed for memory {len(reasons)} time(s); retried alone with "
        f"1/{2**spec.memory_retry} of the calibration samples",
    }
    return cand.model_copy(update={"detail": {**cand.detail, **note}})


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
