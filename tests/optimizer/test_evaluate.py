"""evaluate_model / evaluate_path against a manual onnxruntime computation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from optimizer.errors import DataError, EvaluationError, ModelLoadError
from optimizer.measure.data import Dataset, load_data, save_data
from optimizer.measure.evaluate import evaluate_model, evaluate_path, make_session, run_model
from optimizer.models.inspect import inspect_model
from optimizer.techniques.quantize import quantize_model
from optimizer.types import DynamicInt8Recipe, TensorInfo


def _manual_logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0])


@pytest.fixture(scope="module")
def dynamic_cnn(tmp_path_factory: pytest.TempPathFactory, cnn_path: Path) -> Path:
    return quantize_model(cnn_path, DynamicInt8Recipe(), tmp_path_factory.mktemp("eval") / "cnn_dyn.onnx")


def test_evaluate_model_matches_manual_onnxruntime_run(cnn_path: Path, cnn_eval: Dataset) -> None:
    # labels that make the accuracy a fraction no model would hit by chance: the true argmax on every third sample
    logits = _manual_logits(cnn_path, cnn_eval.inputs["x"])
    labels = logits.argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % logits.shape[1]
    data = Dataset("mem", cnn_eval.inputs, labels, "top1")
    expected = float((logits.argmax(axis=1) == labels).mean())

    metrics, outputs = evaluate_model(
        cnn_path, data, threads=2, batch_size=4, latency_runs=7, warmup_runs=1, keep_outputs=True
    )

    assert metrics.metric == pytest.approx(expected)
    assert metrics.metric == pytest.approx(2 / 3)
    assert metrics.metric_name == "top1"
    assert metrics.size_bytes == cnn_path.stat().st_size
    assert metrics.latency_runs == 7
    assert metrics.latency_ms_p50 is not None and metrics.latency_ms_p95 is not None
    assert 0 < metrics.latency_ms_p50 <= metrics.latency_ms_p95
    assert metrics.threads == 2
    assert metrics.batch_size == 4
    assert metrics.samples == cnn_eval.samples
    assert metrics.backend == "CPUExecutionProvider"
    assert metrics.accuracy_drop_pct is None
    assert metrics.peak_memory_bytes is not None and metrics.peak_memory_bytes >= 0
    assert outputs is not None
    np.testing.assert_allclose(outputs[0], logits, rtol=1e-5, atol=1e-5)


def test_evaluate_model_skips_latency_when_zero_runs(cnn_path: Path, cnn_eval: Dataset) -> None:
    metrics, outputs = evaluate_model(cnn_path, cnn_eval, latency_runs=0)

    assert metrics.latency_runs == 0
    assert metrics.latency_ms_p50 is None and metrics.latency_ms_p95 is None
    assert outputs is None


def test_evaluate_model_uses_settings_defaults(
    quanttaas_home: Path, monkeypatch: pytest.MonkeyPatch, cnn_path: Path, cnn_eval: Dataset
) -> None:
    from optimizer.settings import get_settings

    monkeypatch.setenv("QUANTTAAS_LATENCY_RUNS", "4")
    monkeypatch.setenv("QUANTTAAS_THREADS", "3")
    get_settings.cache_clear()

    metrics, _ = evaluate_model(cnn_path, cnn_eval, warmup_runs=0)

    assert metrics.latency_runs == 4
    assert metrics.threads == 3


def test_run_model_concatenates_batches_in_order(cnn_path: Path, cnn_eval: Dataset) -> None:
    session = make_session(cnn_path)

    outputs = run_model(session, cnn_eval, batch_size=5)  # 48 samples: the last batch is short

    np.testing.assert_allclose(
        outputs[0], _manual_logits(cnn_path, cnn_eval.inputs["x"]), rtol=1e-5, atol=1e-5
    )


def test_evaluate_path_reports_drop_against_baseline(
    dynamic_cnn: Path, cnn_path: Path, cnn_eval_path: Path
) -> None:
    metrics, base = evaluate_path(dynamic_cnn, cnn_eval_path, baseline_path=cnn_path, latency_runs=3)

    assert base is not None
    data = load_data(cnn_eval_path, inspect_model(cnn_path).inputs)
    assert data.labels is not None
    x = data.inputs["x"]
    assert base.metric == pytest.approx(float((_manual_logits(cnn_path, x).argmax(1) == data.labels).mean()))
    assert metrics.metric == pytest.approx(
        float((_manual_logits(dynamic_cnn, x).argmax(1) == data.labels).mean())
    )
    assert base.metric is not None and metrics.metric is not None
    assert metrics.accuracy_drop_pct == pytest.approx((base.metric - metrics.metric) * 100)
    assert base.accuracy_drop_pct is None
    assert metrics.size_bytes == dynamic_cnn.stat().st_size
    assert base.size_bytes == cnn_path.stat().st_size
    assert metrics.size_bytes < base.size_bytes


def test_evaluate_path_reports_nonzero_drop_exactly(
    tmp_path: Path, dynamic_cnn: Path, cnn_path: Path, cnn_eval: Dataset
) -> None:
    # labels = the baseline's own predictions except where the quantized model disagrees -> drop is exact
    x = cnn_eval.inputs["x"]
    base_pred = _manual_logits(cnn_path, x).argmax(1)
    labels = base_pred.copy()
    labels[:4] = (labels[:4] + 1) % 10  # baseline wrong on 4 of 48 samples
    path = save_data(tmp_path / "d.npz", {"x": x}, labels)
    q_acc = float((_manual_logits(dynamic_cnn, x).argmax(1) == labels).mean())

    metrics, base = evaluate_path(dynamic_cnn, path, baseline_path=cnn_path, latency_runs=0)

    assert base is not None and base.metric == pytest.approx(44 / 48)
    assert metrics.accuracy_drop_pct == pytest.approx((44 / 48 - q_acc) * 100, abs=1e-4)


def test_evaluate_path_scores_agreement_against_baseline_when_no_labels(
    tmp_path: Path, dynamic_cnn: Path, cnn_path: Path, cnn_eval: Dataset
) -> None:
    x = cnn_eval.inputs["x"]
    path = save_data(tmp_path / "unlabelled.npz", {"x": x})
    expected = float(
        (_manual_logits(dynamic_cnn, x).argmax(1) == _manual_logits(cnn_path, x).argmax(1)).mean()
    )

    metrics, base = evaluate_path(dynamic_cnn, path, baseline_path=cnn_path, latency_runs=0)

    assert base is not None
    assert base.metric_name == metrics.metric_name == "agreement"
    assert base.metric == 1.0
    assert metrics.metric == pytest.approx(expected)
    assert metrics.accuracy_drop_pct == pytest.approx((1.0 - expected) * 100)


def test_evaluate_path_raises_evaluation_failed_when_agreement_has_no_baseline(
    tmp_path: Path, cnn_path: Path, cnn_eval: Dataset
) -> None:
    path = save_data(tmp_path / "unlabelled.npz", {"x": cnn_eval.inputs["x"]})

    with pytest.raises(EvaluationError) as exc:
        evaluate_path(cnn_path, path, latency_runs=0)

    assert exc.value.code == "evaluation_failed"
    assert "baseline" in exc.value.hint


def test_evaluate_path_raises_data_invalid_when_data_does_not_match(tmp_path: Path, cnn_path: Path) -> None:
    path = save_data(tmp_path / "bad.npz", {"x": np.zeros((4, 1, 8, 8), np.float32)})

    with pytest.raises(DataError) as exc:
        evaluate_path(cnn_path, path, latency_runs=0)

    assert exc.value.code == "data_invalid"
    assert "axis 2 is 8" in exc.value.message


def test_evaluate_path_raises_data_invalid_when_baseline_inputs_differ(
    cnn_path: Path, cnn_eval_path: Path, save_model: Callable[..., Path], make_tiny_graph: Callable[..., Any]
) -> None:
    other = make_tiny_graph()
    other.graph.input[0].name = "features"
    other.graph.node[0].input[0] = "features"
    baseline = save_model(other, "other.onnx")

    with pytest.raises(DataError, match="baseline"):
        evaluate_path(cnn_path, cnn_eval_path, baseline_path=baseline, latency_runs=0)


def test_evaluate_path_raises_model_load_when_model_corrupt(tmp_path: Path, cnn_eval_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model" * 10)

    with pytest.raises(ModelLoadError):
        evaluate_path(bad, cnn_eval_path)


def test_evaluate_model_raises_evaluation_failed_when_data_shape_is_wrong_for_model(cnn_path: Path) -> None:
    # bypass load_data's checks: the session itself must refuse, and that is reported, not raised raw
    data = Dataset("mem", {"x": np.zeros((2, 3, 16, 16), np.float32)}, None, "agreement")

    with pytest.raises(EvaluationError, match="running samples"):
        evaluate_model(cnn_path, data, latency_runs=0, as_reference=True)


def test_make_session_raises_evaluation_failed_when_model_cannot_load(
    save_model: Callable[..., Path], make_tiny_graph: Callable[..., Any]
) -> None:
    model = make_tiny_graph()
    model.graph.node[0].op_type = "NoSuchOp"
    path = save_model(model, "broken.onnx")

    with pytest.raises(EvaluationError, match=r"broken\.onnx"):
        make_session(path)


def test_dataset_summary_matches_data_file(cnn_eval: Dataset) -> None:
    summary = cnn_eval.summary()

    assert summary.inputs == [TensorInfo(name="x", dtype="float32", shape=[48, 1, 16, 16])]
    assert summary.has_labels
