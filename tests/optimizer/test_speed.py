"""Side-by-side latency and the speed-up interval: a candidate is faster or slower only beyond the noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from optimizer.goals.parse import parse_goal
from optimizer.measure.data import Dataset, load_data, save_data
from optimizer.measure.evaluate import make_session
from optimizer.measure.speed import (
    BlockTimes,
    compare_speedup,
    latency_feed,
    measure_side_by_side,
    speedups,
    t_quantile,
)
from optimizer.models.inspect import inspect_model
from optimizer.search.pareto import recommend
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.types import Goal


def _blocks(medians: list[float], rng: np.random.Generator, spread: float = 0.02) -> BlockTimes:
    """Five runs per block around each block's median (multiplicative noise of ``spread``)."""
    return BlockTimes(tuple(tuple(m * (1 + spread * rng.standard_normal(5))) for m in medians))


def test_t_quantile_matches_student_t() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(7) == pytest.approx(2.365)
    assert t_quantile(30) == pytest.approx(2.042)
    assert 1.96 < t_quantile(200) < 1.98
    with pytest.raises(ValueError):
        t_quantile(0)


def test_compare_speedup_is_faster_when_the_interval_is_above_one() -> None:
    rng = np.random.default_rng(0)
    # the background load moves both models together from block to block; the ratio stays 2
    load = [1.0, 1.4, 0.9, 2.0, 1.1, 1.3, 1.0, 1.6]
    original = _blocks([10.0 * x for x in load], rng)
    candidate = _blocks([5.0 * x for x in load], rng)
    sp = compare_speedup(original, candidate)
    assert sp.verdict == "faster"
    assert sp.low > 1.0 and sp.low < 2.0 < sp.high
    assert sp.speedup == pytest.approx(2.0, rel=0.05)
    assert (sp.blocks, sp.runs_per_block) == (8, 5)
    assert "faster than the original" in sp.text


def test_compare_speedup_makes_no_claim_within_noise() -> None:
    rng = np.random.default_rng(1)
    original = _blocks([10.0, 10.4, 9.6, 10.2, 9.9, 10.1], rng)
    # 3% faster on average, but the block ratios scatter by more than that
    candidate = _blocks([9.3, 10.6, 9.9, 9.2, 10.0, 9.8], rng)
    sp = compare_speedup(original, candidate)
    assert sp.speedup > 1.0
    assert sp.low < 1.0 < sp.high
    assert sp.verdict == "same"
    assert "within noise" in sp.text and "faster" not in sp.text


def test_compare_speedup_is_slower_when_the_interval_is_below_one() -> None:
    rng = np.random.default_rng(2)
    original = _blocks([10.0] * 6, rng)
    candidate = _blocks([12.0] * 6, rng)
    sp = compare_speedup(original, candidate)
    assert sp.verdict == "slower" and sp.high < 1.0
    assert 1 / sp.speedup == pytest.approx(1.2, rel=0.05)
    assert sp.text.startswith(f"{1 / sp.speedup:.2f}x slower than the original")


def test_compare_speedup_uses_the_block_medians_so_one_preempted_run_does_not_move_it() -> None:
    rng = np.random.default_rng(3)
    original = _blocks([10.0] * 6, rng)
    candidate = _blocks([5.0] * 6, rng)
    spoiled = BlockTimes(((*candidate.blocks[0][:4], 500.0), *candidate.blocks[1:]))
    assert compare_speedup(original, spoiled).speedup == pytest.approx(
        compare_speedup(original, candidate).speedup, rel=0.02
    )


def test_compare_speedup_needs_paired_blocks() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError):
        compare_speedup(_blocks([1.0, 1.0, 1.0], rng), _blocks([1.0, 1.0], rng))
    with pytest.raises(ValueError):
        compare_speedup(_blocks([1.0], rng), _blocks([1.0], rng))


def _data(x: np.ndarray) -> Dataset:
    return Dataset("in-memory", {"x": x}, None, "fidelity", {})


def test_latency_feed_repeats_samples_up_to_the_batch(cnn_path: Path) -> None:
    session = make_session(cnn_path)
    x = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 1, 16, 16)
    feed = latency_feed(session, _data(x), 5)
    assert feed["x"].shape == (5, 1, 16, 16)
    np.testing.assert_array_equal(feed["x"][2], x[0])
    assert latency_feed(session, _data(x), 1)["x"].shape == (1, 1, 16, 16)


def test_measure_side_by_side_times_every_model_in_every_block(cnn_path: Path, mlp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((4, 1, 16, 16)).astype(np.float32)
    times = measure_side_by_side(
        {"a": cnn_path, "b": cnn_path}, _data(x), threads=1, batch_size=2, blocks=3, runs_per_block=2
    )
    assert [len(t.blocks) for t in times.values()] == [3, 3]
    assert all(len(b) == 2 and all(v > 0 for v in b) for t in times.values() for b in t.blocks)
    sp = speedups(times, "a")
    assert list(sp) == ["b"] and math.isfinite(sp["b"].speedup)


# --------------------------------------------------------------------------- a speed goal on a real convnet


@pytest.mark.slow
def test_speed_goal_on_a_real_convnet_recommends_a_candidate_whose_interval_clears_the_limit(
    tmp_path: Path,
) -> None:
    """SqueezeNet (the onnx wheel's light zoo, random weights: speed and size only) with "at least 1.3x faster":
    the recommendation's speed-up interval is above the limit, and measuring its file again, independently,
    agrees by the same rule. QOperator and per-tensor int8 were built because the goal is about speed."""
    from optimizer.zoo.light import build_light_model

    model = build_light_model("squeezenet", tmp_path / "squeezenet.onnx")
    name = inspect_model(model).inputs[0].name
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
    save_data(tmp_path / "eval.npz", {name: x[:4]}, metric="agreement")
    save_data(tmp_path / "calib.npz", {name: x[4:]}, metric="agreement")
    inputs = inspect_model(model).inputs
    data = load_data(tmp_path / "eval.npz", inputs)
    calib = load_data(tmp_path / "calib.npz", inputs, metric="agreement")
    goal = parse_goal("at least 1.3x faster, int8, on 1 thread")
    assert goal.min_speedup == pytest.approx(1.3) and goal.threads == 1

    report = run_sweep(
        model,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "out",
        options=SweepOptions(executor="serial", profile=False, latency_runs=5, remeasure_runs=16),
    )

    assert report.recommended is not None, report.reason
    best = report.candidate(report.recommended)
    assert best.speed is not None and best.speed.low >= 1.3, best.speed
    assert report.measurement is not None and report.measurement.threads == 1
    assert best.id in report.measurement.remeasured
    kinds = {
        (c.recipe.quant_format, c.recipe.per_channel)
        for c in report.candidates
        if c.recipe.kind == "static_int8"
    }  # type: ignore[attr-defined]
    assert {("qdq", True), ("qoperator", True), ("qoperator", False), ("qdq", False)} <= kinds
    assert any("QOperator" in why for why in report.tried_reasons.values())

    # measured again, on its own: the same rule holds
    again = measure_side_by_side(
        {"original": model, "best": str(best.model_path)},
        data,
        threads=1,
        batch_size=1,
        blocks=6,
        runs_per_block=3,
    )
    independent = speedups(again, "original")["best"]
    assert independent.low >= 1.3, independent

    # a candidate measured slower (dynamic int8 of Conv: ConvInteger) is flagged when a goal without speed
    # would recommend it
    slower = [c for c in report.candidates if c.speed is not None and c.speed.verdict == "slower"]
    for c in slower:
        rec = recommend([c], report.baseline, Goal(max_size_ratio=0.9))
        assert rec.recommended == c.id
        first = rec.reason.split(". ")[0]
        assert "slower than the original" in first
        assert [x.kind for x in rec.caveats][:1] == ["slower"]
