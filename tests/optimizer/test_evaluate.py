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


def _stateful_model(path: Path) -> Path:
    """A VAD-like model: ``input`` [N,4], ``state`` [2,N,3] (batch on axis 1), ``sr`` an int64 scalar; two outputs,
    ``prob`` [N,1] and ``new_state`` [2,N,3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((4, 3)) * 0.5).astype(np.float32), "W")
    w2 = numpy_helper.from_array(np.array([[1.0], [-1.0], [0.5]], np.float32), "W2")
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["h"], name="mm"),
        helper.make_node("Add", ["state", "h"], ["new_state"], name="add_state"),
        helper.make_node("ReduceSum", ["new_state", "axis0"], ["summed"], name="sum", keepdims=0),
        helper.make_node("Cast", ["sr"], ["srf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Div", ["srf", "sr_ref"], ["ratio"], name="div"),
        helper.make_node("Mul", ["summed", "ratio"], ["scaled"], name="mul"),
        helper.make_node("MatMul", ["scaled", "W2"], ["logit"], name="mm2"),
        helper.make_node("Sigmoid", ["logit"], ["prob"], name="sig"),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 3]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, "N", 3]),
        ],
        initializer=[
            w,
            w2,
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
            numpy_helper.from_array(np.array(16000.0, np.float32), "sr_ref"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_evaluate_feeds_scalar_and_state_inputs_and_scores_the_output_the_data_names(tmp_path: Path) -> None:
    from optimizer.models.inspect import inspect_model
    from optimizer.techniques.quantize import quantize_model
    from optimizer.types import StaticInt8Recipe

    model = _stateful_model(tmp_path / "vad.onnx")
    rng = np.random.default_rng(1)
    n = 40
    arrays = {
        "input": rng.standard_normal((n, 4)).astype(np.float32),
        "state": rng.standard_normal((n, 2, 3)).astype(
            np.float32
        ),  # samples first; the model's batch is axis 1
        "sr": np.array(16000, np.int64),
    }
    path = save_data(tmp_path / "d.npz", arrays)
    np.savez(tmp_path / "d2.npz", **arrays, output=np.asarray("new_state"))
    data = load_data(path, inspect_model(model).inputs)
    assert data.batch_axes == {"state": 1, "sr": None} and data.samples == n
    feed = data.feed(0, 8)
    assert feed["state"].shape == (2, 8, 3) and feed["sr"].shape == ()
    base, ref = evaluate_model(model, data, keep_outputs=True, as_reference=True, latency_runs=2)
    assert base.metric_name == "decision_agreement" and base.metric == 1.0  # prob [N,1]: one score per sample
    assert base.metric_note and "one score per sample" in base.metric_note
    by_state = load_data(tmp_path / "d2.npz", inspect_model(model).inputs)
    m2, _ = evaluate_model(model, by_state, as_reference=True, latency_runs=0)
    assert m2.metric_name == "cosine" and m2.metric == pytest.approx(1.0)  # the state output: a map
    q = quantize_model(model, StaticInt8Recipe(), tmp_path / "q.onnx", calib=data.head(16))
    qm, _ = evaluate_model(q, data, baseline_metric=base.metric, reference_outputs=ref, latency_runs=0)
    assert qm.metric_name == "decision_agreement" and qm.metric is not None and qm.metric >= 0.8


def test_run_model_puts_samples_first_for_a_time_major_output_of_a_batch_1_model(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    # a CTC recogniser exported time-major: fixed batch 1, free width, output [T, 1, C]
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])],
        "time_major",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "tm.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(0).random((4, 3, 5), dtype=np.float32)
    data = load_data(save_data(tmp_path / "d.npz", {"x": x}), inspect_model(path).inputs)

    (y,) = run_model(make_session(path), data)

    assert y.shape == (4, 5, 3)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 1))


def test_run_model_joins_a_state_output_batched_on_axis_1_when_the_last_batch_is_short(
    tmp_path: Path,
) -> None:
    model = _stateful_model(tmp_path / "vad.onnx")
    rng = np.random.default_rng(2)
    arrays = {
        "input": rng.standard_normal((40, 4)).astype(np.float32),
        "state": rng.standard_normal((40, 2, 3)).astype(np.float32),
        "sr": np.array(16000, np.int64),
    }
    data = load_data(save_data(tmp_path / "d.npz", arrays), inspect_model(model).inputs)
    session = make_session(model)

    prob, state = run_model(session, data, batch_size=16)  # 16 + 16 + 8

    whole_prob, whole_state = run_model(session, data, batch_size=40)
    assert prob.shape == (40, 1) and state.shape == (40, 2, 3)
    np.testing.assert_allclose(state, whole_state, rtol=1e-6)
    np.testing.assert_allclose(prob, whole_prob, rtol=1e-6)
    one = session.run(None, data.feed(17, 18))[1]  # sample 17 alone: [2, 1, 3]
    np.testing.assert_allclose(state[17], one[:, 0], rtol=1e-6)
