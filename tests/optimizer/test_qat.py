"""Quantization-aware training (torchao PT2E, exported to ONNX QDQ) and neural-compressor's autotune, measured on
onnxruntime like every other candidate.

The QAT case is built to be hard for post-training quantization: digits-cnn with its channels rescaled
alternately by 16 and 1/16 (each conv's output channel k multiplied by s_k, the next conv's input channel k divided
by s_k; ReLU commutes with positive scales, so the float model computes exactly the same function). Activations then
span a 256x range within one tensor, and per-tensor activation scales flatten the small channels to zero.

The scales used to be random (2^-5..2^5 from a seeded generator); how hard that made the case depended on which
channels drew the extremes and on the float model, which is trained on the machine: post-training int8 lost 8.3,
3.3 or 1.1 points for three draws here, and on another machine INC's first configuration met a zero tolerance.
Measured with the alternating scales (two fine-tune seeds): static int8 loses 84.4 points, QAT 1.7-1.9, and no INC
configuration comes near the float model (agreement 0.07-0.16).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from optimizer import zoo
from optimizer.errors import RecipeError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.models.inspect import inspect_model
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.techniques.chain import AppliedRecipe, apply_recipe, torch_source_for
from optimizer.techniques.quantize import quantize_model
from optimizer.types import IncAutotuneRecipe, QatInt8Recipe, StaticInt8Recipe, TorchSource
from optimizer.zoo import zoo_torch_source

SPREAD_LOG2 = 4.0  # channel scales 2**4 and 2**-4, alternating


def _rescale(conv_a: object, conv_b: object) -> None:
    import torch

    n = conv_a.out_channels  # type: ignore[attr-defined]
    s = torch.tensor([2.0 ** (SPREAD_LOG2 if k % 2 == 0 else -SPREAD_LOG2) for k in range(n)])
    with torch.no_grad():
        conv_a.weight.mul_(s.view(-1, 1, 1, 1))  # type: ignore[attr-defined]
        conv_a.bias.mul_(s)  # type: ignore[attr-defined]
        conv_b.weight.div_(s.view(1, -1, 1, 1))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def digits() -> zoo.ZooCase:
    return zoo.get_zoo_case("digits-cnn")


@pytest.fixture(scope="module")
def sensitive(
    digits: zoo.ZooCase, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TorchSource, Dataset, Dataset, float]:
    """The rescaled digits CNN: model.onnx, its PyTorch source (with digits' training data), eval, calib, top-1."""
    import torch

    from optimizer.models.convert import torch_to_onnx
    from optimizer.zoo.digits import DigitsCNN

    root = tmp_path_factory.mktemp("sensitive")
    model = DigitsCNN()
    model.load_state_dict(torch.load(digits.torch_source, weights_only=True))  # type: ignore[arg-type]
    model.eval()
    _rescale(model.features[0], model.features[2])
    _rescale(model.features[2], model.features[5])
    torch.save(model.state_dict(), root / "sensitive.pt")
    torch_to_onnx(
        model,
        (torch.zeros(2, 1, 8, 8),),
        root / "model.onnx",
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    src = torch_source_for(
        root / "model.onnx",
        module="optimizer.zoo.digits:DigitsCNN",
        state_dict_path=root / "sensitive.pt",
        train_path=digits.train_path,
    )
    inputs = inspect_model(root / "model.onnx").inputs
    data = load_data(digits.eval_path, inputs)
    calib = load_data(digits.calib_path, inputs, metric="agreement")
    base, _ = evaluate_model(root / "model.onnx", data, latency_runs=0)
    assert base.metric is not None
    return root / "model.onnx", src, data, calib, base.metric


def drop_pct(path: Path, data: Dataset, base: float) -> float:
    m, _ = evaluate_model(path, data, baseline_metric=base, latency_runs=0)
    assert m.accuracy_drop_pct is not None
    return m.accuracy_drop_pct


def test_rescaled_model_computes_the_same_function_as_digits_cnn(
    digits: zoo.ZooCase, sensitive: tuple[Path, TorchSource, Dataset, Dataset, float]
) -> None:
    _, _, data, _, base = sensitive
    original, _ = evaluate_model(digits.model_path, data, latency_runs=0)
    assert base == pytest.approx(original.metric)


@pytest.fixture(scope="module")
def ptq_and_qat(
    sensitive: tuple[Path, TorchSource, Dataset, Dataset, float], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, AppliedRecipe]:
    """Static int8 (onnxruntime, per channel, min-max: the sweep's default) and 2 epochs of QAT, same model."""
    model, src, _, calib, _ = sensitive
    root = tmp_path_factory.mktemp("qat")
    ptq = quantize_model(model, StaticInt8Recipe(), root / "ptq.onnx", calib=calib)
    qat = apply_recipe(
        model, QatInt8Recipe(epochs=2, lr=1e-3), root / "qat.onnx", calib=calib, torch_source=src
    )
    return ptq, qat


def test_qat_recovers_the_accuracy_static_int8_ptq_loses_on_a_sensitive_model(
    sensitive: tuple[Path, TorchSource, Dataset, Dataset, float], ptq_and_qat: tuple[Path, AppliedRecipe]
) -> None:
    _, _, data, _, base = sensitive
    ptq, qat = ptq_and_qat
    ptq_drop, qat_drop = drop_pct(ptq, data, base), drop_pct(qat.path, data, base)
    assert ptq_drop >= 20.0, (
        f"the constructed case must be hard for post-training int8 (PTQ lost {ptq_drop:.2f} pt)"
    )
    # measured: PTQ 84.4 pt, QAT 1.7-1.9 pt over two fine-tune seeds; 5 pt is 2.5x the worst seed, and QAT must
    # win back at least 90% of what PTQ lost (98% measured)
    assert qat_drop <= 5.0 and qat_drop <= 0.1 * ptq_drop, (
        f"PTQ lost {ptq_drop:.2f} pt, QAT {qat_drop:.2f} pt"
    )
    [step] = qat.steps
    assert step["backend"] == "torchao-pt2e" and step["finetuned"] is True
    assert step["training"]["epochs"] == 2 and step["training"]["loss"] == "cross_entropy"


def test_qat_exports_an_int8_qdq_model_that_onnxruntime_runs_at_any_batch(
    sensitive: tuple[Path, TorchSource, Dataset, Dataset, float], ptq_and_qat: tuple[Path, AppliedRecipe]
) -> None:
    import onnxruntime as ort

    model, _, _, calib, _ = sensitive
    ptq, qat = ptq_and_qat
    info = inspect_model(qat.path)
    assert info.quantized and info.quantization_markers.get("QuantizeLinear", 0) > 0
    assert info.quantization_markers.get("DequantizeLinear", 0) > 0
    # int8 weights, and the exporter's debug metadata stripped: within 25% of onnxruntime's own int8 file
    assert info.size_bytes < 0.45 * inspect_model(model).size_bytes
    assert info.size_bytes < 1.25 * inspect_model(ptq).size_bytes
    assert [t.name for t in info.inputs] == ["input"] and [t.name for t in info.outputs] == ["logits"]
    assert not isinstance(info.inputs[0].shape[0], int), "the batch axis stays dynamic"
    session = ort.InferenceSession(str(qat.path), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        (out,) = session.run(None, {"input": calib.inputs["input"][:n]})
        assert out.shape == (n, 10)


def test_qat_needs_labelled_training_data(
    sensitive: tuple[Path, TorchSource, Dataset, Dataset, float], tmp_path: Path
) -> None:
    model, src, _, calib, _ = sensitive
    with pytest.raises(RecipeError) as err:
        apply_recipe(
            model,
            QatInt8Recipe(),
            tmp_path / "q.onnx",
            calib=calib,
            torch_source=src.model_copy(update={"train_path": None}),
        )
    assert "training data" in err.value.message


def test_inc_autotune_result_is_exported_and_measured_again_on_onnxruntime(
    digits: zoo.ZooCase, tmp_path: Path
) -> None:
    src = zoo_torch_source("digits-cnn")
    inputs = inspect_model(digits.model_path).inputs
    data = load_data(digits.eval_path, inputs)
    calib = load_data(digits.calib_path, inputs, metric="agreement")
    base, _ = evaluate_model(digits.model_path, data, latency_runs=0)
    assert base.metric is not None
    applied = apply_recipe(
        digits.model_path, IncAutotuneRecipe(), tmp_path / "inc.onnx", calib=calib, torch_source=src
    )
    [step] = applied.steps
    assert step["backend"] == "neural-compressor-pt2e" and step["finetuned"] is False
    # what INC said about itself is kept apart, and the file is what is measured
    assert step["inc"]["trials"] and step["inc"]["tuning_metric"].startswith("top-1 agreement")
    assert step["weights_folded"] is True
    info = inspect_model(applied.path)
    assert info.quantized and info.size_bytes < 0.45 * inspect_model(digits.model_path).size_bytes
    assert drop_pct(applied.path, data, base.metric) <= 2.0


def test_inc_autotune_that_meets_no_tolerance_still_gives_a_measured_candidate_and_says_so(
    sensitive: tuple[Path, TorchSource, Dataset, Dataset, float],
) -> None:
    """neural-compressor 3.10 returns its best trial when no configuration fits (it caps max_trials at the number
    of configurations): the candidate is kept, measured on onnxruntime, and marked as missing INC's own target."""
    model, src, data, calib, base = sensitive
    spec = TrialSpec(
        id="inc",
        recipe=IncAutotuneRecipe(tolerable_loss=0.0),
        baseline_metric=base,
        latency_runs=3,
        torch_source=src,
    )
    cand, blob = run_trial(spec, TrialInputs(model.read_bytes(), data, calib, None))
    assert cand.ok and blob is not None and cand.metrics is not None
    inc = cand.detail["steps"][0]["inc"]
    # no configuration comes near the float model here (agreement 0.07-0.16 measured), so INC tries all three
    assert sorted(t["config"] for t in inc["trials"]) == [
        "per_channel-kl",
        "per_channel-minmax",
        "per_tensor-minmax",
    ]
    assert max(t["score"] for t in inc["trials"]) < 0.9
    assert inc["met_tolerance"] is False and "best trial" in inc["note"]
    assert inc["chosen"] == max(inc["trials"], key=lambda t: t["score"])["config"]
    # INC's own score is not the metric: the sensitive model loses accuracy on the evaluation set too
    assert cand.metrics.accuracy_drop_pct is not None and cand.metrics.accuracy_drop_pct > 2.0
