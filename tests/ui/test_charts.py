"""Charts from a hand-made ParetoReport; ``to_dict()`` validates every spec against the Vega-Lite schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from optimizer.search.pareto import ParetoReport, build_report
from optimizer.types import (
    Candidate,
    DynamicInt8Recipe,
    ErrorInfo,
    Fp16Recipe,
    Goal,
    Int4WeightOnlyRecipe,
    LayerSensitivity,
    Metrics,
    Recipe,
    SensitivityReport,
    StaticInt8Recipe,
)
from ui.charts import (
    before_after_rows,
    candidate_rows,
    latency_chart,
    pareto_chart,
    save_charts_html,
    sensitivity_chart,
    size_unit,
)

BASELINE = Metrics(
    size_bytes=100_000,
    metric_name="top1",
    metric=0.9,
    accuracy_drop_pct=0.0,
    latency_ms_p50=3.0,
    latency_ms_p95=4.0,
    peak_memory_bytes=2_000_000,
)


def cand(cid: str, recipe: Recipe, size: int, drop: float, p50: float | None) -> Candidate:
    return Candidate(
        id=cid,
        recipe=recipe,
        metrics=Metrics(
            size_bytes=size,
            metric_name="top1",
            metric=0.9 - drop / 100,
            accuracy_drop_pct=drop,
            latency_ms_p50=p50,
            latency_ms_p95=None if p50 is None else p50 * 1.5,
            peak_memory_bytes=1_000_000,
        ),
    )


def failed(cid: str) -> Candidate:
    return Candidate(
        id=cid,
        recipe=StaticInt8Recipe(per_channel=False),
        error=ErrorInfo(code="technique_failed", message="boom", hint="keep it fp32"),
    )


CANDIDATES = [
    cand("a", StaticInt8Recipe(), 30_000, 0.2, 1.5),
    cand("b", DynamicInt8Recipe(), 45_000, 0.1, 1.4),
    cand("c", Fp16Recipe(), 50_000, 0.0, 2.8),
    cand("d", Int4WeightOnlyRecipe(), 20_000, 3.0, 2.0),
    cand("f", DynamicInt8Recipe(per_channel=True), 60_000, 0.5, 2.9),
    failed("e"),
]
GOAL = Goal(max_size_mb=0.04, max_accuracy_drop_pct=1.0, objective="size", text="under 40 KB, <1% loss")


def make_report(
    candidates: list[Candidate] = CANDIDATES, goal: Goal | None = GOAL, **kw: Any
) -> ParetoReport:
    return build_report(
        "tiny.onnx", BASELINE, candidates, goal, evaluations=len(candidates), grid_size=8, **kw
    )


def layer(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The layer called ``name`` (inside a concatenation Altair suffixes names with ``_<n>``)."""
    found = [part for part in spec.get("layer", []) if re.fullmatch(rf"{name}(_\d+)?", part.get("name", ""))]
    assert len(found) == 1, f"expected one layer named {name!r}, got {[p.get('name') for p in spec['layer']]}"
    return found[0]


def names(spec: dict[str, Any]) -> list[str]:
    return [part.get("name", "") for part in spec["layer"]]


def values(spec: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
    data = part["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


def subtitle(spec: dict[str, Any]) -> str:
    sub = spec["title"]["subtitle"]
    return " | ".join(sub) if isinstance(sub, list) else str(sub)


# --------------------------------------------------------------------------- pareto_chart


def test_pareto_chart_plots_every_successful_candidate_and_no_failed_one() -> None:
    spec = pareto_chart(make_report()).to_dict()
    points = values(spec, layer(spec, "candidates"))
    assert [p["id"] for p in points] == ["d", "a", "b", "c", "f"]
    assert {p["id"]: p["size"] for p in points} == {"d": 20.0, "a": 30.0, "b": 45.0, "c": 50.0, "f": 60.0}
    assert layer(spec, "candidates")["encoding"]["color"]["field"] == "method"
    assert "1 failed (not plotted)" in subtitle(spec)


def test_pareto_chart_joins_the_front_in_size_order() -> None:
    report = make_report()
    spec = pareto_chart(report).to_dict()
    front = layer(spec, "front")
    rows = values(spec, front)
    assert [r["id"] for r in rows] == report.front == ["d", "a", "b", "c"]
    assert [r["order"] for r in rows] == [0, 1, 2, 3]
    assert front["mark"]["type"] == "line"
    assert front["encoding"]["order"]["field"] == "order"


def test_pareto_chart_marks_the_recommended_candidate() -> None:
    report = make_report()
    assert report.recommended == "a"
    spec = pareto_chart(report).to_dict()
    ring = layer(spec, "recommended")
    assert [r["id"] for r in values(spec, ring)] == ["a"]
    assert ring["mark"]["filled"] is False and ring["mark"]["size"] > 90
    assert [r["text"] for r in values(spec, layer(spec, "recommended_label"))] == ["recommended: a"]


def test_pareto_chart_shows_the_baseline_as_its_own_point() -> None:
    spec = pareto_chart(make_report()).to_dict()
    base = layer(spec, "baseline")
    [row] = values(spec, base)
    assert (row["id"], row["size"], row["drop"]) == ("original", 100.0, 0.0)
    assert base["mark"]["shape"] == "diamond"


def test_pareto_chart_shades_the_region_where_size_and_drop_limits_hold() -> None:
    spec = pareto_chart(make_report()).to_dict()
    [region] = values(spec, layer(spec, "goal_region"))
    assert region["x0"] == 0.0
    assert region["x1"] == pytest.approx(40.0)
    assert region["y1"] == pytest.approx(1.0)
    assert region["y0"] < 0.0
    assert values(spec, layer(spec, "size_limit"))[0]["size"] == pytest.approx(40.0)
    assert values(spec, layer(spec, "drop_limit"))[0]["drop"] == pytest.approx(1.0)


def test_pareto_chart_derives_the_size_bound_from_the_tighter_of_mb_and_ratio() -> None:
    spec = pareto_chart(make_report(goal=Goal(max_size_mb=0.05, max_size_ratio=0.35))).to_dict()
    [region] = values(spec, layer(spec, "goal_region"))
    assert region["x1"] == pytest.approx(35.0)
    assert region["y1"] == pytest.approx(3.0 + 0.15)  # no drop limit: spans every point (3 pt + 5 % padding)
    assert "drop_limit" not in names(spec)


def test_pareto_chart_draws_no_region_when_the_goal_has_no_limits() -> None:
    for goal in (None, Goal(objective="size")):
        spec = pareto_chart(make_report(goal=goal)).to_dict()
        assert not {"goal_region", "size_limit", "drop_limit"} & set(names(spec))


def test_pareto_chart_tooltips_carry_every_measurement() -> None:
    spec = pareto_chart(make_report()).to_dict()
    tooltip = layer(spec, "candidates")["encoding"]["tooltip"]
    fields = {t["field"] for t in tooltip}
    assert {"id", "label", "size_text", "metric_text", "drop", "p50", "p95"} <= fields
    assert next(t for t in tooltip if t["field"] == "metric_text")["title"] == "top1"
    row = next(r for r in values(spec, layer(spec, "candidates")) if r["id"] == "a")
    assert (row["label"], row["size_text"], row["p95"]) == ("static_int8-pc-minmax", "30 KB", 2.25)
    assert row["metric_text"] == "89.80%"  # top-1 as a percentage, as the answer and the tables write it


def test_pareto_chart_uses_megabytes_when_a_model_reaches_one_mb() -> None:
    big = [cand("m", StaticInt8Recipe(), 2_500_000, 0.1, 1.0)]
    baseline = BASELINE.model_copy(update={"size_bytes": 10_000_000})
    report = build_report("big.onnx", baseline, big, None, evaluations=1, grid_size=1)
    assert size_unit(report) == ("MB", 1e6)
    spec = pareto_chart(report).to_dict()
    assert values(spec, layer(spec, "candidates"))[0]["size"] == pytest.approx(2.5)
    assert layer(spec, "candidates")["encoding"]["x"]["title"] == "size (MB)"


@pytest.mark.parametrize("candidates", [[], [failed("e1"), failed("e2")]], ids=["empty", "all-failed"])
def test_pareto_chart_still_renders_when_nothing_succeeded(candidates: list[Candidate]) -> None:
    report = make_report(candidates=candidates)
    spec = pareto_chart(report).to_dict()
    assert values(spec, layer(spec, "candidates")) == []
    assert "front" not in names(spec) and "recommended" not in names(spec)
    assert "no candidate meets the goal" in subtitle(spec)
    if candidates:
        assert "2 failed (not plotted)" in subtitle(spec)
    latency_chart(report).to_dict()


# --------------------------------------------------------------------------- latency_chart


def test_latency_chart_plots_p50_with_p95_whiskers() -> None:
    spec = latency_chart(make_report()).to_dict()
    points = values(spec, layer(spec, "candidates"))
    assert {p["id"]: p["p50"] for p in points} == {"d": 2.0, "a": 1.5, "b": 1.4, "c": 2.8, "f": 2.9}
    whisker = layer(spec, "p95")
    assert whisker["encoding"]["y"]["field"] == "p50"
    assert whisker["encoding"]["y2"]["field"] == "p95"
    assert [r["id"] for r in values(spec, layer(spec, "recommended"))] == ["a"]
    assert values(spec, layer(spec, "baseline"))[0]["p50"] == 3.0


def test_latency_chart_draws_the_latency_and_speedup_limits() -> None:
    spec = latency_chart(make_report(goal=Goal(max_latency_ms=2.5, min_speedup=2.0))).to_dict()
    limits = values(spec, layer(spec, "latency_limit"))
    assert [r["p50"] for r in limits] == [2.5, 1.5]
    spec = latency_chart(make_report(goal=Goal(max_size_mb=1.0))).to_dict()
    assert "latency_limit" not in names(spec)


def test_latency_chart_leaves_out_untimed_candidates_and_says_so() -> None:
    report = make_report(candidates=[*CANDIDATES, cand("u", StaticInt8Recipe(), 10_000, 0.0, None)])
    spec = latency_chart(report).to_dict()
    assert "u" not in {p["id"] for p in values(spec, layer(spec, "candidates"))}
    assert "1 without a latency measurement" in subtitle(spec)


# --------------------------------------------------------------------------- sensitivity_chart


def sensitivity(n: int, *, exact_only: bool = False) -> SensitivityReport:
    layers = [
        LayerSensitivity(
            name=f"conv{i}",
            op_type="Conv" if i % 2 else "MatMul",
            sqnr_db=None if exact_only else 10.0 + i,
            exact_drop_pct=0.5 / i if exact_only or i == 1 else None,
            rank=i,
        )
        for i in range(n, 0, -1)  # deliberately out of rank order
    ]
    return SensitivityReport(
        model_path="tiny.onnx",
        method="exact" if exact_only else "sqnr",
        recipe="static_int8-pc-minmax",
        layers=layers,
        calib_samples=32,
        seconds=0.5,
        model_passes=2,
    )


def test_sensitivity_chart_shows_the_most_sensitive_layers_first() -> None:
    spec = sensitivity_chart(sensitivity(30), top=5).to_dict()
    rows = values(spec, spec)
    assert [r["name"] for r in rows] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert spec["encoding"]["y"]["sort"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert spec["encoding"]["x"]["field"] == "sqnr_db"
    assert rows[0]["sqnr_db"] == 11.0 and rows[0]["exact_drop_pct"] == 0.5
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {
        "name",
        "op_type",
        "sqnr_db",
        "exact_drop_pct",
    }
    assert "5 most sensitive of 30 layers" in subtitle(spec)


def test_sensitivity_chart_plots_the_exact_drop_when_no_sqnr_was_measured() -> None:
    spec = sensitivity_chart(sensitivity(3, exact_only=True)).to_dict()
    assert spec["encoding"]["x"]["field"] == "exact_drop_pct"
    assert [r["exact_drop_pct"] for r in values(spec, spec)] == pytest.approx([0.5, 0.25, 0.5 / 3])


def test_sensitivity_chart_sizes_its_height_per_layer_so_streamlit_cannot_collapse_it() -> None:
    # Streamlit lays charts out with autosize "fit": a fixed height that small squeezes the bars to nothing
    spec = sensitivity_chart(sensitivity(4)).to_dict()
    assert spec["height"] == {"step": 24}
    assert spec["encoding"]["y"]["axis"]["labelLimit"] >= 200


# --------------------------------------------------------------------------- before_after_rows


def test_before_after_rows_compare_the_original_with_the_recommended() -> None:
    rows = {r["metric"]: r for r in before_after_rows(make_report())}
    assert rows["candidate"]["recommended"] == "a"
    assert rows["size"] == {
        "metric": "size",
        "original": "100 KB",
        "recommended": "30 KB",
        "change": "3.3x smaller",
    }
    assert rows["top1"]["change"] == "-0.20 pt"
    assert rows["top1"]["recommended"] == "89.80%"  # one format per quantity: the text says 89.80% too
    assert rows["top1"]["original"] == "90.00%"
    assert rows["latency p50"]["change"] == "2.0x faster"
    assert rows["peak memory"]["change"] == "2.0x less"


def test_before_after_rows_use_the_nearest_when_nothing_is_recommended() -> None:
    report = make_report(goal=Goal(max_size_mb=0.015))
    assert report.recommended is None
    rows = {r["metric"]: r for r in before_after_rows(report)}
    assert rows["candidate"]["recommended"] == "d (nearest; misses the goal)"
    assert rows["size"]["change"] == "5.0x smaller"


def test_before_after_rows_say_slower_and_larger_when_worse() -> None:
    slow = cand("s", Fp16Recipe(), 120_000, 0.0, 3.6)
    rows = {r["metric"]: r for r in before_after_rows(make_report(candidates=[slow], goal=None))}
    assert rows["size"]["change"] == "1.2x larger"
    assert rows["latency p50"]["change"] == "1.2x slower"
    assert rows["top1"]["change"] == "+0.00 pt"


def test_before_after_rows_fill_only_the_original_when_nothing_succeeded() -> None:
    rows = before_after_rows(make_report(candidates=[failed("e")]))
    assert rows[0]["recommended"] == "none"
    assert all(r["recommended"] == "—" for r in rows[1:])
    assert rows[1]["original"] == "100 KB"


# --------------------------------------------------------------------------- HTML


def embedded_spec(html: str) -> dict[str, Any]:
    match = re.search(r"var spec = (\{.*?\});\n", html, re.S)
    assert match, "no Vega-Lite spec in the page"
    return json.loads(match.group(1))


def test_save_charts_html_writes_one_page_with_the_full_spec(tmp_path: Path) -> None:
    report = make_report(sensitivity=sensitivity(4))
    out = save_charts_html(report, tmp_path / "report.html", inline=False)
    html = out.read_text(encoding="utf-8")
    spec = embedded_spec(html)
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert len(spec["vconcat"]) == 3
    assert spec["title"]["text"] == "QuantTaaS: tiny.onnx"
    assert spec["title"]["subtitle"] == [report.reason]
    first = spec["vconcat"][0]
    ids = {r["id"] for r in values(spec, layer(first, "candidates"))}
    assert ids == {"a", "b", "c", "d", "f"}


def test_save_charts_html_leaves_out_sensitivity_when_the_report_has_none(tmp_path: Path) -> None:
    out = save_charts_html(make_report(), tmp_path / "r.html", inline=False)
    assert len(embedded_spec(out.read_text(encoding="utf-8"))["vconcat"]) == 2


def test_candidate_rows_flag_front_and_recommended() -> None:
    rows = {r["id"]: r for r in candidate_rows(make_report())}
    assert set(rows) == {"a", "b", "c", "d", "f"}
    assert [i for i, r in rows.items() if r["on_front"]] == ["d", "a", "b", "c"]
    assert [i for i, r in rows.items() if r["recommended"]] == ["a"]


def test_pareto_chart_states_the_goal_in_the_users_units() -> None:
    sub = subtitle(pareto_chart(make_report()).to_dict())
    assert "goal: under 40 KB, at most 1% accuracy loss" in sub and "0.04 MB" not in sub
