"""Benchmark: accuracy recovery where full int8 loses, every technique side by side in one run.

Cases (models where full static int8 loses accuracy):

- ``ppocr``: the zoo's PP-OCRv4 recogniser (a real model nobody here trained), exact match of greedy CTC decoding
  on rendered text lines (``--lines N``, default 200);
- ``ppocr-det``: the PP-OCRv4 text detector from the corpus (``evals.corpus``): 12 rendered pages, no labels, so
  the metric is the cosine similarity of its probability map to the fp32 model's;
- ``rescaled``: the zoo's digits-cnn with its channels rescaled by 2**-5..2**5 (the same float function, wide
  per-channel ranges; built by :func:`evals.bench_prune_qat.sensitive_case`), top-1 on 360 digits.

Rows: full static int8 (per channel, min-max: the reference loss), the one-liner (onnxruntime's
``quantize_static(model, out, reader)`` with its defaults), selective fp32 (the noisiest layers kept in float,
chosen from the sensitivity profile), and each recovery technique, including the two chosen by a 0/1 knapsack
under the size budget of the aim (what keeping 85% of the full int8 size saving leaves: layers in fp32, and 16-bit
weights on top of 16-bit activations). For each: the metric's drop, the size, the share
of the full-int8 loss recovered ``(drop_int8 - drop) / drop_int8``, the share of the full-int8 size saving kept
``(fp32 - size) / (fp32 - int8)``, the seconds it took to build, and latency p50 at batch 1 (1 thread, interleaved
rounds; ratio to fp32 measured in the same rounds). Writes ``out/bench/recovery.md`` and prints it.

Run with ``make bench``; ``python -m evals.bench_recovery ppocr --lines 60`` runs one case on fewer lines, and
``--rows int16,knapsack`` only the rows whose label contains one of those words (full int8 always runs).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from optimizer.errors import QuantTaaSError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model, make_session, measure_latency
from optimizer.models.graph import layer_blocks
from optimizer.models.inspect import model_inputs
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.profile import profile_layers
from optimizer.techniques import registry
from optimizer.techniques.builtin import noisiest_layers
from optimizer.techniques.chain import apply_recipe
from optimizer.techniques.registry import GridContext
from optimizer.types import (
    AdaRoundInt8Recipe,
    EqualizedInt8Recipe,
    Int16ActivationsRecipe,
    StaticInt8Recipe,
)

OUT = Path("out/bench")
ROUNDS = 5
SELECTIVE_K = 4
#: the aim: at least this share of the full int8 size saving kept (the knapsack rows spend the rest)
KEEP_SAVING = 0.85


@dataclass
class Row:
    method: str
    path: Path | None
    seconds: float
    drop: float | None = None
    size: int = 0
    p50: float | None = None
    error: str | None = None


def ppocr_case(root: Path, lines: int) -> tuple[str, Path, Dataset, Dataset]:
    from optimizer.zoo import get_zoo_case

    case = get_zoo_case("ppocr-rec")
    inputs = model_inputs(onnx.load(case.model_path, load_external_data=False))
    ev = load_data(case.eval_path, inputs, metric=case.metric)
    ev = Dataset(
        ev.path,
        {k: v[:lines] for k, v in ev.inputs.items()},
        None if ev.labels is None else ev.labels[:lines],
        ev.metric,
        ev.meta,
    )
    return f"ppocr-rec ({lines} lines)", Path(case.model_path), ev, load_data(case.calib_path, inputs)


def ppocr_det_case(root: Path, lines: int) -> tuple[str, Path, Dataset, Dataset]:
    """The PP-OCRv4 text detector from the corpus (12 rendered pages of 160x320): no labels, so the metric is
    the cosine similarity of its probability map to the fp32 model's (``evals.corpus``)."""
    from evals.corpus import build_case

    c = build_case("ppocr-det", root)
    inputs = model_inputs(onnx.load(str(c.model_path), load_external_data=False))
    data = load_data(c.eval_path, inputs)
    return (
        f"ppocr-det ({data.samples} pages, {data.metric}: fidelity to the fp32 map)",
        c.model_path,
        data,
        load_data(c.calib_path, inputs),
    )


def rescaled_case(root: Path, lines: int) -> tuple[str, Path, Dataset, Dataset]:
    from evals.bench_prune_qat import sensitive_case

    c = sensitive_case(root)
    return "digits-cnn rescaled (360 digits)", c.model, c.data, c.calib


CASES: dict[str, Callable[[Path, int], tuple[str, Path, Dataset, Dataset]]] = {
    "ppocr": ppocr_case,
    "ppocr-det": ppocr_det_case,
    "rescaled": rescaled_case,
}


def _one_liner(src: Path, out: Path, calib: Dataset) -> None:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    feeds = [{k: v[i : i + 1] for k, v in calib.inputs.items()} for i in range(min(calib.samples, 64))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    quantize_static(str(src), str(out), Reader())


def bench_case(name: str, lines: int, rows_filter: tuple[str, ...] = ()) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        root = Path(tmp)
        title, model, data, calib = CASES[name](root, lines)
        prepared = prepare_model(model, root / "prepared.onnx", min_opset=QDQ_MIN_OPSET)
        base, reference = evaluate_model(prepared, data, latency_runs=0, as_reference=True, keep_outputs=True)
        graph = onnx.load(str(prepared), load_external_data=False)
        sens = profile_layers(prepared, calib, prepared=True)
        info = _inspect(prepared)
        ctx = GridContext(info=info, sensitivity=sens, has_calib=True, graph=graph)
        ranked = [la.name for la in sens.layers]
        rows: list[Row] = []

        def build(label: str, recipe: Any) -> None:
            out = root / f"m{len(rows)}.onnx"
            t0 = time.perf_counter()
            try:
                if recipe is None:
                    _one_liner(prepared, out, calib)
                else:
                    apply_recipe(prepared, recipe, out, calib=calib, prepared=True)
                m, _ = evaluate_model(
                    out, data, latency_runs=0, baseline_metric=base.metric, reference_outputs=reference
                )
                rows.append(Row(label, out, time.perf_counter() - t0, m.accuracy_drop_pct, m.size_bytes))
            except QuantTaaSError as e:
                rows.append(Row(label, None, time.perf_counter() - t0, error=e.message[:80]))
            print(f"  {label}: {rows[-1]}", file=sys.stderr, flush=True)

        build("full static int8 (pc, min-max)", StaticInt8Recipe(calib_samples=64))
        recipes: list[tuple[str, Any]] = [
            ("one-liner: quantize_static defaults", None),
            (
                f"selective fp32 ({SELECTIVE_K} noisiest layers)",
                StaticInt8Recipe(calib_samples=64, keep_fp32=layer_blocks(graph, ranked[:SELECTIVE_K])),
            ),
            ("CLE", EqualizedInt8Recipe(calib_samples=64)),
            ("CLE + bias correction", EqualizedInt8Recipe(calib_samples=64, bias_correction=True)),
            ("AdaRound (30 s budget)", AdaRoundInt8Recipe(calib_samples=64, time_budget_s=30.0)),
            ("int16 activations, all", Int16ActivationsRecipe(calib_samples=64)),
        ]
        noisy = noisiest_layers(ctx)
        if noisy:
            recipes.append(
                (
                    f"int16 activations, {len(noisy)} noisiest layers (greedy)",
                    Int16ActivationsRecipe(calib_samples=64, int16_layers=noisy),
                )
            )
        # the size budget of the aim: keep at least 85% of the full int8 size saving
        full = rows[0]
        if full.size:
            limit = base.size_bytes - KEEP_SAVING * (base.size_bytes - full.size)
            budgeted = [
                p
                for p in registry.propose_all(
                    replace(ctx, size_limit_bytes=limit, int8_size_bytes=float(full.size))
                )
                if p.budgeted
            ]
            for p in budgeted:
                what = (
                    f"knapsack fp32, {p.k} layers"
                    if isinstance(p.recipe, StaticInt8Recipe)
                    else f"knapsack 16-bit weights x{len(getattr(p.recipe, 'int16_weight_layers', ()))}"
                    " + int16 activations"
                )
                label = f"{what} (budget {(limit - full.size) / 1e3:.0f} KB)"
                recipes.append((label, p.recipe.model_copy(update={"calib_samples": 64})))
        for label, recipe in recipes:
            if rows_filter and not any(f in label for f in rows_filter):
                continue
            build(label, recipe)
        p50 = _latencies(prepared, data, rows)
        return _table(title, base, p50, rows)


def _inspect(path: Path) -> Any:
    from optimizer.models.inspect import inspect_model

    return inspect_model(path)


def _latencies(prepared: Path, data: Dataset, rows: list[Row]) -> float:
    """Batch-1 p50 of the original and every row, in interleaved rounds (drift favours none)."""
    one = Dataset(data.path, {k: v[:1] for k, v in data.inputs.items()}, None, data.metric, data.meta)
    sessions = {"__fp32__": make_session(prepared, threads=1)}
    sessions.update({r.method: make_session(r.path, threads=1) for r in rows if r.path is not None})
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(ROUNDS):
        for k, s in sessions.items():
            times[k] += measure_latency(s, one, runs=4, warmup=1)
    for r in rows:
        if r.method in times:
            r.p50 = float(np.percentile(times[r.method], 50))
    return float(np.percentile(times["__fp32__"], 50))


def _table(title: str, base: Any, fp32_p50: float, rows: list[Row]) -> str:
    full = rows[0]
    lines = [
        f"### {title}: fp32 {base.metric_name} {base.metric:.4f}, {base.size_bytes / 1e6:.3f} MB, "
        f"{fp32_p50:.3f} ms (batch 1, 1 thread)",
        "",
        "| technique | drop (pt) | size (MB) | loss recovered | int8 size saving kept | latency vs fp32 | build (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.error is not None or r.drop is None:
            lines.append(f"| {r.method} | failed: {r.error} | | | | | {r.seconds:.1f} |")
            continue
        rec = "n/a"
        if full.drop and full.drop > 0 and r is not full:
            rec = f"{100 * (full.drop - r.drop) / full.drop:.0f}%"
        kept = "n/a"
        if full.size and base.size_bytes > full.size:
            kept = f"{100 * (base.size_bytes - r.size) / (base.size_bytes - full.size):.0f}%"
        lat = f"{r.p50 / fp32_p50:.2f}x" if r.p50 else "n/a"
        lines.append(
            f"| {r.method} | {r.drop:.2f} | {r.size / 1e6:.3f} | {rec} | {kept} | {lat} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    lines = 200
    if "--lines" in argv:
        i = argv.index("--lines")
        lines = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    rows_filter: tuple[str, ...] = ()
    if "--rows" in argv:
        # a slow model's rows in separate runs (each under the 10-minute bound): full int8 always runs
        i = argv.index("--rows")
        rows_filter = tuple(r.strip() for r in argv[i + 1].split(",") if r.strip())
        argv = argv[:i] + argv[i + 2 :]
    names = argv or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; use {list(CASES)}", file=sys.stderr)
        return 2
    text = "## Accuracy recovery where full int8 loses\n\n" + "\n".join(
        bench_case(n, lines, rows_filter) for n in names
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "recovery.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
