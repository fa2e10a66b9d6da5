"""Per-layer sensitivity to quantization.

``sqnr`` mode (default) costs three passes over the calibration data whatever the model's depth: one to calibrate
a fully quantized copy, then one each through the float and the quantized model with every intermediate tensor
saved (onnxruntime's ``qdq_loss_debug``). The cross-model SQNR of a tensor is cumulative - it carries the error of
every layer before it - so a layer's own contribution is the noise it adds: ``10^(-SQNR_out/10)`` minus the largest
``10^(-SQNR_in/10)`` of its inputs, turned back into dB. Lower SQNR = more added error = more sensitive.

``exact`` mode measures the task metric with one layer at a time kept in fp32, for the top-k layers of the sqnr
ranking, as parallel trials; a layer's ``exact_drop_pct`` is how many points of the full-int8 loss keeping it in
fp32 recovers.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from optimizer.errors import TechniqueError
from optimizer.measure.data import Dataset
from optimizer.models.graph import QUANTIZABLE_OPS
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.techniques.quantize import quantize_model
from optimizer.types import LayerSensitivity, SensitivityReport, StaticInt8Recipe

PROFILE_SAMPLES = 4  # every intermediate tensor of both models is kept in memory: a few samples suffice
_NOISE_FLOOR = 1e-12


def _noise(sqnr_db: float | None) -> float:
    if sqnr_db is None or math.isnan(sqnr_db):
        return 0.0
    if math.isinf(sqnr_db):
        return 0.0 if sqnr_db > 0 else 1.0
    return 10.0 ** (-sqnr_db / 10.0)


def _db(noise: float) -> float:
    return -10.0 * math.log10(max(noise, _NOISE_FLOOR))


class _Reader:
    def __init__(self, data: Dataset, batch: int):
        self._batches = iter([data.feed(i, i + batch) for i in range(0, data.samples, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # qdq_loss_debug never rewinds; present for the CalibrationDataReader interface
        pass


def _reader(data: Dataset, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._inner = _Reader(data, batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self._inner.get_next()

    return Reader()


def _layer_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    inits = {i.name for i in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type in QUANTIZABLE_OPS
        and n.name
        and n.output
        and (n.op_type in ("MatMul",) or any(x in inits for x in n.input[1:]))
    ]


def profile_layers(
    model_path: str | Path,
    calib: Dataset,
    *,
    recipe: StaticInt8Recipe | None = None,
    samples: int = PROFILE_SAMPLES,
    prepared: bool = False,
) -> SensitivityReport:
    """Rank the quantizable layers of ``model_path`` by the error static int8 adds to each (SQNR, most sensitive
    first), from a few passes over ``samples`` calibration samples.

    Raises:
        ModelLoadError: the model is invalid. RecipeError / TechniqueError: it cannot be quantized.
    """
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    recipe = recipe or StaticInt8Recipe()
    t0 = time.perf_counter()
    data = calib.head(samples)
    batch = min(8, data.samples)
    with tempfile.TemporaryDirectory(prefix="quanttaas-prof-") as tmp:
        work = Path(tmp)
        fp32 = work / "fp32.onnx"
        if prepared:
            fp32.write_bytes(Path(model_path).read_bytes())
        else:
            prepare_model(model_path, fp32, min_opset=QDQ_MIN_OPSET)
        qdq = quantize_model(fp32, recipe, work / "qdq.onnx", calib=data, prepared=True)
        try:
            modify_model_output_intermediate_tensors(str(fp32), str(work / "fp32_aug.onnx"))
            modify_model_output_intermediate_tensors(str(qdq), str(work / "qdq_aug.onnx"))
            float_acts = collect_activations(str(work / "fp32_aug.onnx"), _reader(data, batch))
            qdq_acts = collect_activations(str(work / "qdq_aug.onnx"), _reader(data, batch))
            errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
        except Exception as e:
            raise TechniqueError(f"layer profiling failed: {e.__class__.__name__}: {str(e)[:300]}") from e
        model = onnx.load(str(fp32), load_external_data=False)

    cumulative = {name: float(err["xmodel_err"]) for name, err in errors.items() if "xmodel_err" in err}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    rows = []
    for node in _layer_nodes(model):
        # a Conv whose activation the quantizer fused (Conv -> Relu) is measured at the end of that chain
        out = downstream_measured(node.output[0], consumers, cumulative)
        if out is None:
            continue
        # the error already present at the layer's inputs (graph inputs and weights carry none)
        noise_in = max(
            (_noise(cumulative.get(self_or_upstream(x, producer, cumulative))) for x in node.input if x),
            default=0.0,
        )
        added = max(_noise(cumulative[out]) - noise_in, 0.0)
        rows.append((node, _db(added), cumulative[out]))
    rows.sort(key=lambda r: (r[1], r[0].name))
    layers = [
        LayerSensitivity(
            name=n.name, op_type=n.op_type, sqnr_db=round(s, 3), cumulative_sqnr_db=round(c, 3), rank=i + 1
        )
        for i, (n, s, c) in enumerate(rows)
    ]
    return SensitivityReport(
        model_path=str(model_path),
        method="sqnr",
        recipe=recipe.label,
        layers=layers,
        calib_samples=data.samples,
        seconds=round(time.perf_counter() - t0, 3),
        model_passes=3,
    )


def downstream_measured(
    tensor: str, consumers: dict[str, list[onnx.NodeProto]], known: dict[str, float]
) -> str | None:
    """``tensor`` if its error was measured, else the first measured tensor down a chain of single consumers with
    a single output (activations, reshapes), else None."""
    for _ in range(8):
        if tensor in known:
            return tensor
        nxt = consumers.get(tensor, [])
        if len(nxt) != 1 or len(nxt[0].output) != 1 or nxt[0].op_type in QUANTIZABLE_OPS:
            return None
        tensor = nxt[0].output[0]
    return None


def self_or_upstream(tensor: str, producer: dict[str, onnx.NodeProto], known: dict[str, float]) -> str:
    """The nearest tensor at or above ``tensor`` whose error was measured (walks up single-input chains such as
    Relu or Reshape, whose outputs the debugger may not save)."""
    seen = 0
    while tensor not in known and tensor in producer and seen < 16:
        node = producer[tensor]
        inputs = [x for x in node.input if x]
        if not inputs:
            break
        tensor = inputs[0]
        seen += 1
    return tensor


def profile_layers_exact(
    model_path: str | Path,
    calib: Dataset,
    data: Dataset,
    *,
    top_k: int = 8,
    recipe: StaticInt8Recipe | None = None,
    executor: str = "ray",
    workers: int | None = None,
) -> SensitivityReport:
    """The sqnr ranking, then the task metric measured with each of its ``top_k`` layers kept in fp32 (one trial
    per layer, in parallel), re-ranked by how many points of the full-int8 loss each recovers.

    Raises:
        ModelLoadError / RecipeError / TechniqueError / EvaluationError.
    """
    import threading

    from optimizer.measure.evaluate import evaluate_model
    from optimizer.search.executors import make_executor
    from optimizer.search.trial import TrialInputs, TrialSpec

    recipe = recipe or StaticInt8Recipe()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quanttaas-exact-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        prepare_model(model_path, fp32, min_opset=QDQ_MIN_OPSET)
        sqnr = profile_layers(fp32, calib, recipe=recipe, prepared=True)
        base, reference = evaluate_model(fp32, data, keep_outputs=True, as_reference=True, latency_runs=0)
        top = sqnr.layers[:top_k]
        specs = [TrialSpec(id="full", recipe=recipe, baseline_metric=base.metric or 0.0, latency_runs=0)]
        specs += [
            TrialSpec(
                id=la.name,
                recipe=recipe.model_copy(update={"keep_fp32": (la.name,)}),
                baseline_metric=base.metric or 0.0,
                latency_runs=0,
            )
            for la in top
        ]
        shared = TrialInputs(fp32.read_bytes(), data, calib, reference)
        results = {
            c.id: c for c, _ in make_executor(executor, shared, threading.Event(), workers, 0.0).run(specs)
        }
    full = results["full"].metrics
    full_drop = full.accuracy_drop_pct if full else None
    scored = []
    for la in top:
        m = results[la.name].metrics
        gain = (
            None
            if m is None or full_drop is None or m.accuracy_drop_pct is None
            else full_drop - m.accuracy_drop_pct
        )
        scored.append((la, gain))
    scored.sort(key=lambda x: (-(x[1] if x[1] is not None else float("-inf")), x[0].rank))
    layers = [
        la.model_copy(update={"exact_drop_pct": None if g is None else round(g, 4), "rank": i + 1})
        for i, (la, g) in enumerate(scored)
    ]
    rest = [la.model_copy(update={"rank": len(layers) + i + 1}) for i, la in enumerate(sqnr.layers[top_k:])]
    return SensitivityReport(
        model_path=str(model_path),
        method="exact",
        recipe=recipe.label,
        layers=layers + rest,
        calib_samples=sqnr.calib_samples,
        seconds=round(time.perf_counter() - t0, 3),
        model_passes=sqnr.model_passes + len(specs) * 2,
    )
