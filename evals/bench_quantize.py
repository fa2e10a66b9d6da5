"""Benchmark: every applicable recipe on every zoo model, measured side by side in one run.

Writes a Markdown table per model to ``out/bench/quantize.md`` (and prints it): size, metric, drop vs fp32,
latency p50 at batch 1 and at batch 32 (1 thread, onnxruntime CPU) and the ratios to the fp32 model measured in
the same run. The fp32 latency is measured again after each model's recipes and the two fp32 runs are averaged,
so drift over the run does not favour the recipes measured first.

Run with ``make bench`` (not part of CI). ``python -m evals.bench_quantize digits-cnn`` runs one model.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from optimizer import zoo
from optimizer.errors import QuantTaaSError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model, make_session, measure_latency
from optimizer.models.inspect import inspect_model
from optimizer.techniques.quantize import quantize_model
from optimizer.types import (
    DynamicInt8Recipe,
    Fp16Recipe,
    Int4WeightOnlyRecipe,
    Metrics,
    Recipe,
    StaticInt8Recipe,
)

OUT = Path("out/bench")


def recipes_for(model_path: str) -> list[Recipe]:
    ops = set(inspect_model(model_path).op_counts)
    mm = tuple(o for o in ("MatMul", "Gemm") if o in ops)
    rs: list[Recipe] = [StaticInt8Recipe(), StaticInt8Recipe(per_channel=False)]
    if "Conv" in ops and mm:
        rs.append(StaticInt8Recipe(op_types=mm))
    if mm:
        rs.append(DynamicInt8Recipe(op_types=tuple(o for o in ("MatMul", "Gemm", "Gather") if o in ops)))
    if "Conv" in ops:
        rs.append(DynamicInt8Recipe(op_types=("Conv", *mm)))
    rs.append(Fp16Recipe())
    if "MatMul" in ops:
        rs.append(Int4WeightOnlyRecipe())
    return rs


BIG_BATCH = 32


def big_batch_p50(model_path: str | Path, data: Dataset, runs: int) -> float:
    sess = make_session(model_path)
    return float(np.percentile(measure_latency(sess, data, batch_size=BIG_BATCH, runs=runs, warmup=3), 50))


def bench_model(name: str, runs: int = 100) -> str:
    case = zoo.get_zoo_case(name)
    inputs = inspect_model(case.model_path).inputs
    data = load_data(case.eval_path, inputs)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    base, ref = evaluate_model(case.model_path, data, keep_outputs=True, as_reference=True, latency_runs=runs)
    base_big = big_batch_p50(case.model_path, data, runs // 3)
    rows: list[tuple[str, Metrics | None, float, str | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes_for(case.model_path):
            try:
                out = quantize_model(case.model_path, recipe, Path(tmp) / "q.onnx", calib=calib)
                m, _ = evaluate_model(
                    out, data, baseline_metric=base.metric, reference_outputs=ref, latency_runs=runs
                )
                rows.append((recipe.label, m, big_batch_p50(out, data, runs // 3), None))
            except QuantTaaSError as e:
                rows.append((recipe.label, None, 0.0, f"[{e.code}] {e.message[:80]}"))
    base2, _ = evaluate_model(case.model_path, data, latency_runs=runs)
    fp32_p50 = ((base.latency_ms_p50 or 0) + (base2.latency_ms_p50 or 0)) / 2
    fp32_big = (base_big + big_batch_p50(case.model_path, data, runs // 3)) / 2
    lines = [
        f"### {name} ({data.samples} eval samples, metric {base.metric_name}; latency on onnxruntime CPU, "
        f"1 thread, batch 1 and batch {BIG_BATCH})",
        "",
        "| recipe | size | size vs fp32 | metric | drop (pt) | p50 ms b1 | p95 ms b1 | speed b1 | "
        f"p50 ms b{BIG_BATCH} | speed b{BIG_BATCH} |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| fp32 (original) | {base.size_bytes / 1e6:.3f} MB | 1.00x | {base.metric:.4f} | 0.00 | {fp32_p50:.3f} | "
        f"{base.latency_ms_p95:.3f} | 1.00x | {fp32_big:.3f} | 1.00x |",
    ]
    for label, met, big, err in rows:
        if met is None:
            lines.append(f"| {label} | failed: {err} | - | - | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| {label} | {met.size_bytes / 1e6:.3f} MB | {base.size_bytes / met.size_bytes:.2f}x smaller | "
            f"{met.metric:.4f} | {met.accuracy_drop_pct:+.2f} | {met.latency_ms_p50:.3f} | {met.latency_ms_p95:.3f} | "
            f"{fp32_p50 / (met.latency_ms_p50 or float('nan')):.2f}x | {big:.3f} | {fp32_big / big:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    names = argv or [e.name for e in zoo.list_zoo()]
    OUT.mkdir(parents=True, exist_ok=True)
    tables = []
    for name in names:
        table = bench_model(name)
        print(table, flush=True)
        tables.append(table)
    (OUT / "quantize.md").write_text("\n".join(tables))
    print(f"wrote {OUT / 'quantize.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
