"""Measure a model honestly on onnxruntime: size on disk, the task metric, latency and memory.

The metric comes from running every evaluation sample; latency from repeated runs of one fixed batch after
warm-up, with the thread count and batch size stated in the result. The sweep calls the same function.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.errors import DataError, EvaluationError, QuantTaaSError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.metrics import MetricInput, check_baseline, get_metric
from optimizer.models.inspect import inspect_model, load_onnx, model_inputs
from optimizer.settings import get_settings
from optimizer.types import Metrics

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def make_session(model_path: str | Path, *, threads: int = 1, provider: str | None = None) -> Any:
    """An onnxruntime session with a stated thread count, on CUDA when asked for (never silently on CPU then).

    Raises:
        EvaluationError: onnxruntime cannot load or run this model, or CUDA was asked for and is missing.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = [CPU]
    if provider == CUDA:
        if CUDA not in ort.get_available_providers():
            raise EvaluationError(
                f"a GPU measurement was asked for, and this onnxruntime has no CUDA provider "
                f"(it has {', '.join(ort.get_available_providers())})",
                hint="install onnxruntime-gpu where GPU trials run (pip install 'quanttaas[gpu]')",
            )
        providers = [CUDA, CPU]
    try:
        return ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
    except Exception as e:
        raise EvaluationError(
            f"onnxruntime cannot load {Path(model_path).name}: {str(e)[:300]}",
            hint="the model uses operators or types this onnxruntime build cannot run on this device",
        ) from e


def _batch_size_for(session: Any, wanted: int) -> int:
    dim = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
    return int(dim) if isinstance(dim, int) and dim > 0 else wanted


def run_model(session: Any, data: Dataset, *, batch_size: int = 64) -> list[np.ndarray]:
    """Every output of ``session`` over every sample of ``data``, concatenated on the sample axis.

    Raises:
        EvaluationError: a batch fails to run (wrong shapes for the model, a kernel error).
    """
    names = [i.name for i in session.get_inputs()]
    bs = _batch_size_for(session, batch_size)
    chunks: list[list[np.ndarray]] = []
    for start in range(0, data.samples, bs):
        feed = {n: data.inputs[n][start : start + bs] for n in names}
        try:
            chunks.append(session.run(None, feed))
        except Exception as e:
            raise EvaluationError(
                f"running samples {start}..{start + bs - 1} failed: {str(e)[:300]}",
                hint="check that the data's shapes match what the model accepts (quanttaas inspect MODEL)",
            ) from e
    return [np.concatenate([c[i] for c in chunks], axis=0) for i in range(len(chunks[0]))]


def measure_latency(
    session: Any, data: Dataset, *, batch_size: int = 1, runs: int = 50, warmup: int = 5
) -> list[float]:
    """Milliseconds of ``runs`` timed runs of the first ``batch_size`` samples, after ``warmup`` untimed runs."""
    names = [i.name for i in session.get_inputs()]
    bs = _batch_size_for(session, batch_size)
    feed = {n: data.inputs[n][:bs] for n in names}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def score(
    outputs: list[np.ndarray], data: Dataset, reference_outputs: list[np.ndarray] | None = None
) -> float:
    """The data's metric on ``outputs``.

    Raises:
        EvaluationError: the metric needs the original model's outputs and none were given.
    """
    spec = get_metric(data.metric)
    if spec.needs_reference and reference_outputs is None:
        raise EvaluationError(
            f"metric {data.metric!r} compares with the original model, and none was given",
            hint="pass --baseline ORIGINAL.onnx, or add `labels` to the data",
        )
    m = MetricInput(outputs, data.labels, data.meta, data.inputs, reference_outputs)
    try:
        return float(spec.fn(m))
    except QuantTaaSError:
        raise
    except Exception as e:
        raise EvaluationError(f"metric {data.metric!r} failed: {e.__class__.__name__}: {e}") from e


class _PeakRSS:
    """Samples this process's resident memory in a thread; reports the peak above the starting level."""

    def __init__(self, interval_s: float = 0.002):
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop = threading.Event()
        self.start_rss = self._proc.memory_info().rss
        self.peak_rss = self.start_rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    @property
    def added_bytes(self) -> int:
        return max(0, self.peak_rss - self.start_rss)


def file_size_bytes(model_path: str | Path) -> int:
    """Size on disk, external data files included."""
    return inspect_model(model_path).size_bytes


def evaluate_model(
    model_path: str | Path,
    data: Dataset,
    *,
    baseline_metric: float | None = None,
    reference_outputs: list[np.ndarray] | None = None,
    threads: int | None = None,
    batch_size: int = 1,
    latency_runs: int | None = None,
    warmup_runs: int | None = None,
    provider: str | None = None,
    keep_outputs: bool = False,
    as_reference: bool = False,
) -> tuple[Metrics, list[np.ndarray] | None]:
    """Measure ``model_path`` on ``data``.

    Returns the metrics, and the raw outputs when ``keep_outputs`` (the baseline's outputs serve as the reference
    for the ``agreement`` metric of its candidates). ``as_reference`` marks the model as the original itself: an
    agreement metric is then scored against its own outputs, and a score nothing can be compared with (not a
    number, the metric's floor, chance level) is refused.

    Raises:
        ModelLoadError: the file is not a model. EvaluationError: it does not run, or cannot be scored.
        DataError: ``as_reference`` and the original's score is degenerate (see ``metrics.check_baseline``):
            every drop measured from it would read 0.
    """
    s = get_settings()
    threads = threads or s.threads
    runs = latency_runs if latency_runs is not None else s.latency_runs
    warmup = warmup_runs if warmup_runs is not None else s.warmup_runs
    size = file_size_bytes(model_path)
    with _PeakRSS() as mem:
        session = make_session(model_path, threads=threads, provider=provider)
        outputs = run_model(session, data)
        lat = measure_latency(session, data, batch_size=batch_size, runs=runs, warmup=warmup) if runs else []
    if as_reference and reference_outputs is None:
        reference_outputs = outputs
    metric = score(outputs, data, reference_outputs)
    if as_reference:
        check_baseline(data.metric, metric, MetricInput(outputs, data.labels, data.meta, data.inputs))
    drop = None if baseline_metric is None else round((baseline_metric - metric) * 100.0, 6)
    metrics = Metrics(
        size_bytes=size,
        metric_name=data.metric,
        metric=metric,
        accuracy_drop_pct=drop,
        latency_ms_p50=float(np.percentile(lat, 50)) if lat else None,
        latency_ms_p95=float(np.percentile(lat, 95)) if lat else None,
        peak_memory_bytes=mem.added_bytes,
        backend=session.get_providers()[0],
        threads=threads,
        batch_size=_batch_size_for(session, batch_size),
        samples=data.samples,
        latency_runs=len(lat),
    )
    return metrics, (outputs if keep_outputs else None)


def evaluate_path(
    model_path: str | Path,
    data_path: str | Path,
    *,
    baseline_path: str | Path | None = None,
    metric: str | None = None,
    **kwargs: Any,
) -> tuple[Metrics, Metrics | None]:
    """Evaluate a model file on a data file, and the baseline first when given (for the drop and agreement).

    Raises:
        ModelLoadError, DataError, EvaluationError.
    """
    model = load_onnx(model_path, load_external_data=False)
    data = load_data(data_path, model_inputs(model), metric=metric)
    base_metrics: Metrics | None = None
    reference = None
    if baseline_path is not None:
        base = load_onnx(baseline_path, load_external_data=False)
        if [t.name for t in model_inputs(base)] != [t.name for t in model_inputs(model)]:
            raise DataError(
                "the baseline's inputs differ from the model's", hint="compare a model with its own original"
            )
        base_metrics, reference = evaluate_model(
            baseline_path, data, keep_outputs=True, as_reference=True, **kwargs
        )
    metrics, _ = evaluate_model(
        model_path,
        data,
        baseline_metric=base_metrics.metric if base_metrics else None,
        reference_outputs=reference,
        **kwargs,
    )
    return metrics, base_metrics
