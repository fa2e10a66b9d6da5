"""The one optimize pipeline: model + data + a goal -> measured candidates, the front, the best file.

The CLI (``quanttaas optimize``), the server's sweep jobs and the page all run :func:`optimize`; the server passes
its job hooks (progress into the trial store, cancel, the trials of an interrupted run) and a chart writer.
Writes ``out_dir/report.json``, ``out_dir/candidates/*.onnx``, ``out_dir/best.onnx`` (when a candidate meets the
goal) and ``out_dir/pareto.html`` (when a chart writer is given).

This module sits above the library's rooms and may use them all (zoo defaults live here, not in the search).
"""

from __future__ import annotations

import filecmp
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from optimizer.errors import GoalError, NotFoundError
from optimizer.goals.parse import parse_goal
from optimizer.measure.data import Dataset, load_data
from optimizer.models.convert import PT2_SUFFIXES
from optimizer.models.files import copy_model
from optimizer.models.inspect import inspect_model
from optimizer.models.store import MODEL_ID_RE, ModelStore
from optimizer.search.pareto import ParetoReport
from optimizer.search.sweep import ProgressFn, SweepOptions, run_sweep
from optimizer.types import Candidate, Goal, TorchSource

log = logging.getLogger(__name__)

ChartWriter = Callable[[ParetoReport, Path], object]
"""``writer(report, path)`` writes the sweep's chart page; the product's entry hands down the page's charts."""

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


def resolve_model(spec: str) -> Path:
    """A model argument as a path to an ONNX file: a zoo name, a stored id, an .onnx path or a .pt2 path.

    Raises:
        ModelLoadError / NotFoundError: nothing matches, or the file is not a model.
    """
    p = Path(spec)
    if p.is_file():
        if p.suffix.lower() in PT2_SUFFIXES:
            return Path(ModelStore().add(p).path)
        return p
    from optimizer import zoo

    if zoo.is_zoo_name(spec):
        return Path(zoo.get_zoo_case(spec).model_path)
    if MODEL_ID_RE.match(spec):
        try:
            return Path(ModelStore().get(spec).path)
        except NotFoundError:
            pass
    raise NotFoundError(
        f"{spec!r} is neither a file, a zoo model nor a stored model id",
        hint="give a path to an .onnx/.pt2 file, or a zoo name from `quanttaas zoo list`",
    )


def zoo_source_for(name: str, model_path: str | Path) -> TorchSource | None:
    """The zoo case's PyTorch source when ``name`` is a zoo case built from PyTorch and ``model_path`` is that
    case's model (None otherwise, or when the source cannot be used: the sweep still has every quantization
    recipe)."""
    from optimizer import zoo

    if name not in zoo.ZOO_TORCH_MODELS or not zoo.is_zoo_name(name):
        return None
    try:
        case = zoo.get_zoo_case(name)
        if not filecmp.cmp(case.model_path, model_path, shallow=False):
            return None
        return zoo.zoo_torch_source(name)
    except Exception as e:
        log.warning("the PyTorch source of %s is not usable: %s", name, e)
        return None


def optimize(
    model: str | Path,
    data_path: str | Path | None,
    *,
    goal: str | Goal,
    out_dir: str | Path,
    calib_path: str | Path | None = None,
    options: SweepOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    chart_writer: ChartWriter | None = None,
    resume: Sequence[Candidate] = (),
    model_name: str | None = None,
) -> ParetoReport:
    """The one job every surface runs: resolve the model, load the data, sweep, and write ``report.json``,
    ``best.onnx`` (when a candidate meets the goal) and the chart ``chart_writer(report, out/pareto.html)`` makes.

    ``model`` is a path, a stored id or a zoo name (a zoo model brings its own data, and its PyTorch source
    when it has one). ``goal`` is read once here when it is text. ``resume`` holds the finished trials of an
    interrupted run (the server's job store): those whose files remain are kept and not run again.
    ``model_name`` names the model in the report (default: ``model``).

    Raises:
        NotFoundError / ModelLoadError / DataError: bad model or data. GoalError: the goal sets no limit and no
        objective, or excludes every recipe.
    """
    from optimizer import zoo

    g = parse_goal(goal) if isinstance(goal, str) else goal
    g.require_target()
    name = model_name or str(model)
    if data_path is None and zoo.is_zoo_name(str(model)):
        case = zoo.get_zoo_case(str(model))
        data_path, calib_path = case.eval_path, calib_path or case.calib_path
    if data_path is None:
        raise GoalError(
            "no evaluation data given", hint="pass --data EVAL.npz (inputs named after the model's)"
        )
    model_path = resolve_model(str(model))
    data, calib = load_case_data(model_path, data_path, calib_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept = [c for c in resume if c.model_path is None or Path(c.model_path).is_file()]
    report = run_sweep(
        model_path,
        data,
        calib=calib,
        goal=g,
        out_dir=out,
        options=options,
        progress=progress,
        cancel=cancel,
        model_name=name,
        extra_candidates=kept,
        torch_source=zoo_source_for(name, model_path),
    )
    best = out / "best.onnx"
    best.unlink(missing_ok=True)
    if report.recommended:
        src = report.candidate(report.recommended).model_path
        if src and Path(src).is_file():
            copy_model(src, best)
    write_json_atomic(out / "report.json", report.model_dump_json(indent=2))
    if chart_writer is not None:
        try:
            chart_writer(report, out / "pareto.html")
        except Exception as e:  # a chart must never lose a finished sweep
            log.warning("could not write the chart: %s", e)
    return report
