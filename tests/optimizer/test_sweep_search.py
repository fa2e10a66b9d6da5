"""The directed search on real digits-cnn sweeps: the one-liners are always candidates, skips cite only
measurements, a failed anchor lets the alternatives run, and memory is planned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optimizer import zoo
from optimizer.measure.data import Dataset, load_data
from optimizer.models.inspect import inspect_model
from optimizer.search.pareto import ParetoReport
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.search.trial import run_trial
from optimizer.types import Candidate, ErrorInfo, Goal, StaticInt8Recipe

SERIAL = SweepOptions(executor="serial", latency_runs=5, remeasure_runs=10)


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


@pytest.fixture(scope="module")
def digits_data(digits: zoo.ZooCase) -> tuple[Dataset, Dataset]:
    inputs = inspect_model(digits.model_path).inputs
    return load_data(digits.eval_path, inputs), load_data(digits.calib_path, inputs, metric="agreement")


def _sweep(digits: zoo.ZooCase, data, goal: Goal, out: Path, **kw) -> ParetoReport:
    return run_sweep(digits.model_path, data[0], calib=data[1], goal=goal, out_dir=out, options=SERIAL, **kw)


def _assert_every_skip_cites_a_measurement(report: ParetoReport) -> None:
    measured = {c.id for c in report.candidates if c.ok}
    for item, reason in report.skipped_reasons.items():
        cites = set(re.findall(r"c\d\d-[\w.\-]+", reason)) - {item}
        assert "predicted size" in reason or (cites and cites <= measured | {item}), (item, reason)
        assert cites <= measured | {item} or "predicted size" in reason, (item, reason)


def test_sweep_recommends_the_one_liner_when_only_it_meets_the_goal(
    digits, digits_data, tmp_path: Path
) -> None:
    # onnxruntime's quantize_dynamic with its defaults writes the smallest file on this model (33.9 KB); every
    # recipe of the directed search is larger: without the one-liner as a candidate this goal read "infeasible"
    report = _sweep(digits, digits_data, Goal(max_size_mb=0.034, max_accuracy_drop_pct=1.0), tmp_path)
    assert report.recommended is not None, report.reason
    best = report.candidate(report.recommended)
    assert best.recipe.kind == "ort_dynamic_default"
    own = [c for c in report.candidates if c.ok and not c.recipe.kind.startswith("ort_")]
    assert own and all(report.misses[c.id] for c in own), "the directed search's own candidates must all miss"
    _assert_every_skip_cites_a_measurement(report)


def test_sweep_runs_the_alternatives_when_the_anchor_it_relied_on_fails(
    digits, digits_data, tmp_path: Path
) -> None:
    def anchor_fails(spec, inputs):
        if spec.recipe == StaticInt8Recipe():
            return Candidate(
                id=spec.id,
                recipe=spec.recipe,
                error=ErrorInfo(code="technique_failed", message="injected upstream failure", hint=""),
            ), None
        return run_trial(spec, inputs)

    goal = Goal(max_accuracy_drop_pct=1.0, objective="size")
    report = _sweep(digits, digits_data, goal, tmp_path, trial_fn=anchor_fails)
    failed = next(c for c in report.candidates if c.recipe == StaticInt8Recipe())
    assert failed.error is not None
    ran = {c.recipe.label for c in report.candidates if c.ok}
    # what the failed anchor would have justified skipping (its other calibrations, per-tensor) ran instead
    assert {"static_int8-pc-entropy", "static_int8-pc-percentile", "static_int8-pt-minmax"} <= ran
    assert not any(failed.id in r for r in report.skipped_reasons.values()), (
        "a failed candidate justifies nothing"
    )
    assert report.recommended is not None
    _assert_every_skip_cites_a_measurement(report)


def test_sweep_never_claims_full_int8_meets_the_limits_when_it_misses_the_speed_limit(
    digits, digits_data, tmp_path: Path
) -> None:
    goal = Goal(min_speedup=50.0, max_accuracy_drop_pct=10.0, objective="latency")
    report = _sweep(digits, digits_data, goal, tmp_path)
    full = next(c for c in report.candidates if c.recipe == StaticInt8Recipe())
    assert report.misses[full.id], "full int8 cannot be 50x faster"
    for item, reason in report.skipped_reasons.items():
        assert "meets every limit" not in reason and "already meets the limits" not in reason, (item, reason)
    calib_skips = [r for i, r in report.skipped_reasons.items() if "entropy" in i or "percentile" in i]
    assert calib_skips and all("same graph" in r and "speed-up" in r for r in calib_skips)
    _assert_every_skip_cites_a_measurement(report)


@pytest.mark.parametrize(
    "goal",
    [
        Goal(max_size_mb=0.04, max_accuracy_drop_pct=1.0),
        Goal(max_accuracy_drop_pct=2.0, objective="size"),
        Goal(max_size_ratio=0.5, objective="accuracy"),
    ],
    ids=["balanced", "size", "accuracy"],
)
def test_every_skip_cites_a_measured_candidate_or_a_size_prediction(
    digits, digits_data, tmp_path: Path, goal: Goal
) -> None:
    report = _sweep(digits, digits_data, goal, tmp_path)
    _assert_every_skip_cites_a_measurement(report)
    assert {"ort_dynamic_default", "ort_static_default"} <= {c.recipe.kind for c in report.candidates}
    assert any(n.startswith("memory plan:") for n in report.notes)
