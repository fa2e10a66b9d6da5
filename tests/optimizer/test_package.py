"""`quanttaas package`: a deployable folder for one candidate (model, runnable example, contract, metrics, recipe)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter

from optimizer import zoo
from optimizer.errors import InputError, NotFoundError
from optimizer.measure.data import load_data
from optimizer.models.inspect import inspect_model
from optimizer.optimize import optimize
from optimizer.package import load_report, package_candidate, resolve_candidate
from optimizer.search.pareto import build_report
from optimizer.search.sweep import SweepOptions
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.types import (
    Candidate,
    ChainRecipe,
    ErrorInfo,
    Goal,
    PruneChannelsRecipe,
    Recipe,
    StaticInt8Recipe,
)
from optimizer.zoo import zoo_torch_source

FAST = SweepOptions(executor="serial", profile=False, latency_runs=5, remeasure_runs=10)
FILES = {
    "model.onnx",
    "run.py",
    "contract.json",
    "metrics.json",
    "recipe.json",
    "requirements.txt",
    "README.md",
}


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep's output folder (report.json, candidates/, best.onnx)."""
    out = tmp_path_factory.mktemp("run")
    report = optimize(
        "digits-cnn", None, goal="under 40 KB with less than 1% accuracy loss", out_dir=out, options=FAST
    )
    assert report.recommended is not None
    return out


@pytest.fixture(scope="module")
def chain_run(digits: zoo.ZooCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder holding one chain candidate (prune 30% of the channels, fine-tune, static int8) and one
    failed candidate."""
    out = tmp_path_factory.mktemp("chain-run")
    (out / "candidates").mkdir()
    inputs = inspect_model(digits.model_path).inputs
    data = load_data(digits.eval_path, inputs)
    calib = load_data(digits.calib_path, inputs, metric="agreement")
    recipe = ChainRecipe(steps=(PruneChannelsRecipe(amount=0.3, finetune_epochs=1), StaticInt8Recipe()))
    spec = TrialSpec(
        id="c00-chain",
        recipe=recipe,
        baseline_metric=0.98,
        latency_runs=5,
        torch_source=zoo_torch_source("digits-cnn"),
    )
    cand, blob = run_trial(spec, TrialInputs(Path(digits.model_path).read_bytes(), data, calib, None))
    assert blob is not None, cand.error
    path = out / "candidates" / f"{cand.id}.onnx"
    path.write_bytes(blob)
    failed = Candidate(
        id="c01-failed",
        recipe=StaticInt8Recipe(),
        error=ErrorInfo(code="technique_failed", message="boom", hint=""),
    )
    from optimizer.measure.evaluate import evaluate_model

    base, _ = evaluate_model(digits.model_path, data, latency_runs=5)
    report = build_report(
        "digits-cnn",
        base,
        [cand.model_copy(update={"model_path": str(path)}), failed],
        Goal(max_size_mb=0.001),  # met by nothing: this report recommends no candidate
        evaluations=2,
        grid_size=2,
    )
    (out / "report.json").write_text(report.model_dump_json(indent=2))
    return out


def _run_py(folder: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "run.py", "--json", *args], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_package_writes_a_folder_whose_example_runs_the_recommended_model(
    run_dir: Path, digits: zoo.ZooCase, tmp_path: Path
) -> None:
    report = load_report(run_dir)
    out = tmp_path / "pkg"
    result = package_candidate(run_dir, None, out, sample_data=digits.eval_path)
    assert result.candidate_id == report.recommended
    assert set(result.files) == FILES | {"sample.npz"}
    cand = report.candidate(result.candidate_id)
    assert (out / "model.onnx").read_bytes() == (run_dir / "best.onnx").read_bytes()
    assert result.size_bytes == cand.metrics.size_bytes  # type: ignore[union-attr]
    # the contract is the model's interface
    contract = json.loads((out / "contract.json").read_text())
    info = inspect_model(out / "model.onnx")
    assert [t["name"] for t in contract["inputs"]] == [t.name for t in info.inputs]
    assert contract["inputs"][0]["shape"] == info.inputs[0].shape and contract["metric"] == "top1"
    # the metrics are the sweep's, and the recipe reproduces the candidate
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["candidate"] == cand.metrics.model_dump(mode="json")  # type: ignore[union-attr]
    assert metrics["recommended"] is True and metrics["ratios"]["size_vs_original"] < 0.4
    recipe_doc = json.loads((out / "recipe.json").read_text())
    assert recipe_doc.pop("label") == cand.recipe.label
    assert TypeAdapter(Recipe).validate_python(recipe_doc) == cand.recipe
    # the example runs on the bundled sample and its top-1 matches onnxruntime on the same 8 images
    summary = _run_py(out)
    assert summary["samples"] == 8 and summary["outputs"] == {"logits": [8, 10]}
    sample = np.load(out / "sample.npz")
    import onnxruntime as ort

    logits = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input": sample["input"]})[0]
    assert summary["top1"] == pytest.approx(float((logits.argmax(1) == sample["labels"]).mean()))


def test_package_example_runs_on_random_inputs_of_the_contract_without_a_sample(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    result = package_candidate(run_dir, None, out)
    assert set(result.files) == FILES
    summary = _run_py(out, "--batch", "3")
    assert summary["data"] == "random" and summary["outputs"] == {"logits": [3, 10]}
    assert "python run.py" in (out / "README.md").read_text()


def test_package_of_a_chain_records_each_step(chain_run: Path, tmp_path: Path) -> None:
    result = package_candidate(chain_run / "report.json", "c00-chain", tmp_path / "pkg")
    metrics = json.loads((tmp_path / "pkg" / "metrics.json").read_text())
    assert [s["kind"] for s in metrics["steps"]] == ["prune_channels", "static_int8"]
    assert metrics["detail"]["finetuned"] is True
    readme = (tmp_path / "pkg" / "README.md").read_text()
    assert "1. prune_channels-params30pct-ft1" in readme and "2. static_int8-pc-minmax" in readme
    assert json.loads((tmp_path / "pkg" / "recipe.json").read_text())["kind"] == "chain"
    assert result.recipe == "prune_channels-params30pct-ft1+static_int8-pc-minmax"


def test_package_refuses_a_failed_candidate_an_unknown_one_and_a_non_empty_folder(
    chain_run: Path, run_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="failed"):
        package_candidate(chain_run, "c01-failed", tmp_path / "a")
    with pytest.raises(NotFoundError):
        package_candidate(chain_run, "c99-nope", tmp_path / "b")
    with pytest.raises(NotFoundError, match="recommended no candidate"):
        package_candidate(chain_run, None, tmp_path / "c")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        package_candidate(run_dir, None, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    package_candidate(run_dir, None, busy, overwrite=True)
    assert not (busy / "keep.txt").exists() and (busy / "model.onnx").is_file()


def test_resolve_candidate_reads_every_spec_form(run_dir: Path) -> None:
    report = run_dir / "report.json"
    some = next(run_dir.glob("candidates/*.onnx"))
    assert resolve_candidate(str(run_dir)) == (report, None)
    assert resolve_candidate(f"{run_dir}#c00-x") == (report, "c00-x")
    assert resolve_candidate(f"{report}#c01-y") == (report, "c01-y")
    assert resolve_candidate(str(some)) == (report, some.stem)
    assert resolve_candidate(str(run_dir / "best.onnx")) == (report, None)
    with pytest.raises(NotFoundError):
        resolve_candidate(str(run_dir / "nothing-here"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optimizer.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_package_cli_writes_the_folder_and_exits_2_with_a_hint_for_an_unknown_candidate(
    run_dir: Path, tmp_path: Path
) -> None:
    cid = load_report(run_dir).recommended
    proc = _cli("package", f"{run_dir}#{cid}", "-o", str(tmp_path / "pkg"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["candidate_id"] == cid and (tmp_path / "pkg" / "run.py").is_file()
    proc = _cli("package", f"{run_dir}#c99-nope", "-o", str(tmp_path / "other"))
    assert proc.returncode == 2 and proc.stderr.startswith("error [not_found]") and "hint:" in proc.stderr
    assert not (tmp_path / "other").exists()
