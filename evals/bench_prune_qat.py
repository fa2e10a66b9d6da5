"""Benchmark: pruning, quantization-aware training, neural-compressor autotune and chains, side by side in one run.

Cases:

- ``digits``: the zoo's digits-cnn (trained at first use) and its PyTorch source;
- ``sensitive``: digits-cnn with its channels rescaled by 2**-5..2**5 (the same function in float, wide
  activation ranges), the case built for post-training int8 to lose accuracy and QAT to win it back;
- ``fashion``: a SmallCNN trained here on 10,000 Fashion-MNIST images (3 epochs), evaluated on 2,000, when the
  Debian package ``dataset-fashion-mnist`` is installed (skipped otherwise).

Every candidate ends in an ONNX file measured on onnxruntime (CPU, 1 thread): size, compressed size (gzip -6),
the metric and its drop against the original, and latency p50 at batch 1 and batch 32. Latency is measured in
interleaved rounds over all of a case's models (original included), so drift over the run favours none; ratios
are to the original measured in the same rounds. Writes ``out/bench/prune_qat.md`` and prints it.

Run with ``make bench``; ``python -m evals.bench_prune_qat digits fashion`` runs some cases.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.errors import QuantTaaSError
from optimizer.measure.data import Dataset, load_data, save_data
from optimizer.measure.evaluate import evaluate_model, make_session, measure_latency
from optimizer.models.inspect import inspect_model
from optimizer.techniques.chain import apply_recipe, torch_source_for
from optimizer.techniques.prune import compressed_size_bytes
from optimizer.techniques.quantize import quantize_model
from optimizer.types import (
    ChainRecipe,
    IncAutotuneRecipe,
    PruneChannelsRecipe,
    PruneMagnitudeRecipe,
    QatInt8Recipe,
    StaticInt8Recipe,
    TorchSource,
)
from optimizer.units import format_bytes
from optimizer.zoo import zoo_torch_source

OUT = Path("out/bench")
BIG_BATCH = 32
ROUNDS = 5


@dataclass
class Case:
    name: str
    description: str
    model: Path
    source: TorchSource
    data: Dataset
    calib: Dataset


@dataclass
class Row:
    method: str
    path: Path | None
    seconds: float
    metric: float | None = None
    drop: float | None = None
    size: int = 0
    compressed: int = 0
    p50_b1: float | None = None
    p50_big: float | None = None
    error: str | None = None
    finetuned: str = ""


def _case_files(root: Path, model: Any, example: Any, src: TorchSource) -> None:
    from optimizer.techniques.torch_backend import export_float

    export_float(model, example, root / "model.onnx", src)


def digits_case(root: Path) -> Case:
    from optimizer import zoo

    case = zoo.get_zoo_case("digits-cnn")
    src = zoo_torch_source("digits-cnn")
    assert src is not None
    inputs = inspect_model(case.model_path).inputs
    return Case(
        "digits-cnn",
        "the zoo's 3-conv CNN on 8x8 digits (25.9 K params; 1,437 train / 360 eval)",
        Path(case.model_path),
        src,
        load_data(case.eval_path, inputs),
        load_data(case.calib_path, inputs, metric="agreement"),
    )


def sensitive_case(root: Path) -> Case:
    import torch

    from optimizer import zoo
    from optimizer.zoo.digits import DigitsCNN

    case = zoo.get_zoo_case("digits-cnn")
    model = DigitsCNN()
    model.load_state_dict(torch.load(case.torch_source, weights_only=True))  # type: ignore[arg-type]
    model.eval()
    rng = np.random.default_rng(0)
    convs: list[Any] = [model.features[0], model.features[2], model.features[5]]
    for a, b in ((convs[0], convs[1]), (convs[1], convs[2])):
        s = torch.tensor(2.0 ** rng.uniform(-5, 5, a.out_channels), dtype=torch.float32)
        with torch.no_grad():
            a.weight.mul_(s.view(-1, 1, 1, 1))
            a.bias.mul_(s)
            b.weight.div_(s.view(1, -1, 1, 1))
    torch.save(model.state_dict(), root / "sensitive.pt")
    src0 = zoo_torch_source("digits-cnn")
    assert src0 is not None
    src = src0.model_copy(update={"state_dict_path": str(root / "sensitive.pt")})
    _case_files(root, model, (torch.zeros(4, 1, 8, 8),), src)
    inputs = inspect_model(root / "model.onnx").inputs
    return Case(
        "digits-cnn-rescaled",
        "digits-cnn with channels rescaled by 2**-5..2**5 (same float function, wide activation ranges)",
        root / "model.onnx",
        src,
        load_data(case.eval_path, inputs),
        load_data(case.calib_path, inputs, metric="agreement"),
    )


def fashion_case(root: Path) -> Case | None:
    import torch

    from optimizer.techniques.torch_backend import (
        SmallCNN,
        fashion_mnist_available,
        fit,
        load_fashion_mnist,
        torch_threads,
    )
    from optimizer.types import TensorInfo

    if not fashion_mnist_available():
        print("fashion: skipped (install the Debian package dataset-fashion-mnist)", file=sys.stderr)
        return None
    x_tr, y_tr, x_te, y_te = load_fashion_mnist(10_000, 2_000)
    save_data(root / "train.npz", {"image": x_tr}, y_tr, metric="top1")
    save_data(root / "eval.npz", {"image": x_te}, y_te, metric="top1")
    save_data(root / "calib.npz", {"image": x_tr[:256]})
    info = TensorInfo(name="image", dtype="float32", shape=["batch", 1, 28, 28])
    with torch_threads(1):
        torch.manual_seed(0)
        model = SmallCNN()
        fit(model, load_data(root / "train.npz", [info]), ["image"], epochs=3, lr=3e-3)
    torch.save(model.state_dict(), root / "cnn.pt")
    provisional = TorchSource(
        module="optimizer.techniques.torch_backend:SmallCNN",
        state_dict_path=str(root / "cnn.pt"),
        input_names=("image",),
        input_shapes=((1, 28, 28),),
        output_names=("logits",),
    )
    _case_files(root, model, (torch.from_numpy(x_tr[:4]),), provisional)
    src = torch_source_for(
        root / "model.onnx",
        module="optimizer.techniques.torch_backend:SmallCNN",
        state_dict_path=root / "cnn.pt",
        train_path=root / "train.npz",
    )
    inputs = inspect_model(root / "model.onnx").inputs
    return Case(
        "fashion-cnn",
        "SmallCNN (2 conv + 2 linear, 110 K params) trained here on 10,000 Fashion-MNIST images, 2,000 eval",
        root / "model.onnx",
        src,
        load_data(root / "eval.npz", inputs),
        load_data(root / "calib.npz", inputs, metric="agreement"),
    )


PRUNE30 = PruneChannelsRecipe(amount=0.3, finetune_epochs=1)
PRUNE50 = PruneChannelsRecipe(amount=0.5, finetune_epochs=1)

METHODS: dict[str, list[Any]] = {
    "digits-cnn": [
        StaticInt8Recipe(),
        PruneMagnitudeRecipe(sparsity=0.5, finetune_epochs=1),
        PruneMagnitudeRecipe(sparsity=0.8, finetune_epochs=1),
        PRUNE30,
        PRUNE50,
        PruneChannelsRecipe(amount=0.5, target="macs", finetune_epochs=1),
        PruneChannelsRecipe(amount=0.5, finetune_epochs=1, round_to=None),
        QatInt8Recipe(),
        IncAutotuneRecipe(),
        ChainRecipe(steps=(PRUNE30, StaticInt8Recipe())),
        ChainRecipe(steps=(PRUNE50, StaticInt8Recipe())),
        ChainRecipe(steps=(PruneMagnitudeRecipe(sparsity=0.8, finetune_epochs=1), StaticInt8Recipe())),
        ChainRecipe(steps=(PRUNE30, QatInt8Recipe())),
    ],
    "digits-cnn-rescaled": [
        StaticInt8Recipe(),
        StaticInt8Recipe(calibration="percentile"),
        StaticInt8Recipe(per_channel=False),
        IncAutotuneRecipe(),
        QatInt8Recipe(epochs=1),
        QatInt8Recipe(),
    ],
    "fashion-cnn": [
        StaticInt8Recipe(),
        PruneMagnitudeRecipe(sparsity=0.8, finetune_epochs=1),
        PRUNE30,
        PRUNE50,
        PruneChannelsRecipe(amount=0.5),  # no fine-tune: what the fine-tune buys
        # any channel count (the layout cost), and blocks of 16 (AVX-512 kernels)
        PruneChannelsRecipe(amount=0.5, finetune_epochs=1, round_to=None),
        PruneChannelsRecipe(amount=0.5, finetune_epochs=1, round_to=16),
        QatInt8Recipe(epochs=1),
        ChainRecipe(steps=(PRUNE50, StaticInt8Recipe())),
    ],
}


def build(case: Case, recipe: Any, out: Path) -> Row:
    t0 = time.perf_counter()
    try:
        if recipe.kind in ("static_int8", "dynamic_int8", "fp16", "int4_weight_only"):
            path = quantize_model(case.model, recipe, out, calib=case.calib)
            ft = "-"
        else:
            applied = apply_recipe(case.model, recipe, out, calib=case.calib, torch_source=case.source)
            path = applied.path
            ft = "yes" if applied.detail["finetuned"] else "no"
            inc = next((s["inc"] for s in applied.steps if "inc" in s), None)
            if inc is not None:
                ft = f"no (INC chose {inc['chosen']}, met tolerance: {inc['met_tolerance']})"
        return Row(recipe.label, path, time.perf_counter() - t0, finetuned=ft)
    except QuantTaaSError as e:
        return Row(recipe.label, None, time.perf_counter() - t0, error=f"[{e.code}] {e.message[:120]}")


def measure(case: Case, rows: list[Row], runs: int) -> None:
    """Metric, sizes; then latency of every model in interleaved rounds at batch 1 and batch 32."""
    base, _ = evaluate_model(case.model, case.data, latency_runs=0)
    for r in rows:
        if r.path is None:
            continue
        m, _ = evaluate_model(r.path, case.data, baseline_metric=base.metric, latency_runs=0)
        r.metric, r.drop = m.metric, m.accuracy_drop_pct
        r.size, r.compressed = m.size_bytes, compressed_size_bytes(r.path)
    live = [r for r in rows if r.path is not None]
    sessions = {id(r): make_session(r.path) for r in live if r.path is not None}
    times: dict[int, tuple[list[float], list[float]]] = {id(r): ([], []) for r in live}
    per_round = max(3, runs // ROUNDS)
    for _ in range(ROUNDS):
        for r in live:
            s = sessions[id(r)]
            times[id(r)][0].extend(measure_latency(s, case.data, batch_size=1, runs=per_round, warmup=2))
            times[id(r)][1].extend(
                measure_latency(s, case.data, batch_size=BIG_BATCH, runs=per_round // 3 + 1, warmup=1)
            )
    for r in live:
        r.p50_b1 = float(np.percentile(times[id(r)][0], 50))
        r.p50_big = float(np.percentile(times[id(r)][1], 50))


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(case: Case, rows: list[Row]) -> str:
    orig = rows[0]
    assert orig.p50_b1 and orig.p50_big
    lines = [
        f"### {case.name}: {case.description}",
        "",
        f"{case.data.samples} eval samples, metric {case.data.metric}; onnxruntime CPU, 1 thread; latency p50 at "
        f"batch 1 and batch {BIG_BATCH}, {ROUNDS} interleaved rounds. Ratios are to the original (size: smaller is "
        "< 1; speed-up: faster is > 1).",
        "",
        f"| method | size | compressed | metric | drop (pt) | p50 ms b1 | p50 ms b{BIG_BATCH} | size x | "
        f"compressed x | speed-up b1 | speed-up b{BIG_BATCH} | fine-tuned | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.path is None:
            lines.append(f"| {r.method} | failed: {r.error} |||||||||||| {r.seconds:.1f} |")
            continue
        lines.append(
            f"| {r.method} | {format_bytes(r.size)} | {format_bytes(r.compressed)} | {_f(r.metric, '.4f')} | "
            f"{_f(r.drop, '+.2f')} | {_f(r.p50_b1, '.4f')} | {_f(r.p50_big, '.3f')} | {r.size / orig.size:.3f} | "
            f"{r.compressed / orig.compressed:.3f} | {orig.p50_b1 / (r.p50_b1 or 1):.2f} | "
            f"{orig.p50_big / (r.p50_big or 1):.2f} | {r.finetuned} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


BUILDERS: dict[str, Callable[[Path], Case | None]] = {
    "digits": digits_case,
    "sensitive": sensitive_case,
    "fashion": fashion_case,
}


def bench_case(name: str, runs: int = 150) -> str:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        root = Path(tmp)
        case = BUILDERS[name](root)
        if case is None:
            return f"### {name}: skipped (Fashion-MNIST is not installed)\n"
        rows = [Row("original (fp32)", case.model, 0.0, finetuned="-")]
        for i, recipe in enumerate(METHODS[case.name]):
            rows.append(build(case, recipe, root / f"m{i:02d}.onnx"))
            print(f"  {case.name}: {rows[-1].method} ({rows[-1].seconds:.1f} s)", file=sys.stderr)
        measure(case, rows, runs)
        return table(case, rows)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    names = argv or list(BUILDERS)
    t0 = time.perf_counter()
    parts = [bench_case(n) for n in names]
    text = "\n".join(parts) + f"\n(total {time.perf_counter() - t0:.0f} s)\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prune_qat.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
