"""Selective quantization on the real PP-OCRv4 recogniser: keeping more layers in float is never worse beyond
noise, and a layer kept in float reads float inputs (no Quantize/Dequantize pair left in front of it)."""

from __future__ import annotations

import itertools
from pathlib import Path

import onnx
import pytest

from optimizer import zoo
from optimizer.measure.data import load_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.models.graph import layer_blocks
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.profile import profile_layers
from optimizer.search.sweep import noise_points
from optimizer.techniques.quantize import quantize_model
from optimizer.types import StaticInt8Recipe

LINES = 24


@pytest.mark.slow
def test_keeping_more_layers_in_float_is_never_worse_beyond_noise_on_ppocr_rec(tmp_path: Path) -> None:
    case = zoo.get_zoo_case("ppocr-rec")
    inputs = inspect_model(case.model_path).inputs
    data = load_data(case.eval_path, inputs).take(LINES)
    calib = load_data(case.calib_path, inputs, metric="agreement").head(8)
    prepared = prepare_model(case.model_path, tmp_path / "prepared.onnx", min_opset=QDQ_MIN_OPSET)
    base, _ = evaluate_model(prepared, data, latency_runs=0)
    ranked = [la.name for la in profile_layers(prepared, calib, prepared=True).layers]
    graph = onnx.load(str(prepared), load_external_data=False)
    drops: list[tuple[int, float]] = []
    for k in (0, 8, 32, len(ranked)):
        keep = layer_blocks(graph, ranked[:k]) if k else ()
        out = quantize_model(
            prepared,
            StaticInt8Recipe(keep_fp32=keep, calib_samples=8),
            tmp_path / f"k{k}.onnx",
            calib=calib,
            prepared=True,
        )
        m, _ = evaluate_model(out, data, baseline_metric=base.metric, latency_runs=0)
        assert m.accuracy_drop_pct is not None
        drops.append((k, m.accuracy_drop_pct))
        if k == 8:
            q = onnx.load(str(out))
            producer = {o: n for n in q.graph.node for o in n.output}
            inits = {i.name for i in q.graph.initializer}
            for node in (n for n in q.graph.node if n.name in set(keep)):
                for x in node.input:
                    dq = producer.get(x)
                    assert (
                        dq is None
                        or dq.op_type != "DequantizeLinear"
                        or dq.input[0] in inits
                        or (producer.get(dq.input[0]) is None or producer[dq.input[0]].input[0] in inits)
                    ), f"kept node {node.name} reads a quantized activation {x}"
    noise = noise_points(LINES)
    for (ka, da), (kb, db) in itertools.pairwise(drops):
        assert db <= da + noise, f"keep {kb} lost {db:.1f} pt, keep {ka} {da:.1f} pt: {drops}"
    assert drops[-1][1] <= noise, f"every layer kept in float must match the original: {drops}"
