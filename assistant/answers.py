"""Plain-English answers built only from tool results (JSON), for the offline planner and for corrections.

Every number written here is a value of a tool result, a unit conversion of one, or the ratio or difference of
two, rounded the way :mod:`assistant.honesty` accepts: an answer built here always passes the checker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from assistant.events import ToolRecord
from assistant.techniques import describe_recipe
from assistant.toollog import ToolLog
from optimizer.units import format_bytes

__all__ = [
    "candidate_line",
    "describe_goal",
    "describe_recipe",
    "files_for",
    "fmt_drop",
    "fmt_metric",
    "fmt_ms",
    "label_of",
]

_UNKNOWN_SIZE = "unknown size"
_ACCURACY_LIKE = ("top1", "top5", "acc", "match", "agreement", "f1")


def fmt_ms(v: float | None) -> str:
    """A latency in ms with three significant digits."""
    if v is None:
        return "not measured"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{float(f'{v:.3g}'):g} ms"


def fmt_metric(name: str, v: float | None) -> str:
    """``top1 98.33%`` for accuracy-like metrics, ``spearman_pairs 0.8123`` for the others."""
    if v is None:
        return f"{name} not measured"
    if any(k in name.lower() for k in _ACCURACY_LIKE) and 0.0 <= v <= 1.0:
        return f"{name} {v * 100:.2f}%"
    return f"{name} {v:.4f}"


def fmt_drop(d: float | None) -> str:
    if d is None:
        return "drop not measured"
    if d < 0:
        return f"gain {-d:.2f} pt"
    return f"drop {d:.2f} pt"


def fmt_ratio(a: float, b: float) -> str:
    """How many times smaller ``a`` is than ``b`` (or larger), e.g. ``2.85x smaller``."""
    if a <= 0 or b <= 0:
        return ""
    if a < b:
        return f"{b / a:.2f}x smaller"
    if a > b:
        return f"{a / b:.2f}x larger"
    return "same size"


def label_of(candidate_id: str) -> str:
    """The recipe label inside a candidate id: ``c00-static_int8-pc-minmax`` -> ``static_int8-pc-minmax``."""
    head, _, rest = candidate_id.partition("-")
    return rest if head[:1] == "c" and head[1:].isdigit() and rest else candidate_id


def describe_goal(goal: dict[str, Any] | None) -> str:
    """A structured goal (the dict the tools return) in one line, worded as the server's ``Goal.describe``:
    ``size <= 0.04 MB, accuracy drop <= 1.0 pt, objective: balanced``."""
    g = goal or {}
    parts: list[str] = []
    for key, template in (
        ("max_size_mb", "size <= {} MB"),
        ("max_size_ratio", None),
        ("max_accuracy_drop_pct", "accuracy drop <= {} pt"),
        ("max_latency_ms", "p50 latency <= {} ms"),
        ("min_speedup", "speedup >= {}x"),
    ):
        value = finite(g.get(key))
        if value is None:
            continue
        parts.append(f"size <= {value * 100:g}% of original" if template is None else template.format(value))
    if not parts:
        parts.append("no constraints")
    for key, label in (("precision", "precision"), ("device", "device")):
        if g.get(key):
            parts.append(f"{label}: {g[key]}")
    for key, label in (
        ("methods_allowed", "methods allowed"),
        ("methods_forbidden", "methods forbidden"),
        ("methods_requested", "methods asked for"),
    ):
        if g.get(key):
            parts.append(f"{label}: {', '.join(str(m) for m in g[key])}")
    parts.append(f"objective: {g.get('objective') or 'balanced'}")
    return ", ".join(parts)


def candidate_line(c: dict[str, Any], baseline: dict[str, Any]) -> str:
    """One candidate with its measured numbers, or the error that stopped it."""
    cid = str(c.get("id", "?"))
    m = c.get("metrics")
    if not m:
        err = c.get("error") or {}
        return f"{cid}: failed ({err.get('code', 'error')}: {str(err.get('message', ''))[:160]})"
    size = m.get("size_bytes")
    ratio = fmt_ratio(float(size or 0), float(baseline.get("size_bytes") or 0))
    parts = [format_bytes(size, missing=_UNKNOWN_SIZE) + (f" ({ratio})" if ratio else "")]
    parts.append(
        f"{fmt_metric(str(m.get('metric_name', 'metric')), m.get('metric'))} ({fmt_drop(m.get('accuracy_drop_pct'))})"
    )
    if m.get("latency_ms_p50") is not None:
        parts.append(f"p50 {fmt_ms(m.get('latency_ms_p50'))}")
    return f"{cid} [{describe_recipe(c.get('recipe'))}]: " + ", ".join(parts)


def baseline_line(model: str, baseline: dict[str, Any]) -> str:
    parts = [
        format_bytes(baseline.get("size_bytes"), missing=_UNKNOWN_SIZE),
        fmt_metric(str(baseline.get("metric_name", "metric")), baseline.get("metric")),
    ]
    if baseline.get("latency_ms_p50") is not None:
        parts.append(f"p50 {fmt_ms(baseline.get('latency_ms_p50'))}")
    return f"the original {model}: " + ", ".join(parts)


def files_for(records: Iterable[ToolRecord], job_id: str | None, candidate_id: str | None) -> dict[str, str]:
    """The files of a result, named from tool results: the model (path and artifact) and the report/chart."""
    if not job_id:
        return {}
    log = records if isinstance(records, ToolLog) else ToolLog(records)
    files: dict[str, str] = {}
    view = log.report(job_id)
    if view is not None:
        candidate = view.candidate(candidate_id)
        if candidate is not None and candidate.get("model_path"):
            files["model"] = str(candidate["model_path"])
        artifact = view.artifact_of(candidate_id)
        if artifact is not None:
            files["model_artifact"] = artifact
        if view.result.get("chart_artifact"):
            files["chart_artifact"] = str(view.result["chart_artifact"])
    for art in log.artifacts(job_id):
        aid = str(art.get("artifact_id", ""))
        if aid.endswith("report.json"):
            files["report_artifact"] = aid
            files["report_download"] = str(art.get("download_path", ""))
        elif aid == files.get("model_artifact"):
            files["model_download"] = str(art.get("download_path", ""))
    return files


def files_text(files: dict[str, str], *, nearest: bool = False) -> str:
    """The files as one line, or an empty string (``nearest``: the model is the nearest miss, not a result)."""
    what = "nearest candidate's model" if nearest else "model"
    parts: list[str] = []
    if "saved_model" in files:
        parts.append(f"{what} saved to {files['saved_model']}")
    if "model" in files:
        parts.append(f"{what} file {files['model']}")
    if "model_artifact" in files:
        dl = f", download {files['model_download']}" if files.get("model_download") else ""
        parts.append(f"{what} artifact {files['model_artifact']}{dl}")
    if "saved_report" in files:
        parts.append(f"report saved to {files['saved_report']}")
    if "report_artifact" in files:
        dl = f", download {files['report_download']}" if files.get("report_download") else ""
        parts.append(f"report artifact {files['report_artifact']}{dl}")
    if "chart_artifact" in files:
        parts.append(f"chart artifact {files['chart_artifact']}")
    return ("Files: " + "; ".join(parts) + ".") if parts else ""


def finite(v: Any) -> float | None:
    """``v`` as a finite float, or None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None
