"""Benchmark: the sweep on ppocr-rec, the model where precision per layer matters.

Measured in one run and written to ``out/bench/sweep.md``:

1. the goal-directed sweep (Ray, 2 workers) for GOAL: what the recommended candidate recovers of the full-int8
   accuracy loss, and how much of the full-int8 size saving it keeps;
2. its evaluations against the full grid;
3. the profiling time against one evaluation pass over the same data;
4. the whole grid run serially in-process and on Ray with 2 workers: wall time and speed-up (trials of several
   seconds each, so Ray's start-up is paid once, before the clock starts).

Run with ``make bench`` (not part of CI). ``python -m evals.bench_sweep --lines 100`` uses fewer text lines.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from optimizer import zoo
from optimizer.goals.parse import parse_goal
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import make_session, run_model
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.pareto import ParetoReport
from optimizer.search.profile import profile_layers
from optimizer.search.runtime import ensure_ray
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.types import StaticInt8Recipe

OUT = Path("out/bench")
GOAL = "as small as possible, accuracy within 1 point"


def _slice(data: Dataset, n: int) -> Dataset:
    labels = data.labels[:n] if data.labels is not None else None
    return Dataset(data.path, {k: v[:n] for k, v in data.inputs.items()}, labels, data.metric, data.meta)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--goal", default=GOAL)
    args = ap.parse_args(argv)

    case = zoo.get_zoo_case("ppocr-rec")
    inputs = inspect_model(case.model_path).inputs
    data = _slice(load_data(case.eval_path, inputs), args.lines)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    goal = parse_goal(args.goal)
    ensure_ray(num_cpus=2)  # started before any clock: one runtime per process, as the server keeps it
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    lines: list[str] = [f"### sweep on ppocr-rec ({data.samples} lines, goal: {args.goal!r})", ""]
    try:
        # profiling against one evaluation pass
        prepared = prepare_model(case.model_path, work / "prepared.onnx", min_opset=QDQ_MIN_OPSET)
        sess = make_session(prepared)
        t0 = time.perf_counter()
        run_model(sess, data)
        eval_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sens = profile_layers(prepared, calib, prepared=True)
        prof_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        directed = run_sweep(
            case.model_path,
            data,
            calib=calib,
            goal=goal,
            out_dir=work / "directed",
            options=SweepOptions(executor="ray", workers=2),
            sensitivity=sens,
        )
        directed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_sweep(
            case.model_path,
            data,
            calib=calib,
            goal=goal,
            out_dir=work / "grid_ray",
            options=SweepOptions(executor="ray", workers=2, exhaustive=True),
            sensitivity=sens,
        )
        ray_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        grid_serial = run_sweep(
            case.model_path,
            data,
            calib=calib,
            goal=goal,
            out_dir=work / "grid_serial",
            options=SweepOptions(executor="serial", exhaustive=True),
            sensitivity=sens,
        )
        serial_s = time.perf_counter() - t0
        lines += recovery_lines(directed, grid_serial)
        lines += [
            "",
            "| measure | value |",
            "|---|---|",
            f"| evaluations, directed / full grid | {directed.evaluations} / {grid_serial.evaluations} "
            f"= {directed.evaluations / grid_serial.evaluations:.0%} |",
            f"| directed sweep wall time (Ray, 2 workers) | {directed_s:.1f} s |",
            f"| profile ({sens.model_passes} passes over {sens.calib_samples} calibration samples) | {prof_s:.1f} s |",
            f"| one evaluation pass ({data.samples} lines) | {eval_s:.1f} s |",
            f"| profile / evaluation pass | {prof_s / eval_s:.2f}x |",
            f"| full grid, serial in-process | {serial_s:.1f} s ({grid_serial.evaluations} trials, "
            f"{serial_s / grid_serial.evaluations:.1f} s each) |",
            f"| full grid, Ray with 2 workers | {ray_s:.1f} s |",
            f"| Ray speed-up over serial | {serial_s / ray_s:.2f}x |",
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.md").write_text(text)
    return 0


def recovery_lines(directed: ParetoReport, grid: ParetoReport) -> list[str]:
    base = directed.baseline
    full = next((c for c in grid.candidates if c.recipe == StaticInt8Recipe() and c.metrics), None)
    out = [f"original: {base.size_bytes / 1e6:.2f} MB, {base.metric_name} {base.metric:.4f}", ""]
    rows = ["| candidate | size MB | metric | drop pt | on front |", "|---|---|---|---|---|"]
    for c in grid.candidates:
        if c.metrics:
            rows.append(
                f"| {c.id} | {c.metrics.size_bytes / 1e6:.2f} | {c.metrics.metric:.4f} | "
                f"{c.metrics.accuracy_drop_pct:+.2f} | {'yes' if c.id in grid.front else ''} |"
            )
        else:
            rows.append(f"| {c.id} | failed: {c.error.message[:60] if c.error else '?'} | | | |")
    out += [*rows, ""]
    if directed.recommended is None or full is None or full.metrics is None:
        out.append(f"directed sweep recommended nothing: {directed.reason}")
        return out
    rec = directed.candidate(directed.recommended).metrics
    assert rec is not None  # a recommended candidate always has metrics
    full_loss = full.metrics.accuracy_drop_pct or 0.0
    recovered = (full_loss - (rec.accuracy_drop_pct or 0.0)) / full_loss if full_loss > 0 else float("nan")
    saving_full = base.size_bytes - full.metrics.size_bytes
    kept = (base.size_bytes - rec.size_bytes) / saving_full if saving_full > 0 else float("nan")
    out += [
        f"recommended: {directed.recommended} ({rec.size_bytes / 1e6:.2f} MB, drop {rec.accuracy_drop_pct:+.2f} pt); "
        f"full int8: {full.metrics.size_bytes / 1e6:.2f} MB, drop {full_loss:+.2f} pt",
        f"share of the full-int8 accuracy loss recovered: {recovered:.0%}; share of its size saving kept: {kept:.0%}",
    ]
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
