"""Benchmark: int8 (every format) against fp32 latency, side by side, at batch 1 and 8 on 1 and 2 threads.

For ResNet-50 from the onnx wheel's light zoo (random weights in place of its ``ConstantOfShape`` constants: speed
and size only, :mod:`optimizer.zoo.light`) and the zoo models (digits-cnn, minilm-l6, ppocr-rec, with their own
data), every format is built once: static int8 QDQ and QOperator, per channel and per tensor; dynamic int8 (the
transformer default, and including Conv); fp16; onnxruntime's graph optimizations saved offline; int4 where the
model has MatMul. Then, for each setting (batch 1/8 x threads 1/2), all of a model's files are timed in one
interleaved measurement (:mod:`optimizer.measure.speed`: blocks with the order rotated, per-block ratios of
medians, a 95% t-interval), so every speed-up in a column saw the same background load as its fp32 reference.

Then the optimizer itself runs a speed goal on each model (1 thread, batch 1) and the table says which format it
recommended and what the benchmark measured for that file's format: the aim is that a recommended model is never
one the benchmark measures slower than the original. INC's published onnxruntime figures are printed beside.

Writes ``out/bench/speed.md`` and ``out/bench/speed.json`` (and prints the tables). Run with ``make bench`` (not
part of CI); ``python -m evals.bench_speed resnet50 digits-cnn --no-sweep`` runs a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optimizer import zoo
from optimizer.errors import QuantTaaSError
from optimizer.measure.data import Dataset, load_data, save_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.measure.hardware import cpu_int8_summary
from optimizer.measure.speed import measure_side_by_side, speedups
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.techniques.chain import apply_recipe
from optimizer.types import (
    DynamicInt8Recipe,
    Fp16Recipe,
    Int4WeightOnlyRecipe,
    OrtOptimizedRecipe,
    Recipe,
    SpeedComparison,
    StaticInt8Recipe,
)
from optimizer.zoo.light import LIGHT_MODELS

OUT = Path("out/bench")
SETTINGS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (8, 1), (8, 2))  # (batch, threads)
ZOO = ("digits-cnn", "minilm-l6", "ppocr-rec")
LIGHT = ("resnet50",)  # the default; any of optimizer.zoo.light.LIGHT_MODELS can be named
#: INC's published int8 speed-ups on onnxruntime (the issue's figures)
INC_PUBLISHED = (
    ("ResNet-50 v1.5, static int8 QDQ, 4 cores", "2.2x"),
    ("MobileNetV2, static int8", "1.69x"),
    ("EfficientNet, static int8", "1.77x"),
    ("BERT base, dynamic int8", "2.1x"),
)
#: the speed goal each model's sweep answers (ResNet-50 has random weights: its agreement metric means nothing)
SWEEP_GOALS = {
    "resnet50": "at least 1.3x faster, on 1 thread, batch 1",
    "digits-cnn": "as fast as possible with at most 1% accuracy loss, on 1 thread, batch 1",
    "minilm-l6": "as fast as possible while losing at most 2 points, on 1 thread, batch 1",
    "ppocr-rec": "as fast as possible with at most 2% accuracy loss, on 1 thread, batch 1",
}


def formats_for(model_path: str | Path) -> list[tuple[str, Recipe]]:
    """Every format worth timing on this model, with a short name."""
    ops = set(inspect_model(model_path).op_counts)
    mm = tuple(o for o in ("MatMul", "Gemm") if o in ops)
    out: list[tuple[str, Recipe]] = []
    if ops & {"Conv", "MatMul", "Gemm"}:
        out += [
            ("int8 QDQ per-channel", StaticInt8Recipe()),
            ("int8 QDQ per-tensor", StaticInt8Recipe(per_channel=False)),
            ("int8 QOperator per-channel", StaticInt8Recipe(quant_format="qoperator")),
            ("int8 QOperator per-tensor", StaticInt8Recipe(quant_format="qoperator", per_channel=False)),
        ]
    if mm:
        ops_dyn = tuple(o for o in ("MatMul", "Gemm", "Gather") if o in ops)
        out.append(("dynamic int8 " + "/".join(ops_dyn), DynamicInt8Recipe(op_types=ops_dyn)))
    if "Conv" in ops:
        out.append(("dynamic int8 incl. Conv", DynamicInt8Recipe(op_types=("Conv", *mm))))
    out.append(("fp16", Fp16Recipe()))
    out.append(("ORT-optimized offline", OrtOptimizedRecipe()))
    if "MatMul" in ops:
        out.append(("int4 weight-only", Int4WeightOnlyRecipe()))
    return out


@dataclass
class Case:
    name: str
    model: Path
    data: Dataset
    calib: Dataset
    accuracy: bool  # False: random weights, speed and size only
    files: dict[str, Path] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    drops: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    speed: dict[tuple[int, int], dict[str, SpeedComparison]] = field(default_factory=dict)
    p50: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)


def load_case(name: str, work: Path) -> Case:
    if name in LIGHT_MODELS:
        from optimizer.zoo.light import build_light_model

        model = build_light_model(name, work / f"{name}.onnx")
        inputs = inspect_model(model).inputs
        x = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
        save_data(work / f"{name}-eval.npz", {inputs[0].name: x[:8]}, metric="agreement")
        save_data(work / f"{name}-calib.npz", {inputs[0].name: x[8:]}, metric="agreement")
        data = load_data(work / f"{name}-eval.npz", inputs)
        calib = load_data(work / f"{name}-calib.npz", inputs, metric="agreement")
        return Case(name, model, data, calib, accuracy=False)
    case = zoo.get_zoo_case(name)
    inputs = inspect_model(case.model_path).inputs
    data = load_data(case.eval_path, inputs)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    return Case(name, Path(case.model_path), data, calib.head(64), accuracy=True)


def build_formats(case: Case, work: Path) -> None:
    prepared = prepare_model(case.model, work / f"{case.name}-prepared.onnx", min_opset=QDQ_MIN_OPSET)
    case.files["fp32"] = case.model
    case.sizes["fp32"] = inspect_model(case.model).size_bytes
    base, ref = (None, None)
    if case.accuracy:
        base, ref = evaluate_model(
            case.model, case.data, keep_outputs=True, as_reference=True, latency_runs=0
        )
        case.drops["fp32"] = 0.0
    for label, recipe in formats_for(case.model):
        out = work / f"{case.name}-{recipe.label}.onnx".replace("[", "").replace("]", "").replace(",", "-")
        t0 = time.perf_counter()
        try:
            apply_recipe(prepared, recipe, out, calib=case.calib, prepared=True)
        except QuantTaaSError as e:
            case.errors[label] = f"[{e.code}] {e.message[:90]}"
            print(f"  {case.name}: {label} failed: {case.errors[label]}", flush=True)
            continue
        case.files[label], case.recipes[label] = out, recipe
        case.sizes[label] = inspect_model(out).size_bytes
        if case.accuracy and base is not None:
            m, _ = evaluate_model(
                out,
                case.data,
                baseline_metric=base.metric,
                reference_outputs=ref,
                latency_runs=0,
                memory=False,
            )
            case.drops[label] = m.accuracy_drop_pct
        print(f"  {case.name}: built {label} in {time.perf_counter() - t0:.1f} s", flush=True)


def time_formats(case: Case, blocks: int, runs: int) -> None:
    for batch, threads in SETTINGS:
        t0 = time.perf_counter()
        times = measure_side_by_side(
            {k: str(v) for k, v in case.files.items()},
            case.data,
            threads=threads,
            batch_size=batch,
            blocks=blocks,
            runs_per_block=runs,
            warmup=2,
        )
        case.speed[(batch, threads)] = speedups(times, "fp32")
        case.p50[(batch, threads)] = {k: t.p50 for k, t in times.items()}
        print(
            f"  {case.name}: batch {batch}, {threads} thread(s) timed in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


def run_sweep_for(case: Case, work: Path) -> None:
    """The optimizer's answer to a speed goal on this model, and what the benchmark measured for its format."""
    from optimizer.goals.parse import parse_goal
    from optimizer.search.sweep import SweepOptions, run_sweep

    goal = parse_goal(SWEEP_GOALS[case.name])
    t0 = time.perf_counter()
    report = run_sweep(
        case.model,
        case.data,
        calib=case.calib,
        goal=goal,
        out_dir=work / f"{case.name}-sweep",
        options=SweepOptions(executor="serial", latency_runs=10, remeasure_runs=24),
    )
    rec = report.candidate(report.recommended) if report.recommended else None
    label = next((k for k, r in case.recipes.items() if rec is not None and r == rec.recipe), None)
    bench = case.speed.get((1, 1), {}).get(label) if label else None
    case.sweep = {
        "goal": goal.text,
        "recommended": rec.id if rec else None,
        "recipe": rec.recipe.label if rec else None,
        "sweep_speed": rec.speed.model_dump() if rec and rec.speed else None,
        "format": label,
        "bench_speed_b1_t1": bench.model_dump() if bench else None,
        "reason": report.reason,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _cell(sp: SpeedComparison | None) -> str:
    if sp is None:
        return "-"
    mark = {"faster": "", "slower": " **slower**", "same": " (noise)"}[sp.verdict]
    return f"{sp.speedup:.2f}x [{sp.low:.2f}-{sp.high:.2f}]{mark}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def table(case: Case) -> str:
    head = "| format | size | drop pt | " + " | ".join(f"b{b} t{t}" for b, t in SETTINGS) + " |"
    lines = [
        f"### {case.name}" + ("" if case.accuracy else " (random weights: speed and size only)"),
        "",
        head,
    ]
    lines.append("|" + "---|" * (3 + len(SETTINGS)))
    fp32 = " | ".join(f"{case.p50[s]['fp32']:.2f} ms" for s in SETTINGS)
    lines.append(f"| fp32 (p50) | {_mb(case.sizes['fp32'])} | 0 | {fp32} |")
    for label in [k for k in case.files if k != "fp32"]:
        drop = case.drops.get(label)
        d = "-" if drop is None else f"{drop:+.2f}"
        cells = " | ".join(_cell(case.speed[s].get(label)) for s in SETTINGS)
        lines.append(f"| {label} | {_mb(case.sizes[label])} | {d} | {cells} |")
    for label, err in case.errors.items():
        lines.append(f"| {label} | failed: {err} |" + " |" * (1 + len(SETTINGS)))
    if case.sweep:
        sw = case.sweep
        bench = sw.get("bench_speed_b1_t1")
        verdict = (
            "not in the benchmark's formats"
            if bench is None
            else f"benchmark b1 t1: {bench['speedup']:.2f}x [{bench['low']:.2f}-{bench['high']:.2f}] {bench['verdict']}"
        )
        lines += [
            "",
            f"Sweep, goal {sw['goal']!r} ({sw['seconds']} s): "
            + (
                f"recommends `{sw['recipe']}` ({sw['format']}); {verdict}."
                if sw["recommended"]
                else "nothing met it."
            )
            + f" Reason: {sw['reason']}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("models", nargs="*", default=[*LIGHT, *ZOO])
    p.add_argument("--blocks", type=int, default=6, help="interleaved blocks per setting")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each format per block")
    p.add_argument("--no-sweep", action="store_true", help="skip the optimizer's speed-goal sweeps")
    a = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    header = [
        "# int8 against fp32 latency, every format, side by side",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_int8_summary()}); load average at start "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}. Cells: speed-up over fp32 (fp32 p50 / format p50) "
        f"[95% interval] from {a.blocks} interleaved blocks of {a.runs} runs; **slower** when the interval is below "
        "1.0x, (noise) when it contains 1.0x. bN tM = batch N, M onnxruntime threads.",
        "",
        "INC's published onnxruntime int8 speed-ups: "
        + "; ".join(f"{what}: {x}" for what, x in INC_PUBLISHED)
        + ". This machine has 2 cores shared with other work: read the intervals, not only the points.",
    ]
    sections, results = [], {}
    with tempfile.TemporaryDirectory(prefix="quanttaas-bench-speed-") as tmp:
        work = Path(tmp)
        for name in a.models:
            t0 = time.perf_counter()
            print(f"{name}: building every format", flush=True)
            case = load_case(name, work)
            build_formats(case, work)
            time_formats(case, a.blocks, a.runs)
            if not a.no_sweep and name in SWEEP_GOALS:
                run_sweep_for(case, work)
            sections.append(table(case))
            print("\n" + sections[-1] + "\n", flush=True)
            results[name] = {
                "sizes": case.sizes,
                "drops": case.drops,
                "errors": case.errors,
                "speed": {
                    f"b{b}_t{t}": {k: v.model_dump() for k, v in sp.items()}
                    for (b, t), sp in case.speed.items()
                },
                "p50_ms": {f"b{b}_t{t}": v for (b, t), v in case.p50.items()},
                "sweep": case.sweep,
                "seconds": round(time.perf_counter() - t0, 1),
            }
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    header.append(f"\nLoad average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    (OUT / "speed.md").write_text(text)
    (OUT / "speed.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'speed.md'} and {OUT / 'speed.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
