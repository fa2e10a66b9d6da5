"""The headless main job: model + data + a goal in plain words -> measured candidates, the front, the best file.

Writes ``out_dir/report.json``, ``out_dir/candidates/*.onnx``, ``out_dir/best.onnx`` (when a candidate meets the
goal) and whatever charts the caller's writer produces (the CLI writes ``pareto.html``).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from optimizer.data import Dataset, load_data
from optimizer.errors import GoalError
from optimizer.goal import Goal, parse_goal
from optimizer.inspect import inspect_model
from optimizer.pareto import ParetoReport
from optimizer.store import resolve_model
from optimizer.sweep import ProgressFn, SweepOptions, run_sweep

log = logging.getLogger(__name__)

CALIB_FALLBACK_SAMPLES = 128


def write_json_atomic(path: Path, payload: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(payload)
    tmp.replace(path)


def load_case_data(
    model_path: Path, data_path: str | Path, calib_path: str | Path | None, metric: str | None = None
) -> tuple[Dataset, Dataset]:
    """Evaluation data, and calibration data (the first samples of the evaluation data when none is given).

    Raises:
        DataError: a file does not match the model.
    """
    inputs = inspect_model(model_path).inputs
    data = load_data(data_path, inputs, metric=metric)
    if calib_path:
        calib = load_data(calib_path, inputs, metric="agreement")
    else:
        log.warning(
            "no calibration data given: calibrating on the first %d evaluation samples",
            CALIB_FALLBACK_SAMPLES,
        )
        calib = data.head(CALIB_FALLBACK_SAMPLES)
    return data, calib


def optimize(
    model: str,
    data_path: str | Path | None,
    *,
    goal: str | Goal,
    out_dir: str | Path,
    calib_path: str | Path | None = None,
    options: SweepOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    chart_writer: Callable[[ParetoReport, Path], object] | None = None,
) -> ParetoReport:
    """Run the whole job and write its files. ``model`` may be a path or a zoo name (whose data is then the
    default).

    Raises:
        NotFoundError / ModelLoadError / DataError: bad model or data. GoalError: the goal sets no limit and no
        objective, or excludes every recipe.
    """
    from optimizer import zoo

    g = parse_goal(goal) if isinstance(goal, str) else goal
    if not g.has_constraints and g.objective == "balanced" and g.precision is None:
        raise GoalError(
            f"the goal {g.text!r} sets no limit I can measure"
            + (f" (words not understood: {', '.join(g.unparsed_words)})" if g.unparsed_words else ""),
            hint='say what you need, e.g. "under 5 MB with less than 1% accuracy loss" or "as small as possible"',
        )
    if data_path is None and zoo.is_zoo_name(model):
        case = zoo.get_zoo_case(model)
        data_path, calib_path = case.eval_path, calib_path or case.calib_path
    if data_path is None:
        raise GoalError(
            "no evaluation data given", hint="pass --data EVAL.npz (inputs named after the model's)"
        )
    model_path = resolve_model(model)
    data, calib = load_case_data(model_path, data_path, calib_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = run_sweep(
        model_path,
        data,
        calib=calib,
        goal=g,
        out_dir=out,
        options=options,
        progress=progress,
        cancel=cancel,
        model_name=model,
    )
    best = out / "best.onnx"
    best.unlink(missing_ok=True)
    if report.recommended:
        src = report.candidate(report.recommended).model_path
        if src:
            shutil.copyfile(src, best)
    write_json_atomic(out / "report.json", json.dumps(report.model_dump(mode="json"), indent=2))
    if chart_writer is not None:
        try:
            chart_writer(report, out / "pareto.html")
        except Exception as e:  # a chart must never lose a finished sweep
            log.warning("could not write the chart: %s", e)
    return report
