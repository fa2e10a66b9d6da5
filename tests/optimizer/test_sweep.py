"""The sweep on real zoo models through a real Ray runtime, and its goal-directed search."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import onnx
import pytest

from optimizer import zoo
from optimizer.errors import GoalError
from optimizer.goals.parse import parse_goal
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.models.inspect import inspect_model
from optimizer.optimize import optimize
from optimizer.search.sweep import SweepEvent, SweepOptions, build_grid, run_sweep
from optimizer.search.trial import run_trial
from optimizer.types import Candidate, Goal, StaticInt8Recipe


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


@pytest.fixture(scope="module")
def digits_data(digits: zoo.ZooCase) -> tuple[Dataset, Dataset]:
    inputs = inspect_model(digits.model_path).inputs
    return load_data(digits.eval_path, inputs), load_data(digits.calib_path, inputs, metric="agreement")


@pytest.fixture(scope="module")
def ray_runtime():
    from optimizer.search.runtime import ensure_ray, shutdown_ray

    ray = ensure_ray(num_cpus=2)
    yield ray
    shutdown_ray()


def test_build_grid_holds_base_and_selective_recipes_when_profiled(digits: zoo.ZooCase, digits_data) -> None:
    from optimizer.search.profile import profile_layers

    info = inspect_model(digits.model_path)
    sens = profile_layers(digits.model_path, digits_data[1])
    grid = build_grid(info, sens, has_calib=True)
    kinds = {g.recipe.kind for g in grid}
    assert {"static_int8", "fp16"} <= kinds
    selective = [g for g in grid if g.family == "selective"]
    assert selective, "a profiled model must get selective candidates"
    # keep-k lists are prefixes of the sensitivity ranking, growing with k
    ranked = [la.name for la in sens.layers]
    for g in selective:
        assert list(g.recipe.keep_fp32) == ranked[: g.k]
    assert len({g.id for g in grid}) == len(grid)


def test_predicted_size_matches_measured_size_of_full_int8(
    digits: zoo.ZooCase, tmp_path: Path, digits_data
) -> None:
    from optimizer.techniques.quantize import quantize_model

    info = inspect_model(digits.model_path)
    item = next(
        g
        for g in build_grid(info, None, has_calib=True)
        if g.family == "anchor" and g.recipe.kind == "static_int8"
    )
    out = quantize_model(digits.model_path, item.recipe, tmp_path / "q.onnx", calib=digits_data[1])
    actual = out.stat().st_size
    assert abs(item.predicted_size - actual) / actual < 0.25


def test_run_sweep_meets_a_reachable_goal_through_ray(
    digits: zoo.ZooCase, digits_data, ray_runtime, tmp_path: Path
) -> None:
    data, calib = digits_data
    events: list[SweepEvent] = []
    goal = parse_goal("under 40 KB with less than 1% accuracy loss")
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path,
        options=SweepOptions(executor="ray", workers=2),
        progress=events.append,
    )
    assert report.recommended is not None
    best = report.candidate(report.recommended)
    assert best.metrics is not None and best.metrics.size_bytes <= 40_000
    assert best.metrics.accuracy_drop_pct is not None and best.metrics.accuracy_drop_pct <= 1.0
    assert report.evaluations == len(report.candidates) <= report.grid_size
    assert set(report.skipped) == set(report.skipped_reasons)
    assert [e for e in events if e.kind == "trial"], "results must stream in as trials finish"
    assert events[-1].kind == "finished"
    # latency of the finalists was re-measured side by side
    assert best.detail.get("latency_remeasured") is True


def test_report_numbers_are_re_measurable_from_the_files_they_name(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, _ = digits_data
    report = optimize(
        "digits-cnn",
        None,
        goal="as small as possible with at most 2% accuracy loss",
        out_dir=tmp_path,
        options=SweepOptions(executor="serial"),
    )
    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored["recommended"] == report.recommended
    rec = next(c for c in stored["candidates"] if c["id"] == stored["recommended"])
    path = Path(rec["model_path"])
    assert path.stat().st_size == rec["metrics"]["size_bytes"]
    assert (tmp_path / "best.onnx").read_bytes() == path.read_bytes()
    again, _ = evaluate_model(
        tmp_path / "best.onnx", data, baseline_metric=stored["baseline"]["metric"], latency_runs=3
    )
    assert again.metric == pytest.approx(rec["metrics"]["metric"], abs=1e-9)
    assert again.accuracy_drop_pct == pytest.approx(rec["metrics"]["accuracy_drop_pct"], abs=1e-6)
    base_again, _ = evaluate_model(digits.model_path, data, latency_runs=3)
    assert base_again.metric == pytest.approx(stored["baseline"]["metric"], abs=1e-9)
    assert set(stored) >= {"baseline", "candidates", "front", "recommended", "goal", "reason", "evaluations"}


def test_run_sweep_says_plainly_when_no_candidate_meets_the_goal(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("under 2 KB"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial"),
    )
    assert report.recommended is None
    assert report.nearest, "an infeasible goal must name the nearest candidates"
    miss = report.nearest[0].misses[0]
    assert miss.constraint == "max_size_mb" and miss.over_by and miss.over_by > 0
    assert any(c.ok for c in report.candidates), "the nearest candidate must have been measured"


def test_run_sweep_records_a_crashed_trial_and_goes_on(
    digits: zoo.ZooCase, digits_data, ray_runtime, tmp_path: Path
) -> None:
    data, calib = digits_data

    def crash_one(spec, inputs):  # defined here so Ray ships it by value
        import os as _os

        from optimizer.search.trial import run_trial as _run

        if spec.recipe.kind == "fp16":
            _os._exit(17)
        return _run(spec, inputs)

    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="ray", workers=2, profile=False),
        trial_fn=crash_one,
    )
    crashed = [c for c in report.candidates if c.recipe.kind == "fp16"]
    assert crashed and crashed[0].error is not None and crashed[0].error.code == "technique_failed"
    assert any(c.ok for c in report.candidates), "the other trials must finish"
    assert report.recommended is not None


def test_run_sweep_keeps_failed_trials_as_data(digits: zoo.ZooCase, digits_data, tmp_path: Path) -> None:
    data, calib = digits_data

    def fail_static(spec, inputs):
        if spec.recipe.kind == "static_int8":
            raise RuntimeError("backend exploded")
        return run_trial(spec, inputs)

    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
        trial_fn=lambda *a: _safe(fail_static, *a),
    )
    failed = [c for c in report.candidates if c.error]
    assert failed and all(c.recipe.kind == "static_int8" for c in failed)
    assert "backend exploded" in failed[0].error.message
    assert report.recommended is not None and report.candidate(report.recommended).ok


def _safe(fn, spec, *rest):
    """What the real trial does with exceptions: record them as the candidate's error."""
    from optimizer.types import ErrorInfo

    try:
        return fn(spec, *rest)
    except Exception as e:
        return Candidate(
            id=spec.id, recipe=spec.recipe, error=ErrorInfo(code="technique_failed", message=str(e), hint="")
        ), None


def test_run_sweep_stops_when_cancelled(digits: zoo.ZooCase, digits_data, tmp_path: Path) -> None:
    data, calib = digits_data
    cancel = threading.Event()

    def on_event(e: SweepEvent) -> None:
        if e.kind == "trial":
            cancel.set()

    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as fast as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
        progress=on_event,
        cancel=cancel,
    )
    assert report.evaluations == 1
    assert any("cancelled" in r for r in report.skipped_reasons.values())


def test_run_sweep_resumes_without_rerunning_finished_trials(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    first = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
    )
    done = [c for c in first.candidates if c.ok]
    ran: list[str] = []

    def counting(spec, *rest):
        ran.append(spec.id)
        return run_trial(spec, *rest)

    second = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
        extra_candidates=done,
        trial_fn=counting,
    )
    assert not set(ran) & {c.id for c in done}
    assert {c.id for c in done} <= {c.id for c in second.candidates}


def test_run_sweep_refuses_a_goal_that_excludes_every_recipe(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    goal = Goal(max_size_mb=1.0, methods_forbidden=["quantize"])
    with pytest.raises(GoalError) as err:
        run_sweep(
            digits.model_path,
            data,
            calib=calib,
            goal=goal,
            out_dir=tmp_path,
            options=SweepOptions(executor="serial", profile=False),
        )
    assert err.value.code == "goal_invalid"


def test_run_sweep_respects_the_goal_precision(digits: zoo.ZooCase, digits_data, tmp_path: Path) -> None:
    data, calib = digits_data
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("fp16 only, as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
    )
    assert {c.recipe.kind for c in report.candidates} == {"fp16"}


def test_directed_search_uses_fewer_evaluations_than_the_grid(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    goal = parse_goal("under 40 KB with less than 1% accuracy loss")
    directed = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "d",
        options=SweepOptions(executor="serial"),
    )
    full = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "f",
        options=SweepOptions(executor="serial", exhaustive=True),
    )
    assert full.evaluations == full.grid_size
    assert directed.evaluations < full.evaluations
    # the directed search must not miss a better answer the grid had on the goal's objective (size here, balanced)
    assert directed.recommended is not None and full.recommended is not None


def test_ppocr_sweep_through_ray_meets_a_size_goal_and_keeps_every_trial(ray_runtime, tmp_path: Path) -> None:
    """A real sweep of the OCR recogniser (weights in Constant nodes, opset 12) on a real Ray runtime."""
    case = zoo.get_zoo_case("ppocr-rec")
    inputs = inspect_model(case.model_path).inputs
    full = load_data(case.eval_path, inputs)
    n = 24  # a slice keeps CI short; the benchmark runs every line
    data = Dataset(
        full.path, {k: v[:n] for k, v in full.inputs.items()}, full.labels[:n], full.metric, full.meta
    )
    calib = load_data(case.calib_path, inputs, metric="agreement").head(16)
    report = run_sweep(
        case.model_path,
        data,
        calib=calib,
        goal=parse_goal("under 6 MB, as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="ray", workers=2, latency_runs=3, remeasure_runs=6, profile=False),
    )
    assert report.recommended is not None, report.reason
    best = report.candidate(report.recommended)
    assert best.metrics is not None and best.metrics.size_bytes <= 6_000_000
    assert Path(best.model_path).stat().st_size == best.metrics.size_bytes
    full_int8 = next(c for c in report.candidates if c.recipe == StaticInt8Recipe())
    assert full_int8.metrics is not None
    # Constant weights were moved into initializers, so int8 really shrinks the model (10.9 MB -> about 3 MB)
    assert full_int8.metrics.size_bytes < 0.4 * report.baseline.size_bytes
    assert report.evaluations + len(report.skipped) == report.grid_size


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quanttaas", *args], capture_output=True, text=True, timeout=600
    )


def test_optimize_cli_writes_report_best_model_and_chart_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli(
        "optimize",
        "digits-cnn",
        "--goal",
        "under 40 KB, less than 1% accuracy loss, on 2 threads",
        "--out",
        str(out),
        "--serial",
        "--threads",
        "1",
        "--batch",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "recommended:" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["recommended"] and (out / "best.onnx").is_file()
    # the options win over the goal's "on 2 threads", and the report says how it measured
    measurement = report["measurement"]
    assert (measurement["threads"], measurement["threads_from"]) == (1, "option")
    assert (measurement["batch_size"], measurement["batch_from"]) == (2, "option")
    assert "measured with 1 thread(s) (option), batch 2 (option)" in proc.stdout
    assert report["baseline"]["batch_size"] == 2
    assert list((out / "candidates").glob("*.onnx"))
    html = (out / "pareto.html").read_text()
    assert report["recommended"] in html, "the chart must carry the candidates"


def test_optimize_cli_exits_3_with_the_nearest_when_the_goal_is_impossible(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli(
        "optimize", "digits-cnn", "--goal", "under 5 KB with no accuracy loss", "--out", str(out), "--serial"
    )
    assert proc.returncode == 3, proc.stderr
    assert "no candidate meets the goal" in proc.stdout
    assert "nearest" in proc.stdout
    assert not (out / "best.onnx").exists()
    assert json.loads((out / "report.json").read_text())["recommended"] is None


def test_optimize_cli_refuses_a_goal_without_limits(tmp_path: Path) -> None:
    proc = _cli("optimize", "digits-cnn", "--goal", "make it awesome", "--out", str(tmp_path), "--serial")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error [goal_invalid]")
    assert "Traceback" not in proc.stderr


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA execution provider here (CI has no GPU)")
def test_run_sweep_measures_trials_on_cuda_when_the_cluster_has_a_gpu(
    digits: zoo.ZooCase, digits_data, ray_runtime, tmp_path: Path
) -> None:
    data, calib = digits_data
    if not ray_runtime.cluster_resources().get("GPU"):
        pytest.skip("the Ray runtime sees no GPU")
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as fast as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="ray", profile=False),
    )
    measured = [c for c in report.candidates if c.metrics]
    assert measured and all(c.metrics.backend == "CUDAExecutionProvider" for c in measured)


def test_layer_blocks_keeps_a_layer_with_the_activation_chain_it_feeds() -> None:
    from onnx import TensorProto, helper

    from optimizer.models.graph import layer_blocks

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1"),
        helper.make_node("Add", ["a", "three"], ["b"], name="add"),
        helper.make_node("Clip", ["b"], ["c"], name="clip"),
        helper.make_node("Mul", ["a", "c"], ["d"], name="mul"),
        helper.make_node("Conv", ["d", "w2"], ["y"], name="conv2"),
        helper.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph)
    assert set(layer_blocks(model, ["conv1"])) == {"conv1", "add", "clip", "mul"}
    assert set(layer_blocks(model, ["conv2"])) == {"conv2", "relu"}
    assert layer_blocks(model, ["missing"]) == ()


def test_run_sweep_cancel_stops_trials_already_running_on_ray(
    digits: zoo.ZooCase, digits_data, ray_runtime, tmp_path: Path
) -> None:
    data, calib = digits_data

    def slow(spec, inputs):  # shipped by value to the workers
        import time as _t

        _t.sleep(120)
        raise RuntimeError("a cancelled trial must never finish")

    cancel = threading.Event()
    threading.Timer(8.0, cancel.set).start()
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("as small as possible"),
        out_dir=tmp_path,
        options=SweepOptions(executor="ray", workers=2, profile=False),
        cancel=cancel,
        trial_fn=slow,
    )
    assert report.evaluations == 0, "in-flight trials must be cancelled, not awaited"
    assert any("cancelled" in r for r in report.skipped_reasons.values())
    # the cancelled trials must not keep holding the workers: a new task gets a CPU at once
    probe = ray_runtime.remote(num_cpus=1)(lambda: 1)
    assert ray_runtime.get(probe.remote(), timeout=30) == 1


def test_run_sweep_keeps_the_first_and_last_layers_in_float_when_the_goal_says_so(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    goal = parse_goal("int8, don't quantize the first and last layers, as small as possible")
    assert goal.keep_float_layers == ["first", "last"] and goal.methods_forbidden is None
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False),
    )
    first, last = "/features/features.0/Conv", "/classifier/Gemm"
    ok = [c for c in report.candidates if c.ok]
    assert ok and all({first, last} <= set(c.recipe.keep_fp32) for c in ok)
    static = next(c for c in ok if c.recipe.kind == "static_int8" and c.recipe.per_channel)
    graph = onnx.load(str(static.model_path)).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    weight_from = {
        n.name: producers.get(n.input[1], "initializer") for n in graph.node if n.op_type in ("Conv", "Gemm")
    }
    assert weight_from[first] == weight_from[last] == "initializer"  # float weights, as asked
    assert weight_from["/features/features.2/Conv"] == "DequantizeLinear"  # the rest is int8


def test_run_sweep_measures_points_across_the_front_when_asked(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    data, calib = digits_data
    goal = parse_goal("under 40 KB with less than 1% accuracy loss")
    wide = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "wide",
        options=SweepOptions(executor="serial", front_points=10, profile=True),
    )
    ok = [c for c in wide.candidates if c.ok]
    assert len(ok) >= 10, [c.id for c in wide.candidates]  # more than the goal alone needs (7 here)
    kinds = {c.recipe.kind for c in ok}
    assert {"static_int8", "dynamic_int8"} <= kinds  # the int8 one-liners first
    assert len(wide.front) >= 2
    assert wide.recommended is not None  # still the answer to the goal

    # a budget already spent adds nothing, and says so for what it left out
    tight = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=goal,
        out_dir=tmp_path / "tight",
        options=SweepOptions(executor="serial", front_points=10, time_budget_s=0.001),
    )
    assert tight.evaluations < len(ok)
    budget = [why for why in tight.skipped_reasons.values() if "time budget" in why]
    assert budget and all("0.001 s" in why for why in budget)


def test_run_sweep_refuses_an_already_quantized_model_before_running_anything(
    digits: zoo.ZooCase, digits_data, tmp_path: Path
) -> None:
    from optimizer.errors import RecipeError
    from optimizer.techniques.quantize import quantize_model
    from optimizer.types import DynamicInt8Recipe

    q = quantize_model(digits.model_path, DynamicInt8Recipe(), tmp_path / "q.onnx")
    events: list[SweepEvent] = []

    with pytest.raises(RecipeError, match="already quantized") as exc:
        run_sweep(
            q,
            digits_data[0],
            calib=digits_data[1],
            goal=parse_goal("under 1 MB"),
            out_dir=tmp_path / "s",
            options=SweepOptions(executor="serial"),
            progress=events.append,
        )

    assert exc.value.code == "recipe_invalid" and "float model" in exc.value.hint
    assert set(exc.value.details["quantization_markers"]) & {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
    }
    assert events == [] and not (tmp_path / "s" / "prepared.onnx").exists()
