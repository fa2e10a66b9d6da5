"""Benchmark: every applicable recipe on every zoo model, measured side by side in one run.

Writes a Markdown table per model to ``out/bench/quantize.md`` (and prints it): size, metric, drop against fp32,
latency p50 (batch 1, 1 thread, onnxruntime CPU) and the ratios to the fp32 model measured in the same run. The
fp32 latency is measured again at the end of each model's rows and the two fp32 runs are averaged, so drift over
the run does not favour the recipes measured first.

Run with ``make bench`` (not part of CI). ``python -m evals.bench_quantize digits-cnn`` runs one model.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from optimizer import zoo
from optimizer.data import load_data
from optimizer.errors import QuantTaaSError
from optimizer.evaluate import evaluate_model
from optimizer.inspect import inspect_model
from optimizer.quantize import quantize_model
from optimizer.types import DynamicInt8Recipe, Fp16Recipe, Int4WeightOnlyRecipe, Recipe, StaticInt8Recipe

OUT = Path("out/bench")


def recipes_for(model_path: str) -> list[Recipe]:
    ops = set(inspect_model(model_path).op_counts)
    mm = tuple(o for o in ("MatMul", "Gemm") if o in ops)
    rs: list[Recipe] = [StaticInt8Recipe(), StaticInt8Recipe(per_channel=False)]
    if "Conv" in ops and mm:
        rs.append(StaticInt8Recipe(op_types=mm))
    if mm:
        rs.append(DynamicInt8Recipe(op_types=mm))
    if "Conv" in ops:
        rs.append(DynamicInt8Recipe(op_types=("Conv", *mm)))
    rs.append(Fp16Recipe())
    if "MatMul" in ops:
        rs.append(Int4WeightOnlyRecipe())
    return rs


def bench_model(name: str, runs: int = 100) -> str:
    case = zoo.get_zoo_case(name)
    inputs = inspect_model(case.model_path).inputs
    data = load_data(case.eval_path, inputs)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    base, ref = evaluate_model(case.model_path, data, keep_outputs=True, as_reference=True, latency_runs=runs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes_for(case.model_path):
            t0 = time.perf_counter()
            try:
                out = quantize_model(case.model_path, recipe, Path(tmp) / "q.onnx", calib=calib)
                m, _ = evaluate_model(out, data, baseline_metric=base.metric, reference_outputs=ref, latency_runs=runs)
                rows.append((recipe.label, m, time.perf_counter() - t0, None))
            except QuantTaaSError as e:
                rows.append((recipe.label, None, time.perf_counter() - t0, f"[{e.code}] {e.message[:80]}"))
    base2, _ = evaluate_model(case.model_path, data, latency_runs=runs)
    fp32_p50 = ((base.latency_ms_p50 or 0) + (base2.latency_ms_p50 or 0)) / 2
    lines = [
        f"### {name} ({data.samples} eval samples, metric {base.metric_name}; latency: batch 1, 1 thread, CPU)",
        "",
        "| recipe | size | size vs fp32 | metric | drop (pt) | p50 ms | p95 ms | speed vs fp32 | build+eval s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| fp32 (original) | {base.size_bytes / 1e6:.3f} MB | 1.00x | {base.metric:.4f} | 0.00 | {fp32_p50:.3f} | "
        f"{base.latency_ms_p95:.3f} | 1.00x | - |",
    ]
    for label, m, secs, err in rows:
        if m is None:
            lines.append(f"| {label} | - | - | - | - | - | - | - | failed: {err} |")
            continue
        lines.append(
            f"| {label} | {m.size_bytes / 1e6:.3f} MB | {base.size_bytes / m.size_bytes:.2f}x smaller | "
            f"{m.metric:.4f} | {m.accuracy_drop_pct:+.2f} | {m.latency_ms_p50:.3f} | {m.latency_ms_p95:.3f} | "
            f"{fp32_p50 / m.latency_ms_p50:.2f}x | {secs:.1f} |"
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
