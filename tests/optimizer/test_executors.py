"""Where trials run: what a trial reads travels with it (no shared file system), a GPU goal is never answered with
CPU numbers, and the report says where the trials ran."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optimizer import zoo
from optimizer.errors import EvaluationError, GoalError
from optimizer.goals.parse import parse_goal
from optimizer.measure.data import load_data
from optimizer.measure.evaluate import CUDA, available_providers, make_session
from optimizer.models.inspect import inspect_model
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.types import PruneChannelsRecipe
from optimizer.zoo import zoo_torch_source

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


def test_trial_reads_the_torch_source_files_it_was_sent_not_the_drivers_paths(
    digits: zoo.ZooCase, tmp_path: Path
) -> None:
    """A node without the driver's file system: the source's files are sent as bytes and written on the worker."""
    source = zoo_torch_source("digits-cnn")
    assert source is not None and source.train_path is not None
    # a copy of the source whose files then disappear, as they would on another machine
    moved = tmp_path / "driver-only"
    moved.mkdir()
    sd, train = moved / "state.pt", moved / "train.npz"
    shutil.copyfile(source.state_dict_path, sd)
    shutil.copyfile(source.train_path, train)
    driver_source = source.model_copy(update={"state_dict_path": str(sd), "train_path": str(train)})
    inputs_ = inspect_model(digits.model_path).inputs
    data, calib = (
        load_data(digits.eval_path, inputs_),
        load_data(digits.calib_path, inputs_, metric="agreement"),
    )
    inputs = TrialInputs.for_sweep(Path(digits.model_path).read_bytes(), data, calib, None, driver_source)
    shutil.rmtree(moved)

    spec = TrialSpec(
        id="p",
        recipe=PruneChannelsRecipe(amount=0.3, finetune_epochs=1),
        baseline_metric=0.98,
        latency_runs=3,
        torch_source=driver_source,
    )
    cand, blob = run_trial(spec, inputs)
    assert cand.ok and blob, cand.error
    assert cand.detail["steps"][0]["finetuned"] is True  # the training data arrived too


def test_run_sweep_refuses_a_gpu_goal_where_there_is_no_gpu(digits: zoo.ZooCase, tmp_path: Path) -> None:
    if CUDA in available_providers():
        pytest.skip("this machine has a CUDA provider")
    inputs_ = inspect_model(digits.model_path).inputs
    data, calib = (
        load_data(digits.eval_path, inputs_),
        load_data(digits.calib_path, inputs_, metric="agreement"),
    )
    with pytest.raises(GoalError) as err:
        run_sweep(
            digits.model_path,
            data,
            calib=calib,
            goal=parse_goal("under 40 KB, runs on a GPU"),
            out_dir=tmp_path,
            options=SweepOptions(executor="serial", profile=False),
        )
    assert "GPU" in err.value.message and "CPU numbers" in err.value.message
    assert not list((tmp_path / "candidates").glob("*.onnx"))


def test_make_session_refuses_cuda_it_does_not_have(digits: zoo.ZooCase) -> None:
    if CUDA in available_providers():
        pytest.skip("this machine has a CUDA provider")
    with pytest.raises(EvaluationError, match="no CUDA provider"):
        make_session(digits.model_path, provider=CUDA)


def test_report_says_where_the_trials_ran(digits: zoo.ZooCase, tmp_path: Path) -> None:
    inputs_ = inspect_model(digits.model_path).inputs
    data, calib = (
        load_data(digits.eval_path, inputs_),
        load_data(digits.calib_path, inputs_, metric="agreement"),
    )
    report = run_sweep(
        digits.model_path,
        data,
        calib=calib,
        goal=parse_goal("under 40 KB"),
        out_dir=tmp_path,
        options=SweepOptions(executor="serial", profile=False, latency_runs=3, remeasure_runs=6),
    )
    assert report.execution is not None and "serial" in report.execution
