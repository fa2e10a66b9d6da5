"""Benchmark: the corpus of real models nobody here trained (evals/corpus.py), three goals each, the
recommendation side by side with onnxruntime's one-liners.

For every installed corpus model and each goal (a size goal, an accuracy goal, a speed goal) it runs the
directed sweep (Ray, 2 workers) and, apart from it, the two one-liners a practitioner would try by hand
(``quantize_dynamic(model, out)`` and ``quantize_static(model, out, reader)`` with onnxruntime's defaults, on the
original file). Latency of the original, the recommendation and both one-liners is measured in the same
interleaved rounds. A row passes when the recommendation is at least as good as each one-liner on the goal's
terms: a goal the one-liner meets is never answered "infeasible", and on the goal's objective (size, drop, or
latency within 5% noise) the recommendation is no worse. Writes ``out/bench/corpus.md`` (and .json).

Run with ``make bench`` (not part of CI); ``python -m evals.bench_corpus --models digits-cnn ppocr-cls``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evals.corpus import BUILDERS, CorpusSkip, build_case
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model, make_session, measure_latency
from optimizer.models.inspect import inspect_model
from optimizer.search.pareto import check_goal
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.types import Candidate, Goal, Metrics, OrtDynamicDefaultRecipe, OrtStaticDefaultRecipe

OUT = Path("out/bench")
LATENCY_NOISE = 0.05

GOALS: dict[str, Goal] = {
    "size": Goal(max_accuracy_drop_pct=1.0, objective="size", text="as small as possible, at most 1 pt lost"),
    "accuracy": Goal(max_size_ratio=0.5, objective="accuracy", text="most accurate under half the size"),
    "speed": Goal(
        min_speedup=1.2, max_accuracy_drop_pct=2.0, objective="latency", text="1.2x faster, at most 2 pt lost"
    ),
}


@dataclass
class Row:
    model: str
    goal: str
    recommended: str | None
    rec: Metrics | None
    one_liners: dict[str, Metrics | None] = field(default_factory=dict)
    one_liner_errors: dict[str, str] = field(default_factory=dict)
    baseline: Metrics | None = None
    wall_s: float = 0.0
    verdict: str = ""
    reason: str = ""


def one_liner(kind: str, model: Path, calib: Dataset, out: Path) -> Path:
    """Exactly what a practitioner runs: onnxruntime's quantizer with its defaults, on the original file."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    if kind == "ort_dynamic_default":
        quantize_dynamic(str(model), str(out))
        return out
    batches = iter([calib.feed(i, i + 1) for i in range(min(calib.samples, 128))])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    quantize_static(str(model), str(out), Reader())
    return out


def side_by_side(
    paths: dict[str, Path], data: Dataset, rounds: int = 5, per_round: int = 12
) -> dict[str, float]:
    """p50 latency of each model, measured in interleaved rounds (the same machine load for all)."""
    sessions = {k: make_session(p, threads=1) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, s in sessions.items():
            times[k] += measure_latency(s, data, runs=per_round, warmup=2)
    return {k: float(np.percentile(v, 50)) for k, v in times.items()}


def objective_value(m: Metrics, goal: Goal) -> float:
    if goal.objective == "size":
        return float(m.size_bytes)
    if goal.objective == "accuracy":
        return float(m.accuracy_drop_pct or 0.0)
    return float(m.latency_ms_p50 or 0.0)


def verdict(row: Row, goal: Goal) -> str:
    base = row.baseline
    assert base is not None
    problems = []
    for kind, m in row.one_liners.items():
        if m is None:
            continue
        ol_ok = not check_goal(Candidate(id=kind, recipe=_recipe(kind), metrics=m), goal, base)
        if not ol_ok:
            continue
        if row.rec is None:
            problems.append(f"{kind} meets the goal but the sweep answered infeasible")
            continue
        rv, ov = objective_value(row.rec, goal), objective_value(m, goal)
        tol = ov * LATENCY_NOISE if goal.objective == "latency" else 1e-9
        if rv > ov + tol:
            problems.append(f"worse than {kind} on {goal.objective} ({rv:.4g} > {ov:.4g})")
    return "PASS" if not problems else "FAIL: " + "; ".join(problems)


def _recipe(kind: str) -> Any:
    return OrtDynamicDefaultRecipe() if kind == "ort_dynamic_default" else OrtStaticDefaultRecipe()


def bench_model(
    name: str, work: Path, goals: list[str], workers: int, options: SweepOptions | None = None
) -> list[Row]:
    """Every goal of ``goals`` on corpus case ``name``: the sweep, the one-liners, the verdict.

    Raises:
        CorpusSkip: the case's package is not installed.
    """
    case = build_case(name, work / "corpus")
    inputs = inspect_model(case.model_path).inputs
    data = load_data(case.eval_path, inputs)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    base, reference = evaluate_model(
        case.model_path, data, keep_outputs=True, as_reference=True, latency_runs=5
    )
    ol_paths: dict[str, Path] = {}
    ol_metrics: dict[str, Metrics | None] = {}
    ol_errors: dict[str, str] = {}
    for kind in ("ort_dynamic_default", "ort_static_default"):
        try:
            p = one_liner(kind, case.model_path, calib, work / f"{name}-{kind}.onnx")
            m, _ = evaluate_model(
                p, data, baseline_metric=base.metric, reference_outputs=reference, latency_runs=5
            )
            ol_paths[kind], ol_metrics[kind] = p, m
        except Exception as e:  # the one-liner itself fails on this model: that is a result
            ol_metrics[kind] = None
            ol_errors[kind] = f"{e.__class__.__name__}: {str(e)[:120]}"
    rows = []
    for g in goals:
        goal = GOALS[g]
        t0 = time.perf_counter()
        report = run_sweep(
            case.model_path,
            data,
            calib=calib,
            goal=goal,
            out_dir=work / f"{name}-{g}",
            options=options or SweepOptions(executor="ray", workers=workers, latency_runs=20),
            model_name=name,
        )
        wall = time.perf_counter() - t0
        rec = report.candidate(report.recommended) if report.recommended else None
        paths = {"__base__": case.model_path, **ol_paths}
        if rec is not None and rec.model_path:
            paths["__rec__"] = Path(rec.model_path)
        p50 = side_by_side(paths, data)
        baseline = base.model_copy(update={"latency_ms_p50": p50["__base__"]})
        ols = {
            k: (m.model_copy(update={"latency_ms_p50": p50[k]}) if m is not None else None)
            for k, m in ol_metrics.items()
        }
        rec_m = (
            rec.metrics.model_copy(update={"latency_ms_p50": p50["__rec__"]}) if rec and rec.metrics else None
        )
        row = Row(name, g, report.recommended, rec_m, ols, ol_errors, baseline, wall, reason=report.reason)
        row.verdict = verdict(row, goal)
        rows.append(row)
        print(f"{name} / {g}: {row.recommended} {row.verdict} ({wall:.0f} s)", flush=True)
    return rows


def _cell(m: Metrics | None, base: Metrics, err: str | None = None) -> str:
    if m is None:
        return f"failed ({err[:60]})" if err else "none"
    speed = (base.latency_ms_p50 or 0) / m.latency_ms_p50 if m.latency_ms_p50 else float("nan")
    return f"{m.size_bytes / base.size_bytes:.2f}x / {m.accuracy_drop_pct or 0:+.2f} pt / {speed:.2f}x"


def table(rows: list[Row], skipped: dict[str, str]) -> list[str]:
    lines = [
        "cells: size ratio / metric drop (points) / speed-up (original p50 / p50, measured side by side)",
        "",
        "| model | goal | recommendation | recommended | one-liner dynamic | one-liner static | sweep wall | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        assert r.baseline is not None
        lines.append(
            f"| {r.model} | {r.goal} | {r.recommended or 'infeasible'} | {_cell(r.rec, r.baseline)} | "
            f"{_cell(r.one_liners.get('ort_dynamic_default'), r.baseline, r.one_liner_errors.get('ort_dynamic_default'))} | "
            f"{_cell(r.one_liners.get('ort_static_default'), r.baseline, r.one_liner_errors.get('ort_static_default'))} | "
            f"{r.wall_s:.0f} s | {r.verdict} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | - | skipped: {why} | | | | | |")
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=list(BUILDERS))
    ap.add_argument("--goals", nargs="*", default=list(GOALS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-selective", type=int, default=12, help="selective candidates per sweep")
    ap.add_argument("--name", default="corpus", help="output file name under out/bench (.md, .json)")
    ap.add_argument("--executor", choices=("ray", "serial"), default="ray")
    args = ap.parse_args(argv)
    options = SweepOptions(
        executor=args.executor, workers=args.workers, latency_runs=20, max_selective=args.max_selective
    )
    if args.executor == "ray":
        from optimizer.search.runtime import ensure_ray

        ensure_ray(num_cpus=2)
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        for name in args.models:
            try:
                rows += bench_model(name, Path(tmp), args.goals, args.workers, options)
            except CorpusSkip as e:
                skipped[name] = str(e)
                print(f"{name}: skipped: {e}", flush=True)
            lines = write(rows, skipped, args, time.perf_counter() - t0)  # after every model: kill-safe
    print("\n".join(lines))
    return 0 if all(r.verdict == "PASS" for r in rows) else 1


def write(rows: list[Row], skipped: dict[str, str], args: argparse.Namespace, seconds: float) -> list[str]:
    lines = [f"### corpus: recommendation vs onnxruntime's one-liners ({seconds:.0f} s)", ""]
    lines += [f"goals: {', '.join(f'{k}: {g.describe()}' for k, g in GOALS.items() if k in args.goals)}", ""]
    lines += table(rows, skipped)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (OUT / f"{args.name}.json").write_text(
        json.dumps(
            [
                {
                    "model": r.model,
                    "goal": r.goal,
                    "recommended": r.recommended,
                    "verdict": r.verdict,
                    "wall_s": r.wall_s,
                    "reason": r.reason,
                    "rec": r.rec.model_dump() if r.rec else None,
                    "one_liners": {k: (m.model_dump() if m else None) for k, m in r.one_liners.items()},
                    "one_liner_errors": r.one_liner_errors,
                    "baseline": r.baseline.model_dump() if r.baseline else None,
                }
                for r in rows
            ],
            indent=2,
        )
    )
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
