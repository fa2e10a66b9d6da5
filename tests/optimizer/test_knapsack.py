"""The size-budget knapsack over layers (optimizer/techniques/knapsack.py) and the proposals it drives."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimizer.models.inspect import inspect_model
from optimizer.techniques import registry
from optimizer.techniques.builtin import size_budget
from optimizer.techniques.knapsack import LayerItem, knapsack, select_layers
from optimizer.techniques.registry import GridContext
from optimizer.types import Int16ActivationsRecipe, LayerSensitivity, SensitivityReport, StaticInt8Recipe


def _greedy_by_ratio(items: list[LayerItem], budget: float) -> set[str]:
    out, spent = set(), 0.0
    for it in sorted(items, key=lambda it: -it.benefit / max(it.cost_bytes, 1e-9)):
        if spent + it.cost_bytes <= budget:
            out.add(it.name)
            spent += it.cost_bytes
    return out


def _top_k(items: list[LayerItem], budget: float) -> set[str]:
    """The most sensitive layers first, stopping at the first that does not fit (selective's top-k)."""
    out, spent = set(), 0.0
    for it in sorted(items, key=lambda it: -it.benefit):
        if spent + it.cost_bytes > budget:
            break
        out.add(it.name)
        spent += it.cost_bytes
    return out


def _benefit(items: list[LayerItem], names: set[str]) -> float:
    return sum(it.benefit for it in items if it.name in names)


def test_knapsack_beats_greedy_by_ratio_and_top_k_when_a_dense_layer_crowds_out_two() -> None:
    # "big" has the best benefit per byte and the highest benefit, but taking it leaves 400 bytes that fit
    # nothing; the two medium layers together fill the budget and remove more noise
    items = [
        LayerItem("big", 600.0, 7.0),
        LayerItem("mid1", 500.0, 5.0),
        LayerItem("mid2", 500.0, 5.0),
        LayerItem("small", 50.0, 0.01),
    ]
    budget = 1000.0

    chosen = knapsack(items, budget)

    assert _greedy_by_ratio(items, budget) == {"big", "small"}  # 7.01
    assert _top_k(items, budget) == {"big"}  # 7.0
    assert set(chosen.names) == {"mid1", "mid2"}
    assert chosen.benefit == pytest.approx(10.0)
    assert (
        chosen.benefit
        > _benefit(items, _greedy_by_ratio(items, budget))
        > _benefit(items, _top_k(items, budget))
    )
    assert chosen.cost_bytes <= budget


def test_knapsack_finds_the_exact_optimum_of_small_integer_instances() -> None:
    import itertools
    import random

    r = random.Random(4)
    for _ in range(20):
        items = [LayerItem(f"l{i}", float(r.randint(1, 60)), float(r.randint(0, 40))) for i in range(10)]
        budget = float(r.randint(20, 200))
        best = max(
            sum(it.benefit for it in combo)
            for n in range(len(items) + 1)
            for combo in itertools.combinations(items, n)
            if sum(it.cost_bytes for it in combo) <= budget
        )

        chosen = knapsack(items, budget)

        assert chosen.benefit == pytest.approx(best)
        assert chosen.cost_bytes <= budget


def test_knapsack_never_exceeds_the_budget_when_costs_do_not_fit_its_units() -> None:
    # uneven costs on a budget cut into 64 units of about 19 bytes: costs are rounded up, never down
    items = [LayerItem(f"l{i}", 1.0 + (i * 37) % 101 + 0.3, float((i * 53) % 97)) for i in range(200)]

    chosen = knapsack(items, 1234.5, resolution=64)

    assert 0 < chosen.cost_bytes <= 1234.5
    assert chosen.benefit > 0


def test_knapsack_takes_free_layers_and_nothing_on_a_zero_budget() -> None:
    items = [LayerItem("free", 0.0, 1.0), LayerItem("paid", 10.0, 5.0)]

    assert knapsack(items, 0.0).names == ("free",)
    assert knapsack(items, 10.0).names == ("free", "paid")
    with pytest.raises(ValueError):
        knapsack(items, -1.0)


def _report(*layers: tuple[str, float]) -> SensitivityReport:
    return SensitivityReport(
        model_path="m.onnx",
        method="sqnr",
        recipe="static_int8",
        calib_samples=8,
        seconds=0.1,
        model_passes=1,
        layers=[
            LayerSensitivity(name=n, op_type="Conv", rank=i + 1, sqnr_db=db)
            for i, (n, db) in enumerate(layers)
        ],
    )


def test_select_layers_prices_each_layer_by_its_parameters() -> None:
    # a: noise 0.1 but 1000 params; b and c: 0.05 each, 400 params; at 3 bytes a parameter a budget of 2400
    # bytes affords b + c (0.1) or a alone (0.1, 3000 bytes: over)
    report = _report(("a", 10.0), ("b", 13.0103), ("c", 13.0103))

    chosen = select_layers(report, {"a": 1000, "b": 400, "c": 400}, bytes_per_param=3.0, budget_bytes=2400.0)

    assert set(chosen.names) == {"b", "c"}
    assert chosen.cost_bytes == pytest.approx(2400.0)
    assert chosen.share == pytest.approx(0.5, abs=0.01)


def test_budgeted_proposals_fit_the_size_limit_and_fall_back_to_the_greedy_rule_without_one(
    cnn_path: Path,
) -> None:
    info = inspect_model(cnn_path)
    layers = [la for la in info.layers if la.op_type in ("Conv", "Gemm")]
    report = _report(*((la.name, 10.0 + 5 * i) for i, la in enumerate(layers)))
    int8 = registry.predict_size(StaticInt8Recipe(), registry.SizeBasis.of(info))
    # room for the smallest layer in fp32 and for more in 16-bit weights, not for everything
    smallest = min(la.param_count for la in layers)
    limit = int8 + 3.0 * smallest + 10.0

    with_limit = registry.propose_all(
        GridContext(info=info, sensitivity=report, has_calib=True, size_limit_bytes=limit)
    )
    without = registry.propose_all(GridContext(info=info, sensitivity=report, has_calib=True))

    budgeted = [p for p in with_limit if p.budgeted]
    assert {type(p.recipe) for p in budgeted} == {StaticInt8Recipe, Int16ActivationsRecipe}
    for p in budgeted:
        assert registry.predict_size(p.recipe, registry.SizeBasis.of(info)) <= limit + 1e-6, p.recipe.label
        assert "knapsack" in p.why and f"{(limit - int8) / 1e3:.1f} KB" in p.why
    assert size_budget(GridContext(info=info, size_limit_bytes=limit)) == pytest.approx(limit - int8)
    assert not any(p.budgeted for p in without)
    greedy = [p for p in without if isinstance(p.recipe, Int16ActivationsRecipe) and p.recipe.int16_layers]
    assert greedy and "no size limit" in greedy[0].why and not greedy[0].recipe.int16_weight_layers


def test_select_layers_caps_a_layer_whose_absurd_sqnr_would_drown_the_rest() -> None:
    # the PP-OCRv4 detector profiled one layer at -322 dB (its float output is about zero)
    report = _report(("dead", -322.0), ("a", 3.0), ("b", 5.0))

    chosen = select_layers(report, {"dead": 10, "a": 10, "b": 10}, bytes_per_param=1.0, budget_bytes=30.0)

    assert set(chosen.names) == {"dead", "a", "b"}
    assert chosen.total_benefit < 3.0
