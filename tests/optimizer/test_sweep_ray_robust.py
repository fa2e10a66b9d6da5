"""On a real Ray runtime: a trial killed for memory is retried alone with less calibration, and a user's own metric
(a Python file) reaches the workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer import zoo
from optimizer.measure.data import load_data, save_data
from optimizer.models.inspect import inspect_model
from optimizer.search.memory import activation_bytes_per_sample, plan_memory
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.types import Goal

RAY = SweepOptions(executor="ray", workers=2, profile=False, latency_runs=3, remeasure_runs=6)


@pytest.fixture(scope="module")
def ray_runtime():
    from optimizer.search.runtime import ensure_ray, shutdown_ray

    ray = ensure_ray(num_cpus=2)
    yield ray
    shutdown_ray()


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


def test_a_trial_killed_for_memory_is_retried_alone_with_fewer_samples_and_the_report_says_so(
    digits: zoo.ZooCase, ray_runtime, tmp_path: Path
) -> None:
    inputs = inspect_model(digits.model_path).inputs

    def oom_on_first_try(spec, inputs):  # shipped by value to the workers
        from optimizer.search.trial import run_trial as _run

        if spec.recipe.kind == "static_int8" and spec.memory_retry == 0:
            raise MemoryError("calibration histograms did not fit")
        return _run(spec, inputs)

    report = run_sweep(
        digits.model_path,
        load_data(digits.eval_path, inputs),
        calib=load_data(digits.calib_path, inputs, metric="agreement"),
        goal=Goal(max_accuracy_drop_pct=1.0, objective="size"),
        out_dir=tmp_path,
        options=RAY,
        trial_fn=oom_on_first_try,
    )
    retried = [c for c in report.candidates if c.recipe.kind == "static_int8"]
    assert retried and all(c.ok and c.detail.get("memory_retries") == 1 for c in retried)
    assert all(c.detail.get("calib_samples_used") == 64 for c in retried)  # half of the recipe's 128
    assert any("killed for memory" in n for n in report.notes)


def test_a_users_metric_file_reaches_the_ray_workers(
    digits: zoo.ZooCase, ray_runtime, tmp_path: Path
) -> None:
    metric_file = tmp_path / "my_metric.py"
    metric_file.write_text(
        "import numpy as np\n"
        "def error_rate(m):\n"
        "    '''share of wrong top-1 predictions (lower is better)'''\n"
        "    return float((m.outputs[0].argmax(1) != m.labels).mean())\n"
        "error_rate.higher_is_better = False\n"
        "error_rate.needs_labels = True\n"
    )
    inputs = inspect_model(digits.model_path).inputs
    base = load_data(digits.eval_path, inputs)
    path = save_data(tmp_path / "eval.npz", base.inputs, base.labels, metric=f"{metric_file}:error_rate")
    data = load_data(path, inputs)
    report = run_sweep(
        digits.model_path,
        data,
        calib=load_data(digits.calib_path, inputs, metric="agreement"),
        goal=Goal(max_accuracy_drop_pct=1.0, objective="size"),
        out_dir=tmp_path / "run",
        options=RAY,
    )
    assert report.baseline.metric_name == f"{metric_file}:error_rate"
    assert report.baseline.metric_higher_is_better is False
    measured = [c for c in report.candidates if c.ok]
    assert len(measured) >= 3 and all(c.metrics.metric_name == report.baseline.metric_name for c in measured)
    for c in measured:  # the drop is the error rate's increase, in points
        assert c.metrics.accuracy_drop_pct == pytest.approx(
            (c.metrics.metric - report.baseline.metric) * 100, abs=1e-4
        )


def test_plan_memory_cuts_parallel_trials_first_then_histogram_samples() -> None:
    roomy = plan_memory(1_000_000, 10_000_000, calib_samples=128, workers=2, free_bytes=20_000_000_000)
    assert (roomy.workers, roomy.calib_samples) == (2, 128)
    tight = plan_memory(200_000_000, 10_000_000, calib_samples=128, workers=2, free_bytes=16_000_000_000)
    assert tight.workers == 1 and 8 <= tight.calib_samples < 128
    assert "calibration on at most" in tight.reason and "of 128" in tight.reason


def test_activation_bytes_per_sample_counts_one_sample_whatever_the_data_holds(
    tmp_path: Path, digits: zoo.ZooCase
) -> None:
    inputs = inspect_model(digits.model_path).inputs
    calib = load_data(digits.calib_path, inputs, metric="agreement")
    one = activation_bytes_per_sample(digits.model_path, calib)
    assert one > calib.inputs["input"][:1].nbytes
    big = {"input": np.repeat(calib.inputs["input"][:4], 2, axis=0)}
    assert activation_bytes_per_sample(digits.model_path, calib.__class__("m", big, None, "fidelity")) == one
