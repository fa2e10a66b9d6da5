"""Speed in the goal checks and the recommendation: judged by the side-by-side interval, never by a point
estimate within the noise; a slower or hungrier recommendation is flagged in the reason's first sentence."""

from __future__ import annotations

import pytest

from optimizer.search.pareto import build_report, check_goal, recommend
from optimizer.types import Candidate, Fp16Recipe, Goal, Metrics, Recipe, SpeedComparison, StaticInt8Recipe

BASELINE = Metrics(
    size_bytes=100_000,
    metric_name="top1",
    metric=0.9,
    accuracy_drop_pct=0.0,
    latency_ms_p50=10.0,
    latency_ms_p95=12.0,
    peak_memory_bytes=1_000_000,
)


def speed(point: float, low: float, high: float) -> SpeedComparison:
    verdict = "faster" if low > 1 else "slower" if high < 1 else "same"
    return SpeedComparison(speedup=point, low=low, high=high, verdict=verdict, blocks=8, runs_per_block=5)  # type: ignore[arg-type]


def cand(
    cid: str,
    recipe: Recipe,
    size: int,
    drop: float,
    sp: SpeedComparison | None,
    *,
    p50: float | None = None,
    memory: int = 900_000,
) -> Candidate:
    p50 = p50 if p50 is not None else (10.0 / sp.speedup if sp else 10.0)
    return Candidate(
        id=cid,
        recipe=recipe,
        metrics=Metrics(
            size_bytes=size,
            metric_name="top1",
            metric=0.9 - drop / 100,
            accuracy_drop_pct=drop,
            latency_ms_p50=p50,
            latency_ms_p95=p50 * 1.2,
            peak_memory_bytes=memory,
        ),
        speed=sp,
    )


def test_check_goal_does_not_count_a_speed_up_within_noise_as_faster() -> None:
    # the fp16: 0.985x the original, and its trial p50 happened to be lower
    noisy = cand("fp16", Fp16Recipe(), 50_000, 0.1, speed(1.015, 0.97, 1.06), p50=9.0)
    [miss] = check_goal(noisy, Goal(objective="latency", max_accuracy_drop_pct=1.0), BASELINE)
    assert miss.constraint == "faster_than_original"
    assert "not measurably faster" in miss.text and "contains 1.0x" in miss.text
    # the same point estimate, beyond the noise, is faster
    sure = cand("q", StaticInt8Recipe(), 30_000, 0.1, speed(1.5, 1.3, 1.7))
    assert check_goal(sure, Goal(objective="latency"), BASELINE) == []


def test_check_goal_meets_min_speedup_only_when_the_interval_clears_it() -> None:
    goal = Goal(min_speedup=1.3)
    borderline = cand("b", StaticInt8Recipe(), 30_000, 0.0, speed(1.35, 1.22, 1.49))
    [miss] = check_goal(borderline, goal, BASELINE)
    assert miss.constraint == "min_speedup"
    assert miss.value == pytest.approx(1.35) and miss.over_by == pytest.approx(0.08)
    assert "95% interval 1.22-1.49x" in miss.text
    clear = cand("c", StaticInt8Recipe(), 30_000, 0.0, speed(1.6, 1.4, 1.8))
    assert check_goal(clear, goal, BASELINE) == []


def test_check_goal_names_a_candidate_measured_slower() -> None:
    slow = cand("s", StaticInt8Recipe(), 30_000, 0.0, speed(0.8, 0.75, 0.85))
    [miss] = check_goal(slow, Goal(max_latency_ms=100.0), BASELINE)
    assert miss.constraint == "faster_than_original"
    assert "1.25x slower than the original" in miss.text


def test_recommend_flags_a_slower_recommendation_in_the_first_sentence() -> None:
    slow = cand("s", StaticInt8Recipe(), 30_000, 0.0, speed(1 / 1.2, 0.8, 0.86), memory=2_300_000)
    rec = recommend([slow], BASELINE, Goal(max_size_mb=0.04, max_accuracy_drop_pct=1.0))
    assert rec.recommended == "s"
    first = rec.reason.split(". ")[0]
    assert "1.20x slower than the original" in first
    assert "2.3x the original's peak memory" in first
    assert [c.kind for c in rec.caveats] == ["slower", "more_memory"]
    report = build_report("m", BASELINE, [slow], Goal(max_size_mb=0.04), evaluations=1, grid_size=1)
    assert [c.kind for c in report.caveats] == ["slower", "more_memory"]


def test_recommend_flags_nothing_when_the_recommendation_is_as_fast_and_lighter() -> None:
    fine = cand("f", StaticInt8Recipe(), 30_000, 0.0, speed(1.01, 0.95, 1.07), memory=900_000)
    rec = recommend([fine], BASELINE, Goal(max_size_mb=0.04))
    assert rec.caveats == [] and "slower" not in rec.reason and "faster" not in rec.reason


def test_recommend_flags_a_clearly_slower_trial_when_it_was_not_remeasured() -> None:
    unmeasured = cand("u", StaticInt8Recipe(), 30_000, 0.0, None, p50=15.0)
    rec = recommend([unmeasured], BASELINE, Goal(max_size_mb=0.04))
    assert [c.kind for c in rec.caveats] == ["slower"]
    assert "not re-measured side by side" in rec.reason


def test_recommend_prefers_among_equals_the_one_not_slower_when_the_goal_is_not_about_speed() -> None:
    qdq = cand("qdq", StaticInt8Recipe(), 30_000, 0.0, speed(0.8, 0.75, 0.85))
    qop = cand("qop", StaticInt8Recipe(quant_format="qoperator"), 30_400, 0.0, speed(1.3, 1.2, 1.4))
    rec = recommend([qdq, qop], BASELINE, Goal(max_size_mb=0.04, objective="size"))
    assert rec.recommended == "qop"
    assert "chosen over qdq" in rec.reason and rec.caveats == []
    # not equal any more (20% larger): the smallest wins, and is flagged
    big_qop = cand("qop", StaticInt8Recipe(quant_format="qoperator"), 36_000, 0.0, speed(1.3, 1.2, 1.4))
    rec = recommend([qdq, big_qop], BASELINE, Goal(max_size_mb=0.04, objective="size"))
    assert rec.recommended == "qdq" and [c.kind for c in rec.caveats] == ["slower"]


def test_recommend_balanced_gives_no_speed_credit_within_noise() -> None:
    # same size and drop; a's point estimate says 1.1x but its interval contains 1.0x; b is 1.05x beyond noise
    a = cand("a", StaticInt8Recipe(), 30_000, 0.0, speed(1.1, 0.9, 1.3))
    b = cand("b", StaticInt8Recipe(calibration="entropy"), 30_000, 0.0, speed(1.05, 1.02, 1.08))
    assert recommend([a, b], BASELINE, Goal(max_size_mb=0.04)).recommended == "b"


def test_recommend_makes_no_faster_claim_when_every_speed_up_is_within_noise() -> None:
    noisy = [
        cand("fp16", Fp16Recipe(), 50_000, 0.1, speed(1.015, 0.97, 1.06), p50=9.0),
        cand("q", StaticInt8Recipe(), 30_000, 0.2, speed(1.04, 0.98, 1.10), p50=9.5),
    ]
    rec = recommend(noisy, BASELINE, Goal(objective="latency", max_accuracy_drop_pct=1.0))
    assert rec.recommended is None
    assert "not measurably faster" in rec.reason
    assert "x faster" not in rec.reason
