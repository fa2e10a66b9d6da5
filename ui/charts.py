"""Pure functions from a :class:`~optimizer.search.pareto.ParetoReport` to Altair charts (no Streamlit here).

Every chart is a Vega-Lite spec; each layer carries a ``name`` (``candidates``, ``front``, ``recommended``,
``baseline``, ``goal_region``, ...) so that tests and the page can find the part they need in ``to_dict()``.
Failed candidates have no numbers and are not plotted; the titles say how many there were.

HTML export (:func:`save_charts_html`): Altair writes a page that embeds the whole Vega-Lite spec as JSON
and loads vega, vega-lite and vega-embed from a CDN (jsDelivr), so the file is written offline but needs the
network to render. A fully self-contained page (``inline=True``) needs ``vl-convert-python``, which is not a
dependency of this project; when it is importable the page is written inline, otherwise with the CDN scripts.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt

from optimizer.search.pareto import ParetoReport, size_limit_bytes
from optimizer.types import Candidate, Metrics, SensitivityReport
from optimizer.units import format_bytes
from ui.summary import goal_text, metric_text, size_text

__all__ = [
    "before_after_rows",
    "candidate_rows",
    "latency_chart",
    "pareto_chart",
    "save_charts_html",
    "sensitivity_chart",
    "size_unit",
]

WIDTH = 560
HEIGHT = 340
_REGION_COLOR = "#2ca02c"
_LIMIT_COLOR = "#d62728"
_MARK_COLOR = "#111111"
_NA = "—"
_DROP_TITLE = "accuracy drop (pt, lower is better)"


# --------------------------------------------------------------------------- data rows


def size_unit(report: ParetoReport) -> tuple[str, float]:
    """The readable size unit: ``("MB", 1e6)`` when anything reaches 1 MB, else ``("KB", 1e3)``."""
    sizes = [report.baseline.size_bytes] + [c.metrics.size_bytes for c in report.candidates if c.metrics]
    return ("MB", 1e6) if max(sizes) >= 1e6 else ("KB", 1e3)


def _clean(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _row(c: Candidate, m: Metrics, report: ParetoReport, scale: float) -> dict[str, Any]:
    return {
        "id": c.id,
        "label": c.recipe.label,
        "method": c.recipe.kind,
        "size": m.size_bytes / scale,
        "size_bytes": m.size_bytes,
        "size_text": size_text(m.size_bytes, report.goal),
        "metric": _clean(m.metric),
        "metric_text": metric_text(report.baseline.metric_name, _clean(m.metric)),
        "drop": _clean(m.accuracy_drop_pct),
        "p50": _clean(m.latency_ms_p50),
        "p95": _clean(m.latency_ms_p95),
        "on_front": c.id in report.front,
        "recommended": c.id == report.recommended,
    }


def candidate_rows(report: ParetoReport) -> list[dict[str, Any]]:
    """One plain dict per successful candidate (sizes in :func:`size_unit`), ordered by size then id."""
    _, scale = size_unit(report)
    rows = [_row(c, c.metrics, report, scale) for c in report.candidates if c.ok and c.metrics is not None]
    return sorted(rows, key=lambda r: (r["size_bytes"], r["id"]))


def _baseline_row(report: ParetoReport, scale: float) -> dict[str, Any]:
    b = report.baseline
    return {
        "id": "original",
        "label": "original (fp32)",
        "size": b.size_bytes / scale,
        "size_text": size_text(b.size_bytes, report.goal),
        "metric": _clean(b.metric),
        "metric_text": metric_text(b.metric_name, _clean(b.metric)),
        "drop": 0.0,
        "p50": _clean(b.latency_ms_p50),
        "p95": _clean(b.latency_ms_p95),
    }


def _methods(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({str(r["method"]) for r in rows})


def _color(rows: Sequence[dict[str, Any]]) -> alt.Color:
    methods = _methods(rows)
    scale = alt.Scale(domain=methods, scheme="tableau10") if methods else alt.Scale(scheme="tableau10")
    return alt.Color("method:N", title="method", scale=scale)


def _tooltips(report: ParetoReport) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("id:N", title="candidate"),
        alt.Tooltip("label:N", title="recipe"),
        alt.Tooltip("size_text:N", title="size"),
        alt.Tooltip("metric_text:N", title=report.baseline.metric_name),
        alt.Tooltip("drop:Q", title="accuracy drop (pt)", format=".2f"),
        alt.Tooltip("p50:Q", title="latency p50 (ms)", format=".3f"),
        alt.Tooltip("p95:Q", title="latency p95 (ms)", format=".3f"),
        alt.Tooltip("on_front:N", title="on the Pareto front"),
    ]


def _data(rows: Sequence[dict[str, Any]]) -> alt.Data:
    return alt.Data(values=list(rows))


def _counts_line(report: ParetoReport, plotted: int, what: str) -> str:
    failed = len(report.failed)
    line = f"{plotted} {what}, {len(report.front)} on the Pareto front"
    if failed:
        line += f", {failed} failed (not plotted)"
    return line


# --------------------------------------------------------------------------- the Pareto chart


def _region_bounds(
    report: ParetoReport, rows: Sequence[dict[str, Any]], scale: float
) -> dict[str, float] | None:
    """Where the size and accuracy-drop limits both hold, in chart units; None without limits."""
    goal = report.goal
    size_limit = size_limit_bytes(goal, report.baseline)
    drop_limit = goal.max_accuracy_drop_pct if goal is not None else None
    if size_limit is None and drop_limit is None:
        return None
    sizes = [report.baseline.size_bytes / scale] + [float(r["size"]) for r in rows]
    drops = [0.0] + [float(r["drop"]) for r in rows if r["drop"] is not None]
    pad = max((max(drops) - min(drops)) * 0.05, 0.1)
    return {
        "x0": 0.0,
        "x1": size_limit / scale if size_limit is not None else max(sizes) * 1.05,
        "y0": min(drops) - pad,
        "y1": drop_limit if drop_limit is not None else max(drops) + pad,
    }


def _x(unit: str) -> alt.X:
    return alt.X("size:Q", title=f"size ({unit})", scale=alt.Scale(zero=True))


def _marks(
    report: ParetoReport, rows: Sequence[dict[str, Any]], scale: float, y: alt.Y, y_field: str
) -> list[alt.Chart]:
    """The baseline point and the recommended ring, shared by both scatter charts."""
    unit_x = _x(size_unit(report)[0])
    layers: list[alt.Chart] = []
    base = _baseline_row(report, scale)
    if base[y_field] is not None:
        base_data = _data([base])
        point = alt.Chart(base_data, name="baseline").mark_point(
            shape="diamond", size=180, filled=True, color=_MARK_COLOR
        )
        layers.append(
            point.encode(
                x=unit_x,
                y=y,
                tooltip=[
                    alt.Tooltip("label:N", title="candidate"),
                    alt.Tooltip("size_text:N", title="size"),
                    alt.Tooltip("metric_text:N", title=report.baseline.metric_name),
                    alt.Tooltip("p50:Q", title="latency p50 (ms)", format=".3f"),
                    alt.Tooltip("p95:Q", title="latency p95 (ms)", format=".3f"),
                ],
            )
        )
        text = alt.Chart(base_data, name="baseline_label").mark_text(
            align="left", dx=10, dy=10, color=_MARK_COLOR
        )
        layers.append(text.encode(x=unit_x, y=y, text=alt.Text("id:N")))
    rec = [r for r in rows if r["recommended"] and r[y_field] is not None]
    if rec:
        ring = alt.Chart(_data(rec), name="recommended").mark_point(
            size=520, filled=False, strokeWidth=3, color=_MARK_COLOR
        )
        layers.append(ring.encode(x=unit_x, y=y, tooltip=_tooltips(report)))
        label_rows = [{**r, "text": f"recommended: {r['id']}"} for r in rec]
        label = alt.Chart(_data(label_rows), name="recommended_label").mark_text(
            align="left", dx=16, dy=-16, fontWeight="bold", color=_MARK_COLOR
        )
        layers.append(label.encode(x=unit_x, y=y, text=alt.Text("text:N")))
    return layers


def pareto_chart(report: ParetoReport) -> alt.LayerChart:
    """Size against accuracy drop for every successful candidate, the front joined by a line, the recommended
    candidate ringed and labelled, the original as a black diamond and the goal's size/drop limits as a
    shaded region (where both hold) with dashed rules. Raises nothing; an empty or all-failed report gives an
    empty plot.
    """
    unit, scale = size_unit(report)
    rows = candidate_rows(report)
    x = _x(unit)
    y = alt.Y("drop:Q", title=_DROP_TITLE)
    layers: list[alt.Chart] = []

    bounds = _region_bounds(report, rows, scale)
    if bounds is not None:
        region = alt.Chart(_data([bounds]), name="goal_region").mark_rect(opacity=0.12, color=_REGION_COLOR)
        layers.append(
            region.encode(
                x=alt.X("x0:Q", title=f"size ({unit})"),
                x2="x1:Q",
                y=alt.Y("y0:Q", title=_DROP_TITLE),
                y2="y1:Q",
            )
        )
        goal = report.goal
        size_limit = size_limit_bytes(goal, report.baseline)
        if size_limit is not None:
            rule = alt.Chart(
                _data(
                    [{"size": size_limit / scale, "text": f"size limit {size_text(size_limit, report.goal)}"}]
                ),
                name="size_limit",
            ).mark_rule(strokeDash=[6, 4], color=_LIMIT_COLOR)
            layers.append(rule.encode(x=x, tooltip=[alt.Tooltip("text:N", title="limit")]))
        if goal is not None and goal.max_accuracy_drop_pct is not None:
            text = f"drop limit {goal.max_accuracy_drop_pct:g} pt"
            rule = alt.Chart(
                _data([{"drop": goal.max_accuracy_drop_pct, "text": text}]), name="drop_limit"
            ).mark_rule(strokeDash=[6, 4], color=_LIMIT_COLOR)
            layers.append(rule.encode(y=y, tooltip=[alt.Tooltip("text:N", title="limit")]))

    front_rows = [
        {**r, "order": i} for i, r in enumerate(r for r in rows if r["on_front"] and r["drop"] is not None)
    ]
    if front_rows:
        line = alt.Chart(_data(front_rows), name="front").mark_line(color="#7f7f7f", strokeWidth=1.5)
        layers.append(line.encode(x=x, y=y, order=alt.Order("order:Q")))

    points = alt.Chart(_data([r for r in rows if r["drop"] is not None]), name="candidates").mark_point(
        filled=True, size=90, opacity=0.9
    )
    layers.append(points.encode(x=x, y=y, color=_color(rows), tooltip=_tooltips(report)))
    layers += _marks(report, rows, scale, y, "drop")

    plotted = sum(1 for r in rows if r["drop"] is not None)
    subtitle = [_counts_line(report, plotted, "candidates")]
    if report.goal is not None:
        subtitle.append(f"goal: {goal_text(report.goal, report.baseline)}")  # in the user's units
        if bounds is not None:
            subtitle.append("shaded: where the size and accuracy-drop limits both hold")
    if report.recommended is None:
        subtitle.append("no candidate meets the goal")
    title = alt.TitleParams(text="Size vs accuracy drop", subtitle=subtitle, anchor="start")
    return alt.LayerChart(layer=layers, title=title, width=WIDTH, height=HEIGHT)


# --------------------------------------------------------------------------- the latency chart


def latency_chart(report: ParetoReport) -> alt.LayerChart:
    """Median latency against size (p95 as a whisker above each point), coloured by method like
    :func:`pareto_chart`, with the original, the recommended candidate and the goal's latency limit (a rule at
    ``max_latency_ms`` and one at original p50 / ``min_speedup``). A layered chart because the marks overlay.
    """
    unit, scale = size_unit(report)
    rows = candidate_rows(report)
    timed = [r for r in rows if r["p50"] is not None]
    x = _x(unit)
    y = alt.Y("p50:Q", title="latency p50 (ms, lower is better)", scale=alt.Scale(zero=True))
    layers: list[alt.Chart] = []

    whiskers = [r for r in timed if r["p95"] is not None]
    if whiskers:
        bar = alt.Chart(_data(whiskers), name="p95").mark_rule(opacity=0.6)
        layers.append(bar.encode(x=x, y=y, y2="p95:Q", color=_color(rows), tooltip=_tooltips(report)))
    points = alt.Chart(_data(timed), name="candidates").mark_point(filled=True, size=90, opacity=0.9)
    layers.append(points.encode(x=x, y=y, color=_color(rows), tooltip=_tooltips(report)))

    goal, base_p50 = report.goal, report.baseline.latency_ms_p50
    limits: list[dict[str, Any]] = []
    if goal is not None and goal.max_latency_ms is not None:
        limits.append({"p50": goal.max_latency_ms, "text": f"latency limit {goal.max_latency_ms:g} ms"})
    if goal is not None and goal.min_speedup is not None and base_p50:
        limits.append(
            {"p50": base_p50 / goal.min_speedup, "text": f"{goal.min_speedup:g}x faster than the original"}
        )
    if limits:
        rule = alt.Chart(_data(limits), name="latency_limit").mark_rule(strokeDash=[6, 4], color=_LIMIT_COLOR)
        layers.append(rule.encode(y=y, tooltip=[alt.Tooltip("text:N", title="limit")]))
    layers += _marks(report, rows, scale, y, "p50")

    subtitle = [_counts_line(report, len(timed), "timed candidates")]
    untimed = len(rows) - len(timed)
    if untimed:
        subtitle.append(f"{untimed} without a latency measurement (not plotted)")
    first = next((c.metrics for c in report.candidates if c.metrics is not None), report.baseline)
    subtitle.append(f"measured on {first.backend}, {first.threads} thread(s), batch {first.batch_size}")
    title = alt.TitleParams(text="Latency vs size", subtitle=subtitle, anchor="start")
    return alt.LayerChart(layer=layers, title=title, width=WIDTH, height=HEIGHT)


# --------------------------------------------------------------------------- sensitivity


def sensitivity_chart(sens: SensitivityReport, top: int = 20) -> alt.Chart:
    """Horizontal bars of the ``top`` most sensitive layers, most sensitive at the top.

    Bar length is the layer's SQNR in dB (lower = more error = more sensitive); when no layer has an SQNR (an
    exact-only profile) it is the exact metric drop in points instead. Tooltips carry both when present.
    """
    layers = sorted(sens.layers, key=lambda layer: (layer.rank, layer.name))[: max(top, 0)]
    rows = [
        {
            "name": layer.name,
            "op_type": layer.op_type,
            "rank": layer.rank,
            "sqnr_db": _clean(layer.sqnr_db),
            "exact_drop_pct": _clean(layer.exact_drop_pct),
        }
        for layer in layers
    ]
    by_sqnr = any(r["sqnr_db"] is not None for r in rows) or not any(
        r["exact_drop_pct"] is not None for r in rows
    )
    field, title = ("sqnr_db", "SQNR (dB, lower = more sensitive)")
    if not by_sqnr:
        field, title = ("exact_drop_pct", "metric drop with the layer quantized (pt)")
    subtitle = [
        f"{sens.method} profile of {sens.recipe} on {sens.calib_samples} samples; "
        f"the {len(rows)} most sensitive of {len(sens.layers)} layers"
    ]
    chart = alt.Chart(_data(rows), name="sensitivity").mark_bar()
    return chart.encode(
        x=alt.X(f"{field}:Q", title=title),
        y=alt.Y("name:N", title="layer", sort=[str(r["name"]) for r in rows], axis=alt.Axis(labelLimit=280)),
        color=alt.Color("op_type:N", title="op type"),
        tooltip=[
            alt.Tooltip("rank:Q", title="rank"),
            alt.Tooltip("name:N", title="layer"),
            alt.Tooltip("op_type:N", title="op type"),
            alt.Tooltip("sqnr_db:Q", title="SQNR (dB)", format=".2f"),
            alt.Tooltip("exact_drop_pct:Q", title="exact drop (pt)", format=".3f"),
        ],
    ).properties(
        title=alt.TitleParams(text="Most sensitive layers", subtitle=subtitle, anchor="start"),
        width=WIDTH,
        height=alt.Step(24),  # a band per layer: a fixed height collapses under Streamlit's autosize "fit"
    )


# --------------------------------------------------------------------------- before / after table


def _times(before: float, after: float, less: str, more: str) -> str:
    if after <= 0 or before <= 0:
        return ""
    if math.isclose(before, after, rel_tol=0.005):
        return "about the same"
    return f"{before / after:.1f}x {less}" if after < before else f"{after / before:.1f}x {more}"


def _ms(x: float | None) -> str:
    return _NA if x is None else f"{x:.3f} ms"


def before_after_rows(report: ParetoReport) -> list[dict[str, str]]:
    """Rows ``{metric, original, recommended, change}`` comparing the original with the recommended candidate
    (or, when none meets the goal, the nearest one, named so in the first row). Empty values read "—".
    Raises nothing; with neither a recommendation nor a nearest candidate only the original is filled in.
    """
    base = report.baseline
    target: Candidate | None = None
    name = "none"
    if report.recommended is not None:
        target = report.candidate(report.recommended)
        name = target.id
    elif report.nearest:
        target = report.candidate(report.nearest[0].candidate_id)
        name = f"{target.id} (nearest; misses the goal)"
    m = target.metrics if target is not None else None
    rows = [{"metric": "candidate", "original": "original", "recommended": name, "change": ""}]

    size_after = size_text(m.size_bytes, report.goal) if m else _NA
    size_change = _times(base.size_bytes, m.size_bytes, "smaller", "larger") if m else ""
    rows.append(
        {
            "metric": "size",
            "original": size_text(base.size_bytes, report.goal),
            "recommended": size_after,
            "change": size_change,
        }
    )

    drop = m.accuracy_drop_pct if m else None
    if drop is None and m is not None and m.metric is not None and base.metric is not None:
        drop = (base.metric - m.metric) * 100.0
    rows.append(
        {
            "metric": base.metric_name,
            "original": _NA if base.metric is None else metric_text(base.metric_name, base.metric),
            "recommended": _NA if m is None or m.metric is None else metric_text(base.metric_name, m.metric),
            "change": "" if drop is None else f"{0.0 - drop:+.2f} pt",
        }
    )
    for label, field in (("latency p50", "latency_ms_p50"), ("latency p95", "latency_ms_p95")):
        before, after = getattr(base, field), getattr(m, field) if m else None
        change = _times(before, after, "faster", "slower") if before is not None and after is not None else ""
        rows.append({"metric": label, "original": _ms(before), "recommended": _ms(after), "change": change})
    if base.peak_memory_bytes is not None or (m is not None and m.peak_memory_bytes is not None):
        before_mem, after_mem = base.peak_memory_bytes, m.peak_memory_bytes if m else None
        rows.append(
            {
                "metric": "peak memory",
                "original": _NA if before_mem is None else format_bytes(before_mem),
                "recommended": _NA if after_mem is None else format_bytes(after_mem),
                "change": _times(before_mem, after_mem, "less", "more")
                if before_mem is not None and after_mem is not None
                else "",
            }
        )
    return rows


# --------------------------------------------------------------------------- HTML export


def _can_inline() -> bool:
    return importlib.util.find_spec("vl_convert") is not None


def save_charts_html(report: ParetoReport, path: str | Path, *, inline: bool | None = None) -> Path:
    """Write one HTML page with the Pareto and latency charts (and the sensitivity chart when the report has
    one), titled with the model and the recommendation. Returns the path written.

    The page always embeds the full Vega-Lite spec. ``inline=None`` inlines the vega scripts when
    ``vl-convert-python`` is importable and otherwise loads them from a CDN; ``inline=True`` without it raises
    Altair's ``ImportError``. Raises ``OSError`` when the file cannot be written.
    """
    out = Path(path)
    charts: list[alt.LayerChart | alt.Chart] = [pareto_chart(report), latency_chart(report)]
    if report.sensitivity is not None:
        charts.append(sensitivity_chart(report.sensitivity))
    page = alt.vconcat(*charts).properties(
        title=alt.TitleParams(text=f"QuantTaaS: {report.model}", subtitle=[report.reason], anchor="start")
    )
    page.save(str(out), format="html", inline=_can_inline() if inline is None else inline)
    return out
