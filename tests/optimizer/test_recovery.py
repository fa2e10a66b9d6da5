"""Accuracy recovery without training: cross-layer equalization, bias correction, learned rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.models.inspect import inspect_model, model_inputs
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.techniques import registry
from optimizer.techniques.chain import apply_recipe
from optimizer.techniques.equalize import equalization_pairs, equalize
from optimizer.techniques.registry import GridContext
from optimizer.types import (
    AdaRoundInt8Recipe,
    EqualizedInt8Recipe,
    Int16ActivationsRecipe,
    LayerSensitivity,
    SensitivityReport,
    StaticInt8Recipe,
)


def _run(path: Path, data: Dataset) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.asarray(sess.run(None, {name: data.inputs[name]})[0])


def test_equalize_keeps_the_float_function_and_balances_weight_ranges(
    cnn_path: Path, cnn_eval: Dataset, tmp_path: Path
) -> None:
    prepared = prepare_model(cnn_path, tmp_path / "prep.onnx", min_opset=QDQ_MIN_OPSET)
    model = onnx.load(str(prepared))
    notes = equalize(model)
    out = tmp_path / "eq.onnx"
    onnx.save(model, str(out))

    # conv -> relu -> pool -> conv, and conv -> relu -> pool -> flatten -> gemm
    assert len(notes["pairs"]) == 2
    before, after = notes["range_imbalance_log2"]
    assert after < 0.1 * before
    np.testing.assert_allclose(_run(out, cnn_eval), _run(prepared, cnn_eval), rtol=1e-4, atol=1e-4)


def test_recovery_proposals_come_only_with_calibration_data(cnn_path: Path) -> None:
    info = inspect_model(cnn_path)
    graph = onnx.load(str(cnn_path))

    kinds = [p.recipe.kind for p in registry.propose_all(GridContext(info=info, has_calib=True, graph=graph))]
    without = [
        p.recipe.kind for p in registry.propose_all(GridContext(info=info, has_calib=False, graph=graph))
    ]

    assert kinds.count("equalized_int8") == 2 and kinds.count("adaround_int8") == 1
    assert "equalized_int8" not in without and "adaround_int8" not in without
    assert equalization_pairs(graph)


def test_adaround_learns_a_rounding_that_reconstructs_better_than_nearest(
    cnn_path: Path, cnn_calib: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "ada.onnx"
    applied = apply_recipe(
        cnn_path,
        AdaRoundInt8Recipe(per_channel=False, iterations=300, time_budget_s=20.0),
        out,
        calib=cnn_calib,
    )
    notes = applied.steps[-1]["adaround"]

    assert notes["optimized"], notes
    assert (
        notes["seconds"] <= 20.0 + 5.0
    )  # bounded (the last Adam step and the file write may overrun a little)
    gains = [
        n["relative_error_nearest"] - n["relative_error_learned"]
        for n in notes["optimized"].values()
        if n["kept"] == "learned"
    ]
    assert gains and max(gains) > 0
    assert inspect_model(out).size_bytes < 0.5 * inspect_model(cnn_path).size_bytes


def _zero_point_types(path: Path) -> dict[str, int]:
    model = onnx.load(str(path))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    out: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2:
            out[n.input[0]] = inits[n.input[2]]
    return out


def test_int16_activations_make_only_the_named_layers_16_bit_at_int8_size(
    cnn_path: Path, cnn_calib: Dataset, tmp_path: Path
) -> None:
    prepared = prepare_model(cnn_path, tmp_path / "prep.onnx", min_opset=QDQ_MIN_OPSET)
    first_conv = next(n for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv")
    out = tmp_path / "a16.onnx"
    apply_recipe(prepared, Int16ActivationsRecipe(int16_layers=(first_conv.name,)), out, calib=cnn_calib)

    types = _zero_point_types(out)
    sixteen = {t for t, dt in types.items() if dt == onnx.TensorProto.UINT16}
    assert sixteen == {first_conv.input[0], first_conv.output[0]} & set(types)
    assert sixteen and any(dt == onnx.TensorProto.UINT8 for dt in types.values())
    assert inspect_model(out).size_bytes < 0.5 * inspect_model(cnn_path).size_bytes


def test_noisiest_layers_take_the_fewest_layers_carrying_most_of_the_noise(cnn_path: Path) -> None:
    from optimizer.techniques.builtin import noisiest_layers

    report = SensitivityReport(
        model_path="m.onnx",
        method="sqnr",
        recipe="static_int8",
        calib_samples=8,
        seconds=0.1,
        model_passes=1,
        layers=[
            LayerSensitivity(name="a", op_type="Conv", rank=1, sqnr_db=10.0),  # noise 0.1
            LayerSensitivity(name="b", op_type="Conv", rank=3, sqnr_db=40.0),  # 0.0001
            LayerSensitivity(name="c", op_type="Conv", rank=2, sqnr_db=13.0),  # about 0.05
        ],
    )
    ctx = GridContext(info=inspect_model(cnn_path), sensitivity=report, has_calib=True)

    assert noisiest_layers(ctx, 0.6) == ("a",)
    assert noisiest_layers(ctx, 0.9) == ("a", "c")
    kinds = [p.recipe for p in registry.propose_all(ctx) if isinstance(p.recipe, Int16ActivationsRecipe)]
    assert [r.int16_layers for r in kinds] == [None, ("a", "c")]


# --------------------------------------------------------------------------- a real model where int8 loses

PPOCR_LINES = 60


@pytest.fixture(scope="module")
def ppocr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, Dataset, float]:
    from optimizer.zoo import get_zoo_case

    case = get_zoo_case("ppocr-rec")
    work = tmp_path_factory.mktemp("ppocr")
    prepared = prepare_model(Path(case.model_path), work / "prep.onnx", min_opset=QDQ_MIN_OPSET)
    inputs = model_inputs(onnx.load(str(prepared), load_external_data=False))
    ev = load_data(case.eval_path, inputs, metric=case.metric)
    ev = Dataset(
        ev.path,
        {k: v[:PPOCR_LINES] for k, v in ev.inputs.items()},
        None if ev.labels is None else ev.labels[:PPOCR_LINES],
        ev.metric,
        ev.meta,
    )
    calib = load_data(case.calib_path, inputs)
    base, _ = evaluate_model(prepared, ev, latency_runs=0, as_reference=True)
    return prepared, ev, calib, float(base.metric or 0.0)


@pytest.mark.slow
def test_equalized_int8_and_int16_activations_recover_part_of_the_int8_loss_on_ppocr_rec(
    ppocr: tuple[Path, Dataset, Dataset, float], tmp_path: Path
) -> None:
    prepared, ev, calib, base = ppocr

    def drop(recipe: StaticInt8Recipe | EqualizedInt8Recipe | Int16ActivationsRecipe) -> tuple[float, int]:
        out = tmp_path / f"{recipe.label}.onnx"
        apply_recipe(prepared, recipe, out, calib=calib, prepared=True)
        m, _ = evaluate_model(out, ev, latency_runs=0, baseline_metric=base)
        return float(m.accuracy_drop_pct or 0.0), m.size_bytes

    full, full_size = drop(StaticInt8Recipe(calib_samples=64))
    cle, cle_size = drop(EqualizedInt8Recipe(calib_samples=64))
    a16, a16_size = drop(Int16ActivationsRecipe(calib_samples=64))

    assert full > 5.0  # full per-channel int8 really loses on this model (11.7 points measured)
    assert cle < full  # equalization recovers part of it (8.3 points measured)
    assert cle_size == pytest.approx(full_size, rel=0.01)  # and keeps the whole int8 size saving
    # 16-bit activations recover most of it (0.0 points measured) at the int8 size (their cost is latency)
    assert a16 < 0.5 * full
    assert a16_size == pytest.approx(full_size, rel=0.02)


@pytest.fixture(scope="module")
def rescaled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset, Dataset, float]:
    """The zoo's digits-cnn with its channels rescaled by 2**-5..2**5 between layers: the same float function,
    but per-channel ranges so unequal that full int8 loses accuracy (the case equalization exists for)."""
    import torch

    from optimizer import zoo
    from optimizer.techniques.torch_backend import export_float
    from optimizer.zoo.digits import DigitsCNN

    case = zoo.get_zoo_case("digits-cnn")
    src = zoo.zoo_torch_source("digits-cnn")
    assert src is not None and case.torch_source is not None
    model = DigitsCNN()
    model.load_state_dict(torch.load(case.torch_source, weights_only=True))
    model.eval()
    rng = np.random.default_rng(0)
    convs = [model.features[0], model.features[2], model.features[5]]
    with torch.no_grad():
        for a, b in ((convs[0], convs[1]), (convs[1], convs[2])):
            s = torch.tensor(2.0 ** rng.uniform(-5, 5, a.out_channels), dtype=torch.float32)
            a.weight.mul_(s.view(-1, 1, 1, 1))
            a.bias.mul_(s)
            b.weight.div_(s.view(1, -1, 1, 1))
    work = tmp_path_factory.mktemp("rescaled")
    export_float(model, (torch.zeros(4, 1, 8, 8),), work / "model.onnx", src)
    prepared = prepare_model(work / "model.onnx", work / "prep.onnx", min_opset=QDQ_MIN_OPSET)
    inputs = inspect_model(prepared).inputs
    ev = load_data(case.eval_path, inputs)
    calib = load_data(case.calib_path, inputs, metric="agreement")
    base, _ = evaluate_model(prepared, ev, latency_runs=0, as_reference=True)
    return prepared, ev, calib, float(base.metric or 0.0)


def test_each_recovery_recovers_part_of_the_int8_loss_on_rescaled_digits(
    rescaled: tuple[Path, Dataset, Dataset, float], tmp_path: Path
) -> None:
    prepared, ev, calib, base = rescaled

    def measured(recipe: object) -> tuple[float, int]:
        out = tmp_path / "m.onnx"
        apply_recipe(prepared, recipe, out, calib=calib, prepared=True)
        m, _ = evaluate_model(out, ev, latency_runs=0, baseline_metric=base)
        return float(m.accuracy_drop_pct or 0.0), m.size_bytes

    full, full_size = measured(StaticInt8Recipe())
    assert full > 3.0  # 8.1 points measured
    for recipe in (
        EqualizedInt8Recipe(),  # 0.0 measured
        Int16ActivationsRecipe(),  # 0.8 measured
        AdaRoundInt8Recipe(time_budget_s=10.0),  # 1.1 measured
    ):
        drop, size = measured(recipe)
        assert drop < full, recipe.label
        assert size == pytest.approx(full_size, rel=0.02), recipe.label


def test_sweep_runs_the_recoveries_when_the_goal_ranks_accuracy_and_the_best_fit_still_loses(
    rescaled: tuple[Path, Dataset, Dataset, float], tmp_path: Path
) -> None:
    """ "The most accurate under half the size": candidates that meet the size limit but lose points do not
    dominate a recovery at the int8 size, so the recoveries are measured, not skipped for 'a candidate already
    meets every limit'."""
    from optimizer.search.sweep import SweepOptions, noise_points, run_sweep
    from optimizer.types import Goal

    prepared, ev, calib, _ = rescaled
    goal = Goal(max_size_ratio=0.5, objective="accuracy", methods_requested=["quantize"])
    report = run_sweep(
        prepared,
        ev,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "sweep",
        options=SweepOptions(executor="serial", latency_runs=3, remeasure_runs=6, max_selective=2),
    )
    recoveries = (EqualizedInt8Recipe, AdaRoundInt8Recipe, Int16ActivationsRecipe)
    measured = [c for c in report.candidates if c.ok and c.metrics is not None]
    recovered = [c for c in measured if isinstance(c.recipe, recoveries)]
    others = [
        c.metrics.accuracy_drop_pct or 0.0
        for c in measured
        if not isinstance(c.recipe, recoveries)
        and c.metrics is not None
        and c.metrics.size_bytes <= 0.5 * report.baseline.size_bytes
    ]
    assert others and min(others) > noise_points(
        report.baseline.samples
    )  # the best fit without recovery loses
    assert recovered, report.skipped_reasons
    rec = report.candidate(report.recommended) if report.recommended else None
    assert rec is not None and rec.metrics is not None
    assert (rec.metrics.accuracy_drop_pct or 0.0) < min(others)


@pytest.mark.slow
def test_sweep_recovery_chosen_by_knapsack_stays_within_the_goals_size_limit(
    rescaled: tuple[Path, Dataset, Dataset, float], tmp_path: Path
) -> None:
    from optimizer.search.sweep import SweepOptions, run_sweep
    from optimizer.types import Goal

    prepared, ev, calib, _ = rescaled
    goal = Goal(max_size_ratio=0.45, max_accuracy_drop_pct=0.5)
    opts = SweepOptions(
        executor="serial", latency_runs=3, remeasure_runs=6, torch_recipes=False, max_selective=4
    )

    report = run_sweep(prepared, ev, calib=calib, goal=goal, out_dir=tmp_path / "sweep", options=opts)

    limit = 0.45 * report.baseline.size_bytes
    full = next(c for c in report.candidates if c.recipe == StaticInt8Recipe())
    assert full.metrics is not None and (full.metrics.accuracy_drop_pct or 0.0) > 0.5  # the recoveries run
    chosen = [c for c in report.candidates if "knapsack" in report.tried_reasons.get(c.id, "")]
    kinds = {c.recipe.kind for c in chosen}
    assert kinds == {"static_int8", "int16_activations"}, report.tried_reasons
    for c in chosen:
        assert c.ok and c.metrics is not None, c.error
        assert c.metrics.size_bytes <= limit, (c.id, c.metrics.size_bytes, limit)
        assert f"{(limit - full.metrics.size_bytes) / 1e3:.1f} KB" in report.tried_reasons[c.id]
    kept = next(c for c in chosen if c.recipe.kind == "static_int8")
    assert kept.recipe.keep_fp32  # the budget affords some layers in float, not all of them
    assert kept.metrics is not None and kept.metrics.size_bytes > full.metrics.size_bytes
