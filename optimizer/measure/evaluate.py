"""Measure a model honestly on onnxruntime: size on disk, the task metric, latency and memory.

The metric comes from running every evaluation sample; latency from repeated runs of one fixed batch after
warm-up, with the thread count and batch size stated in the result. The sweep calls the same function.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.errors import DataError, EvaluationError, QuantTaaSError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.metrics import (
    FIDELITY,
    MetricInput,
    MetricSpec,
    check_baseline,
    choose_fidelity,
    drop_points,
    get_metric,
)
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
    counts: list[int] = []
    for start in range(0, data.samples, bs):
        feed = data.feed(start, start + bs, names)
        try:
            chunks.append(session.run(None, feed))
            counts.append(min(bs, data.samples - start))
        except Exception as e:
            raise EvaluationError(
                f"running samples {start}..{start + bs - 1} failed: {str(e)[:300]}",
                hint="check that the data's shapes match what the model accepts (quanttaas inspect MODEL)",
            ) from e
    return [_concat([c[i] for c in chunks], counts) for i in range(len(chunks[0]))]


def _concat(parts: list[np.ndarray], counts: list[int] | None = None) -> np.ndarray:
    """Batches of one output joined on the sample axis (a scalar output stays one value per batch).

    The sample axis is the first whose length is each batch's sample count: recurrent models return their state
    with the batch second (Silero VAD's ``stateN`` is [2, B, 128]); axis 0 when no axis matches."""
    if parts[0].ndim == 0:
        return np.stack(parts)
    axis = 0
    if counts is not None and len(counts) == len(parts):
        axis = next(
            (
                a
                for a in range(parts[0].ndim)
                if all(
                    p.ndim == parts[0].ndim and p.shape[a] == n for p, n in zip(parts, counts, strict=True)
                )
            ),
            0,
        )
    return np.concatenate(parts, axis=axis)


def output_index(data: Dataset, names: list[str]) -> int:
    """The index of the output the data's metric reads (``output`` in the data file; default the first).

    Raises:
        DataError: the data names an output the model does not have.
    """
    if data.output is None:
        return 0
    if isinstance(data.output, int):
        if 0 <= data.output < len(names):
            return data.output
    elif data.output in names:
        return names.index(data.output)
    raise DataError(
        f"the data's `output` names {data.output!r}, and the model's outputs are {names}",
        hint="set `output` to one of the output names (or its index)",
    )


def _first(outputs: list[np.ndarray] | None, i: int) -> list[np.ndarray] | None:
    """``outputs`` with output ``i`` first, where every metric reads it."""
    if outputs is None or i == 0:
        return outputs
    return [outputs[i], *outputs[:i], *outputs[i + 1 :]]


def resolve_metric(
    data: Dataset, reference_outputs: list[np.ndarray] | None, output_name: str = ""
) -> tuple[MetricSpec, str | None]:
    """The metric that scores ``data`` and a note saying why when it was chosen for the user: ``fidelity`` is
    resolved from the reference output's kind (:func:`optimizer.measure.metrics.choose_fidelity`).

    Raises:
        DataError: an unknown metric. EvaluationError: fidelity without the original's outputs.
    """
    if data.metric != FIDELITY:
        return get_metric(data.metric), None
    if reference_outputs is None:
        raise EvaluationError(
            "there are no labels, so the metric is fidelity to the original model, and none was given",
            hint="pass --baseline ORIGINAL.onnx, or add `labels` to the data",
        )
    name, why = choose_fidelity(reference_outputs[0], output_name)
    return get_metric(name), f"no labels: {why}"


def measure_latency(
    session: Any, data: Dataset, *, batch_size: int = 1, runs: int = 50, warmup: int = 5
) -> list[float]:
    """Milliseconds of ``runs`` timed runs of the first ``batch_size`` samples (repeated when the data holds
    fewer), after ``warmup`` untimed runs."""
    from optimizer.measure.speed import latency_feed

    feed = latency_feed(session, data, batch_size)
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def score(
    outputs: list[np.ndarray],
    data: Dataset,
    reference_outputs: list[np.ndarray] | None = None,
    spec: MetricSpec | None = None,
) -> float:
    """The data's metric (or ``spec``) on ``outputs`` (the output the metric reads first).

    Raises:
        EvaluationError: the metric needs the original model's outputs and none were given.
    """
    spec = spec or resolve_metric(data, reference_outputs)[0]
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
    memory: bool = True,
) -> tuple[Metrics, list[np.ndarray] | None]:
    """Measure ``model_path`` on ``data``.

    Latency is measured at ``batch_size`` with ``threads`` onnxruntime threads; peak memory (``memory=True``) in
    a fresh process of its own (:mod:`optimizer.measure.memory`), so it does not depend on what this process
    measured before. Returns the metrics, and the raw outputs when ``keep_outputs`` (the baseline's outputs serve as the reference
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
    session = make_session(model_path, threads=threads, provider=provider)
    outputs = run_model(session, data)
    lat = measure_latency(session, data, batch_size=batch_size, runs=runs, warmup=warmup) if runs else []
    peak = None
    if memory:
        from optimizer.measure.memory import peak_memory_in_fresh_process
        from optimizer.measure.speed import latency_feed

        feed = latency_feed(session, data, batch_size)
        peak = peak_memory_in_fresh_process(model_path, feed, threads=threads, provider=provider)
    if as_reference and reference_outputs is None:
        reference_outputs = outputs
    out_names = [o.name for o in session.get_outputs()]
    idx = output_index(data, out_names)
    spec, note = resolve_metric(data, _first(reference_outputs, idx), out_names[idx])
    scored = _first(outputs, idx) or outputs
    metric = score(scored, data, _first(reference_outputs, idx), spec)
    if as_reference:
        check_baseline(spec.name, metric, MetricInput(scored, data.labels, data.meta, data.inputs))
    drop = None if baseline_metric is None else drop_points(spec, baseline_metric, metric)
    metrics = Metrics(
        size_bytes=size,
        metric_name=spec.name,
        metric_note=note,
        metric_higher_is_better=spec.higher_is_better,
        metric=metric,
        accuracy_drop_pct=drop,
        latency_ms_p50=float(np.percentile(lat, 50)) if lat else None,
        latency_ms_p95=float(np.percentile(lat, 95)) if lat else None,
        peak_memory_bytes=peak,
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
