"""The Pareto front, goal checks and the recommendation, on hand-made candidate sets (no model is built)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from optimizer.errors import NotFoundError
from optimizer.search.pareto import (
    ConstraintMiss,
    ParetoReport,
    allowed,
    build_report,
    check_goal,
    drop_limit_pct,
    format_bytes,
    pareto_front,
    recipe_methods,
    recipe_precision,
    recommend,
    size_limit_bytes,
)
from optimizer.types import (
    Candidate,
    DynamicInt8Recipe,
    ErrorInfo,
    Fp16Recipe,
    Goal,
    Int4WeightOnlyRecipe,
    Metrics,
    PruneChannelsRecipe,
    QatInt8Recipe,
    Recipe,
    StaticInt8Recipe,
)

BASELINE = Metrics(
    size_bytes=100_000,
    metric_name="top1",
    metric=0.9,
    accuracy_drop_pct=0.0,
    latency_ms_p50=3.0,
    latency_ms_p95=4.0,
)


def cand(
    cid: str,
    recipe: Recipe,
    size: int,
    drop: float | None,
    p50: float | None,
) -> Candidate:
    metric = None if drop is None else BASELINE.metric - drop / 100  # type: ignore[operator]
    return Candidate(
        id=cid,
        recipe=recipe,
        metrics=Metrics(
            size_bytes=size,
            metric_name="top1",
            metric=metric,
            accuracy_drop_pct=drop,
            latency_ms_p50=p50,
            latency_ms_p95=None if p50 is None else p50 * 1.25,
        ),
    )


def failed(cid: str) -> Candidate:
    return Candidate(
        id=cid,
        recipe=StaticInt8Recipe(per_channel=False),
        error=ErrorInfo(
            code="technique_failed", message="onnxruntime refused the graph", hint="keep it fp32"
        ),
    )


# Four candidates, all on the front, each best for one objective (see test_recommend_picks_by_objective):
#   size -> d, latency -> b, accuracy -> c, balanced (no limits) -> a.
A = cand("a", StaticInt8Recipe(), 30_000, 0.2, 1.5)
B = cand("b", DynamicInt8Recipe(), 45_000, 0.1, 1.4)
C = cand("c", Fp16Recipe(), 50_000, 0.0, 2.8)
D = cand("d", Int4WeightOnlyRecipe(), 20_000, 3.0, 2.0)
F = cand("f", DynamicInt8Recipe(per_channel=True), 60_000, 0.5, 2.9)  # dominated by a
E = failed("e")
SET = [A, B, C, D, F, E]


# --------------------------------------------------------------------------- pareto_front


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    assert pareto_front(SET) == ["d", "a", "b", "c"]


def test_pareto_front_drops_a_point_dominated_on_every_objective() -> None:
    worse = cand("w", StaticInt8Recipe(), 30_001, 0.2, 1.5)  # a is smaller, equal elsewhere
    assert pareto_front([A, worse]) == ["a"]


def test_pareto_front_keeps_identical_points_when_tied() -> None:
    twin = cand("a2", StaticInt8Recipe(calibration="entropy"), 30_000, 0.2, 1.5)
    assert pareto_front([twin, A]) == ["a", "a2"]


def test_pareto_front_orders_by_size_then_id() -> None:
    x = cand("x", Fp16Recipe(), 10_000, 1.0, 1.0)
    y = cand("y", Fp16Recipe(), 10_000, 0.5, 2.0)
    z = cand("z", Fp16Recipe(), 5_000, 2.0, 3.0)
    assert pareto_front([y, x, z]) == ["z", "x", "y"]


def test_pareto_front_excludes_failed_candidates() -> None:
    assert pareto_front([E, failed("e2")]) == []
    assert "e" not in pareto_front(SET)


def test_pareto_front_excludes_candidates_when_an_objective_is_missing() -> None:
    untimed = cand("u", StaticInt8Recipe(), 1_000, 0.0, None)  # would dominate everything on size and drop
    assert pareto_front([A, untimed]) == ["a"]
    assert pareto_front([A, untimed], objectives=("size_bytes", "accuracy_drop_pct")) == ["u"]


def test_pareto_front_uses_only_the_given_objectives() -> None:
    assert pareto_front(SET, objectives=("size_bytes",)) == ["d"]
    assert pareto_front(SET, objectives=("latency_ms_p50",)) == ["b"]


def test_pareto_front_is_the_same_for_every_input_order() -> None:
    fronts = {tuple(pareto_front(list(p))) for p in itertools.permutations(SET)}
    assert fronts == {("d", "a", "b", "c")}


# --------------------------------------------------------------------------- recipes against the goal


def test_recipe_methods_maps_quantizers_and_pruners() -> None:
    assert recipe_methods(StaticInt8Recipe()) == {"quantize"}
    assert recipe_methods(Int4WeightOnlyRecipe()) == {"quantize"}
    assert recipe_methods(SimpleNamespace(kind="prune_magnitude")) == {"prune"}


def test_recipe_methods_unions_the_steps_of_a_chained_recipe() -> None:
    chain = SimpleNamespace(kind="chain", steps=[SimpleNamespace(kind="prune_magnitude"), StaticInt8Recipe()])
    assert recipe_methods(chain) == {"prune", "quantize"}
    assert recipe_precision(chain) == "int8"


def test_recipe_precision_maps_each_kind() -> None:
    assert [recipe_precision(r) for r in (StaticInt8Recipe(), DynamicInt8Recipe())] == ["int8", "int8"]
    assert recipe_precision(Int4WeightOnlyRecipe()) == "int4"
    assert recipe_precision(Fp16Recipe()) == "fp16"
    assert recipe_precision(SimpleNamespace(kind="prune_magnitude")) is None


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("int8", {"a", "b", "f"}), ("int4", {"d"}), ("fp16", {"c"})],
)
def test_allowed_keeps_only_the_goal_precision(precision: str, expected: set[str]) -> None:
    goal = Goal(precision=precision)  # type: ignore[arg-type]
    assert {c.id for c in SET if c.ok and allowed(c, goal)} == expected


def test_allowed_applies_allowed_and_forbidden_methods() -> None:
    assert not allowed(A, Goal(methods_allowed=["prune"]))
    assert allowed(A, Goal(methods_allowed=["quantize"]))
    assert not allowed(A, Goal(methods_forbidden=["quantize"]))
    assert allowed(A, Goal(methods_forbidden=["prune"]))
    pruned = Candidate.model_construct(id="p", recipe=SimpleNamespace(kind="prune_magnitude"))
    assert not allowed(pruned, Goal(methods_forbidden=["prune"]))
    assert not allowed(pruned, Goal(precision="int8"))


def test_allowed_is_true_when_there_is_no_goal() -> None:
    assert allowed(D, None)


# --------------------------------------------------------------------------- check_goal


def test_check_goal_returns_nothing_when_every_limit_is_met() -> None:
    goal = Goal(
        max_size_mb=0.04, max_size_ratio=0.5, max_accuracy_drop_pct=1.0, max_latency_ms=2.0, min_speedup=1.5
    )
    assert check_goal(A, goal, BASELINE) == []


def test_check_goal_reports_a_size_miss_in_mb_with_its_phrase() -> None:
    big = cand("big", DynamicInt8Recipe(), 52_100, 0.0, 1.0)
    [miss] = check_goal(big, Goal(max_size_mb=0.04), BASELINE)
    assert miss.constraint == "max_size_mb"
    assert (miss.limit, miss.unit) == (0.04, "MB")
    assert miss.value == pytest.approx(0.0521)
    assert miss.over_by == pytest.approx(0.0121)
    assert miss.over_by_pct == pytest.approx(30.25)
    assert miss.text == "size 52.1 KB is 12.1 KB over the 40 KB limit"


def test_check_goal_reports_a_size_ratio_miss() -> None:
    [miss] = check_goal(B, Goal(max_size_ratio=0.4), BASELINE)
    assert miss.constraint == "max_size_ratio"
    assert miss.value == pytest.approx(0.45)
    assert miss.over_by == pytest.approx(0.05)
    assert miss.over_by_pct == pytest.approx(12.5)
    assert "0.45x the original" in miss.text and "5 KB over" in miss.text


def test_check_goal_reports_an_accuracy_drop_miss() -> None:
    [miss] = check_goal(D, Goal(max_accuracy_drop_pct=1.0), BASELINE)
    assert (miss.constraint, miss.value, miss.unit) == ("max_accuracy_drop_pct", 3.0, "pt")
    assert miss.over_by == pytest.approx(2.0)
    assert miss.over_by_pct == pytest.approx(200.0)
    assert miss.text == "accuracy drop 3.00 pt is 2.00 pt over the 1.0 pt limit"


def test_check_goal_reports_latency_and_speedup_misses() -> None:
    misses = check_goal(C, Goal(max_latency_ms=2.0, min_speedup=1.5), BASELINE)
    by_name = {m.constraint: m for m in misses}
    assert set(by_name) == {"max_latency_ms", "min_speedup"}
    assert by_name["max_latency_ms"].over_by == pytest.approx(0.8)
    assert by_name["max_latency_ms"].over_by_pct == pytest.approx(40.0)
    speedup = by_name["min_speedup"]
    assert speedup.value == pytest.approx(3.0 / 2.8)
    assert speedup.over_by == pytest.approx(1.5 - 3.0 / 2.8)
    assert "short of the 1.5x minimum speed-up" in speedup.text


def test_check_goal_counts_a_missing_metric_as_a_miss() -> None:
    unmeasured = cand("u", StaticInt8Recipe(), 10_000, None, None)
    misses = check_goal(unmeasured, Goal(max_accuracy_drop_pct=1.0, max_latency_ms=5.0), BASELINE)
    assert [m.constraint for m in misses] == ["max_accuracy_drop_pct", "max_latency_ms"]
    assert all(m.value is None and m.over_by is None for m in misses)
    assert "accuracy drop was not measured" in misses[0].text
    assert "latency was not measured" in misses[1].text


def test_check_goal_reports_a_failed_candidate_as_unmeasured() -> None:
    [miss] = check_goal(E, Goal(max_size_mb=1.0), BASELINE)
    assert miss.constraint == "measured"
    assert "technique_failed" in miss.text


def test_check_goal_marks_a_slower_candidate_when_the_goal_is_about_speed() -> None:
    slow = cand("slow", StaticInt8Recipe(), 10_000, 0.0, 3.5)
    assert check_goal(slow, Goal(max_size_mb=1.0), BASELINE) == []
    [miss] = check_goal(slow, Goal(max_size_mb=1.0, objective="latency"), BASELINE)
    assert miss.constraint == "faster_than_original"
    assert (miss.limit, miss.value) == (3.0, 3.5)
    assert miss.over_by == pytest.approx(0.5)
    assert "slower than the original" in miss.text


def test_check_goal_marks_an_equally_fast_candidate_when_the_goal_is_about_speed() -> None:
    same = cand("same", StaticInt8Recipe(), 10_000, 0.0, 3.0)
    [miss] = check_goal(same, Goal(max_latency_ms=10.0), BASELINE)
    assert miss.constraint == "faster_than_original"
    assert miss.over_by == 0.0


def test_check_goal_does_not_repeat_slowness_when_min_speedup_already_misses() -> None:
    slow = cand("slow", StaticInt8Recipe(), 10_000, 0.0, 3.5)
    assert [m.constraint for m in check_goal(slow, Goal(min_speedup=1.2), BASELINE)] == ["min_speedup"]


def test_size_limit_bytes_takes_the_tighter_of_mb_and_ratio() -> None:
    assert size_limit_bytes(Goal(max_size_mb=0.04), BASELINE) == pytest.approx(40_000)
    assert size_limit_bytes(Goal(max_size_ratio=0.3), BASELINE) == pytest.approx(30_000)
    assert size_limit_bytes(Goal(max_size_mb=0.04, max_size_ratio=0.5), BASELINE) == pytest.approx(40_000)
    assert size_limit_bytes(Goal(max_accuracy_drop_pct=1.0), BASELINE) is None


def test_format_bytes_uses_readable_decimal_units() -> None:
    assert [format_bytes(n) for n in (512, 40_000, 52_100, 1_500_000, 123_456_789)] == [
        "512 B",
        "40 KB",
        "52.1 KB",
        "1.5 MB",
        "123 MB",
    ]


# --------------------------------------------------------------------------- recommend


@pytest.mark.parametrize(
    ("objective", "expected"),
    [("size", "d"), ("latency", "b"), ("accuracy", "c"), ("balanced", "a")],
)
def test_recommend_picks_by_objective_when_the_goal_sets_no_limits(objective: str, expected: str) -> None:
    rec = recommend(SET, BASELINE, Goal(objective=objective))  # type: ignore[arg-type]
    assert rec.recommended == expected
    assert rec.reason.startswith("The goal set no limits")
    assert rec.nearest == []


def test_recommend_explains_the_choice_with_the_measured_numbers() -> None:
    rec = recommend(SET, BASELINE, Goal(max_size_mb=0.05, max_accuracy_drop_pct=1.0, objective="size"))
    assert rec.recommended == "a"
    assert rec.feasible == ["a", "b", "c"]
    assert rec.reason == (
        "a (static_int8-pc-minmax) meets every limit (30 KB <= 50 KB, drop 0.20 pt <= 1.0 pt) "
        "and is the smallest (30 KB, drop 0.20 pt) of 3 candidates that do."
    )


def test_recommend_weighs_the_drop_by_the_allowed_drop_when_balanced() -> None:
    # a: 0.30 + 0.50 + 0.20/0.25 = 1.60; b: 0.45 + 0.47 + 0.10/0.25 = 1.32; c: 0.50 + 0.93 + 0 = 1.43
    rec = recommend(SET, BASELINE, Goal(max_accuracy_drop_pct=0.25))
    assert rec.feasible == ["a", "b", "c"]
    assert rec.recommended == "b"
    assert "best balance" in rec.reason


def test_recommend_breaks_ties_by_size_then_drop_then_id() -> None:
    x2 = cand("x2", StaticInt8Recipe(), 10_000, 0.5, 1.0)
    x1 = cand("x1", StaticInt8Recipe(calibration="entropy"), 10_000, 0.5, 1.0)
    y = cand("y", Fp16Recipe(), 10_000, 0.5, 0.9)  # faster, same size and drop
    for objective in ("size", "accuracy", "balanced"):
        rec = recommend([x2, x1], BASELINE, Goal(objective=objective))  # type: ignore[arg-type]
        assert rec.recommended == "x1", objective
    assert recommend([x2, x1, y], BASELINE, Goal(objective="size")).recommended == "x1"
    assert recommend([x2, x1, y], BASELINE, Goal(objective="latency")).recommended == "y"


def test_recommend_returns_nearest_with_how_far_each_misses_when_the_goal_is_infeasible() -> None:
    rec = recommend(SET, BASELINE, Goal(max_size_mb=0.015))
    assert rec.recommended is None
    assert rec.feasible == []
    assert [n.candidate_id for n in rec.nearest] == ["d", "a", "b"]
    first = rec.nearest[0]
    [miss] = first.misses
    assert miss.over_by == pytest.approx(0.005)
    assert miss.over_by_pct == pytest.approx(100 / 3)
    assert first.score == pytest.approx(1 / 3)
    assert rec.nearest[1].misses[0].over_by == pytest.approx(0.015)
    assert rec.reason == (
        "No candidate meets every limit of the goal; the nearest, d, misses because "
        "size 20 KB is 5 KB over the 15 KB limit."
    )


def test_recommend_ranks_nearest_by_total_relative_miss() -> None:
    # a: size 30 KB over 15 KB (100 %) + drop 0.2 over 0.05 (300 %) = 4.0
    # d: size 20 KB over 15 KB (33 %) + drop 3.0 over 0.05 (5900 %) = 59.33
    rec = recommend([D, A], BASELINE, Goal(max_size_mb=0.015, max_accuracy_drop_pct=0.05))
    assert [(n.candidate_id, round(n.score, 2)) for n in rec.nearest] == [("a", 4.0), ("d", 59.33)]
    assert [m.constraint for m in rec.nearest[0].misses] == ["max_size_mb", "max_accuracy_drop_pct"]


def test_recommend_never_recommends_a_slower_candidate_when_the_goal_is_about_speed() -> None:
    slow_small = cand("s", StaticInt8Recipe(), 10_000, 0.0, 3.5)  # smaller than all, slower than the original
    candidates = [slow_small, A, D]
    assert recommend(candidates, BASELINE, Goal(max_size_mb=0.1, objective="size")).recommended == "s"
    rec = recommend(candidates, BASELINE, Goal(max_size_mb=0.1, max_latency_ms=10.0, objective="size"))
    assert rec.recommended == "d"
    assert "s" not in rec.feasible


def test_recommend_gives_nearest_with_slowness_when_every_candidate_is_slower() -> None:
    slow = [cand("s1", StaticInt8Recipe(), 10_000, 0.0, 3.5), cand("s2", Fp16Recipe(), 50_000, 0.0, 3.1)]
    rec = recommend(slow, BASELINE, Goal(objective="latency"))
    assert rec.recommended is None
    assert [n.candidate_id for n in rec.nearest] == ["s2", "s1"]
    assert rec.nearest[0].misses[0].constraint == "faster_than_original"
    assert "slower than the original (3.00 ms)" in rec.reason


def test_recommend_meets_min_speedup() -> None:
    rec = recommend(SET, BASELINE, Goal(min_speedup=1.5, objective="size"))
    assert rec.feasible == ["d", "a", "b"]  # c (2.8 ms) and f (2.9 ms) are under 1.5x
    assert rec.recommended == "d"
    assert "speed-up 1.50x >= 1.5x" in rec.reason


def test_recommend_applies_precision_and_method_filters() -> None:
    assert recommend(SET, BASELINE, Goal(precision="int8", objective="size")).recommended == "a"
    assert recommend(SET, BASELINE, Goal(precision="fp16", objective="size")).recommended == "c"
    rec = recommend(SET, BASELINE, Goal(methods_allowed=["prune"]))
    assert rec.recommended is None
    assert rec.nearest == []
    assert "methods prune" in rec.reason


def test_recommend_limits_nearest_to_allowed_candidates() -> None:
    rec = recommend(SET, BASELINE, Goal(max_size_mb=0.001, precision="int8"))
    assert [n.candidate_id for n in rec.nearest] == ["a", "b", "f"]


def test_recommend_returns_none_when_every_candidate_failed() -> None:
    rec = recommend([E, failed("e2")], BASELINE, Goal(max_size_mb=1.0))
    assert rec.recommended is None
    assert (
        rec.reason == "No candidate was measured successfully (2 failed), so there is nothing to recommend."
    )


def test_recommend_treats_no_goal_as_balanced_without_limits() -> None:
    rec = recommend(SET, BASELINE, None)
    assert rec.recommended == "a"
    assert rec.reason.startswith("The goal set no limits")


def test_recommend_is_the_same_for_every_input_order() -> None:
    goal = Goal(max_size_mb=0.05, max_accuracy_drop_pct=1.0)
    results = {recommend(list(p), BASELINE, goal).model_dump_json() for p in itertools.permutations(SET)}
    assert len(results) == 1


# --------------------------------------------------------------------------- the report


def test_build_report_computes_front_and_recommendation() -> None:
    goal = Goal(max_size_mb=0.05, max_accuracy_drop_pct=1.0, objective="size")
    report = build_report("tiny.onnx", BASELINE, SET, goal, evaluations=6, grid_size=9, wall_seconds=1.5)
    assert report.front == ["d", "a", "b", "c"]
    assert report.recommended == "a"
    assert report.reason.startswith("a (static_int8-pc-minmax) meets every limit")
    assert (report.evaluations, report.grid_size, report.wall_seconds) == (6, 9, 1.5)
    assert [c.id for c in report.failed] == ["e"]


def test_build_report_ranks_on_size_and_drop_when_latency_was_not_measured() -> None:
    untimed = [cand("u1", StaticInt8Recipe(), 10_000, 1.0, None), cand("u2", Fp16Recipe(), 50_000, 0.0, None)]
    untimed.append(cand("u3", DynamicInt8Recipe(), 60_000, 0.5, None))
    report = build_report("m", BASELINE, untimed, None, evaluations=3, grid_size=3)
    assert report.front == ["u1", "u2"]


def test_pareto_report_candidate_finds_by_id_and_raises_for_unknown() -> None:
    report = build_report("m", BASELINE, SET, None, evaluations=6, grid_size=6)
    assert report.candidate("c") == C
    with pytest.raises(NotFoundError) as info:
        report.candidate("zzz")
    assert info.value.code == "not_found"


def test_pareto_report_rejects_a_front_naming_unknown_candidates() -> None:
    with pytest.raises(ValidationError, match="unknown candidate ids"):
        ParetoReport(
            model="m",
            baseline=BASELINE,
            candidates=[A],
            front=["ghost"],
            recommended=None,
            goal=None,
            reason="",
            evaluations=1,
            grid_size=1,
        )


def test_pareto_report_round_trips_through_json() -> None:
    report = build_report(
        "m",
        BASELINE,
        SET,
        Goal(max_size_mb=0.015),
        evaluations=6,
        grid_size=8,
        skipped=["g"],
        skipped_reasons={"g": "larger than every int8 candidate"},
    )
    again = ParetoReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert again.nearest[0].misses[0] == ConstraintMiss.model_validate(
        report.nearest[0].misses[0].model_dump()
    )
    assert again.skipped_reasons == {"g": "larger than every int8 candidate"}
    assert not math.isnan(again.nearest[0].score)


# --------------------------------------------------------------------------- limits against the original (issue 14)


def with_memory(c: Candidate, peak: int | None) -> Candidate:
    assert c.metrics is not None
    return c.model_copy(update={"metrics": c.metrics.model_copy(update={"peak_memory_bytes": peak})})


def test_check_goal_reports_a_metric_floor_miss_on_the_metrics_own_scale() -> None:
    goal = Goal(min_metric=0.899)
    assert check_goal(C, goal, BASELINE) == []  # 0.900
    [miss] = check_goal(A, goal, BASELINE)  # 0.898
    assert (miss.constraint, miss.unit, miss.limit) == ("min_metric", "metric", 0.899)
    assert miss.value == pytest.approx(0.898)
    assert miss.over_by == pytest.approx(0.001)
    assert miss.text == "top1 0.898 is 0.001 below the 0.899 floor"


def test_check_goal_reports_a_metric_ratio_miss_against_the_original() -> None:
    goal = Goal(min_metric_ratio=0.99)  # 0.891 of the original's 0.9
    assert check_goal(A, goal, BASELINE) == []
    [miss] = check_goal(D, goal, BASELINE)  # 0.87
    assert (miss.constraint, miss.unit) == ("min_metric_ratio", "x")
    assert miss.value == pytest.approx(0.87 / 0.9)
    assert "short of the 0.99x-of-the-original floor (0.891)" in miss.text
    unknown = BASELINE.model_copy(update={"metric": None})
    [miss] = check_goal(A, goal, unknown)
    assert miss.value is None and "was not measured" in miss.text


def test_check_goal_reports_a_size_reduction_shortfall() -> None:
    goal = Goal(min_size_reduction_mb=0.06)  # 60 KB off the original's 100 KB
    assert check_goal(A, goal, BASELINE) == []  # 70 KB saved
    [miss] = check_goal(B, goal, BASELINE)  # 55 KB saved
    assert (miss.constraint, miss.unit) == ("min_size_reduction_mb", "MB")
    assert miss.value == pytest.approx(0.055)
    assert miss.over_by == pytest.approx(0.005)
    assert (
        miss.text
        == "size 45 KB is only 55 KB smaller than the original (100 KB), 5 KB short of the 60 KB reduction asked for"
    )


def test_check_goal_reads_the_memory_limit_from_peak_memory() -> None:
    goal = Goal(max_memory_mb=2.0)
    assert check_goal(with_memory(A, 1_500_000), goal, BASELINE) == []
    [miss] = check_goal(with_memory(A, 2_500_000), goal, BASELINE)
    assert (miss.constraint, miss.value, miss.over_by) == ("max_memory_mb", 2.5, pytest.approx(0.5))
    assert miss.text == "peak memory 2.5 MB is 500 KB over the 2 MB memory limit"
    [miss] = check_goal(with_memory(A, None), goal, BASELINE)
    assert miss.value is None and "peak memory was not measured" in miss.text


def test_check_goal_allows_a_slower_candidate_within_the_latency_ratio() -> None:
    goal = Goal(max_latency_ratio=1.1)  # the original's 3.0 ms may grow to 3.3 ms
    a_bit_slower = cand("s", StaticInt8Recipe(), 10_000, 0.0, 3.2)
    assert check_goal(a_bit_slower, goal, BASELINE) == []  # not a speed goal: no faster_than_original
    [miss] = check_goal(cand("t", StaticInt8Recipe(), 10_000, 0.0, 3.6), goal, BASELINE)
    assert (miss.constraint, miss.unit) == ("max_latency_ratio", "x")
    assert miss.value == pytest.approx(1.2)
    assert "1.20x the original's 3.00 ms, over the 1.1x-the-original latency limit (3.30 ms)" in miss.text


def test_check_goal_latency_ratio_below_one_is_a_speed_goal() -> None:
    slow = cand("s", StaticInt8Recipe(), 10_000, 0.0, 3.2)
    assert [m.constraint for m in check_goal(slow, Goal(max_latency_ratio=0.5), BASELINE)] == [
        "max_latency_ratio"
    ]


def test_check_goal_reports_a_latency_increase_over_the_allowance() -> None:
    goal = Goal(max_latency_increase_ms=0.5)
    assert check_goal(cand("s", StaticInt8Recipe(), 10_000, 0.0, 3.4), goal, BASELINE) == []
    [miss] = check_goal(cand("t", StaticInt8Recipe(), 10_000, 0.0, 3.75), goal, BASELINE)
    assert (miss.constraint, miss.unit) == ("max_latency_increase_ms", "ms")
    assert miss.value == pytest.approx(0.75) and miss.over_by == pytest.approx(0.25)


def test_check_goal_reports_a_latency_reduction_shortfall_once() -> None:
    goal = Goal(min_latency_reduction_ms=1.0)
    assert check_goal(A, goal, BASELINE) == []  # 3.0 -> 1.5 ms
    [miss] = check_goal(C, goal, BASELINE)  # 3.0 -> 2.8 ms
    assert (miss.constraint, miss.value) == ("min_latency_reduction_ms", pytest.approx(0.2))
    assert "only 0.20 ms faster than the original (3.00 ms)" in miss.text
    slower = cand("s", StaticInt8Recipe(), 10_000, 0.0, 3.5)
    [miss] = check_goal(slower, goal, BASELINE)  # slowness is said by this miss, not again
    assert miss.constraint == "min_latency_reduction_ms" and "not faster than" in miss.text


def test_size_limit_bytes_converts_a_size_reduction_with_the_original() -> None:
    assert size_limit_bytes(Goal(min_size_reduction_mb=0.06), BASELINE) == pytest.approx(40_000)
    assert size_limit_bytes(Goal(min_size_reduction_mb=0.06, max_size_ratio=0.3), BASELINE) == pytest.approx(
        30_000
    )
    assert size_limit_bytes(Goal(min_size_reduction_mb=1.0), BASELINE) == 0.0


def test_drop_limit_pct_converts_metric_floors_with_the_original() -> None:
    assert drop_limit_pct(Goal(min_metric=0.85), BASELINE) == pytest.approx(5.0)
    assert drop_limit_pct(Goal(min_metric_ratio=0.99), BASELINE) == pytest.approx(0.9)
    assert drop_limit_pct(Goal(min_metric=0.85, max_accuracy_drop_pct=2.0), BASELINE) == pytest.approx(2.0)
    assert drop_limit_pct(Goal(min_metric=0.95), BASELINE) == pytest.approx(-5.0)  # only a gain would do
    assert drop_limit_pct(Goal(max_size_mb=1.0), BASELINE) is None
    assert drop_limit_pct(Goal(min_metric=0.85), BASELINE.model_copy(update={"metric": None})) is None


def test_recommend_treats_a_metric_floor_as_a_limit() -> None:
    rec = recommend(SET, BASELINE, Goal(min_metric=0.896, objective="size"))
    assert rec.feasible == ["a", "b", "c"]  # d (0.87) and f (0.895) miss the floor
    assert rec.recommended == "a"
    assert "top1 0.898 >= 0.896" in rec.reason


def test_allowed_filters_forbidden_precisions() -> None:
    goal = Goal(precision_forbidden=["fp16", "int4"])
    assert [c.id for c in SET if allowed(c, goal)] == ["a", "b", "f", "e"]
    assert recommend(SET, BASELINE, Goal(precision_forbidden=["int8", "int4"])).recommended == "c"


def test_allowed_counts_qat_as_quantization_that_trains() -> None:
    qat = Candidate(id="q", recipe=QatInt8Recipe())
    assert recipe_methods(qat.recipe) == {"quantize", "qat"}
    assert allowed(qat, Goal(methods_allowed=["quantize"]))  # "only quantization" still allows QAT
    assert not allowed(qat, Goal(methods_forbidden=["qat"]))  # "post-training only"
    assert allowed(A, Goal(methods_forbidden=["qat"]))
    assert allowed(qat, Goal(methods_allowed=["qat"]))  # "only QAT": QAT recipes and nothing else
    assert not allowed(A, Goal(methods_allowed=["qat"]))
    assert not allowed(qat, Goal(methods_allowed=["prune"]))


def test_recommend_uses_a_fallback_method_only_when_nothing_else_meets_the_goal() -> None:
    pruned = cand("p", PruneChannelsRecipe(amount=0.5), 10_000, 0.1, 1.0)  # best on every count
    goal = Goal(max_size_mb=0.05, methods_fallback=["prune"], objective="size")
    rec = recommend([*SET, pruned], BASELINE, goal)
    assert rec.recommended == "d"  # int4 meets it without pruning
    assert "p" in rec.feasible and "held back" in rec.reason
    tight = goal.with_changes(max_size_mb=0.015)
    assert recommend([*SET, pruned], BASELINE, tight).recommended == "p"
    assert recommend([*SET, pruned], BASELINE, goal.with_changes(methods_fallback=None)).recommended == "p"
