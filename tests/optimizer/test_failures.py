"""Upstream quantizer failures: classified, retried with their documented workaround, recorded; a file counts only
once onnxruntime has loaded and run it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer.errors import TechniqueError
from optimizer.measure.data import Dataset
from optimizer.techniques import quantize as q
from optimizer.techniques.failures import classify_failure
from optimizer.types import StaticInt8Recipe


def _classifier_with_2d_gemm_bias(path: Path) -> Path:
    """Conv(+bias) -> Relu -> Flatten -> Gemm whose bias is [1, 10], as some exporters write classifier heads:
    per-channel static QDQ trips onnxruntime's int32-bias adjustment on it."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "B"),
        numpy_helper.from_array((rng.standard_normal((16 * 6 * 6, 10)) * 0.1).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.standard_normal((1, 10)).astype(np.float32), "B2"),
        numpy_helper.from_array(np.array([-1, 16 * 6 * 6], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _masked_attention(path: Path) -> Path:
    """scores = x @ W + where(mask, 0, -inf) -> Softmax -> @ V: an activation that holds -inf, as BERT's
    attention mask does."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 8)) * 0.3).astype(np.float32), "W"),
        numpy_helper.from_array((rng.standard_normal((8, 4)) * 0.3).astype(np.float32), "V"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(-np.inf, np.float32), "neg_inf"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["s"], name="scores"),
        helper.make_node("Where", ["mask", "zero", "neg_inf"], ["bias"], name="mask_bias"),
        helper.make_node("Add", ["s", "bias"], ["masked"], name="add_mask"),
        helper.make_node("Softmax", ["masked"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "V"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes,
        "attn",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def _run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_classify_failure_names_the_int32_bias_error_onnxruntime_raises(tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    model = _classifier_with_2d_gemm_bias(tmp_path / "m.onnx")
    batches = iter([{"x": _x(4)}])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    with pytest.raises(ValueError, match="truth value of an array") as err:
        quantize_static(str(model), str(tmp_path / "q.onnx"), Reader(), per_channel=True)
    assert classify_failure(err.value) == "int32_bias_scale"


def test_quantize_model_absorbs_the_int32_bias_error_and_records_the_workaround(tmp_path: Path) -> None:
    model = _classifier_with_2d_gemm_bias(tmp_path / "m.onnx")
    notes: dict = {}
    out = q.quantize_model(
        model,
        StaticInt8Recipe(),
        tmp_path / "q.onnx",
        calib=Dataset("mem", {"x": _x(16)}, None, "fidelity"),
        notes=notes,
    )
    used = notes["workarounds"]
    assert used[0]["failure"] == "int32_bias_scale" and used[0]["workaround"] == "flatten_gemm_bias"
    x = _x(64, seed=5)
    got, want = _run(out, {"x": x}), _run(model, {"x": x})
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_quantize_model_calibrates_entropy_on_finite_values_when_an_activation_holds_minus_inf(
    tmp_path: Path,
) -> None:
    model = _masked_attention(tmp_path / "attn.onnx")
    rng = np.random.default_rng(2)
    mask = rng.random((32, 8)) > 0.3
    mask[:, 0] = True
    calib = Dataset(
        "mem", {"x": rng.standard_normal((32, 8)).astype(np.float32), "mask": mask}, None, "fidelity"
    )
    notes: dict = {}
    out = q.quantize_model(
        model, StaticInt8Recipe(calibration="entropy"), tmp_path / "q.onnx", calib=calib, notes=notes
    )
    assert [w["failure"] for w in notes["workarounds"]] == ["nonfinite_calibration"]
    feed = {"x": calib.inputs["x"][:8], "mask": mask[:8]}
    assert np.isfinite(_run(out, feed)).all()


def test_quantize_model_raises_the_failure_kind_and_workarounds_tried_when_none_helps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _classifier_with_2d_gemm_bias(tmp_path / "m.onnx")
    seen: list[frozenset[str]] = []

    def always_infinite(src, recipe, out, calib, fixes=frozenset()):
        seen.append(fixes)
        raise ValueError("supplied range of [-inf, inf] is not finite")

    monkeypatch.setitem(q._BACKENDS, StaticInt8Recipe, always_infinite)
    with pytest.raises(TechniqueError) as err:
        q.quantize_model(
            model, StaticInt8Recipe(), tmp_path / "q.onnx", calib=Dataset("m", {"x": _x(4)}, None, "fidelity")
        )
    assert err.value.details == {
        "failure": "nonfinite_calibration",
        "workarounds_tried": ["finite_calibration"],
    }
    assert seen == [frozenset(), frozenset({"finite_calibration"})]
    assert "nonfinite_calibration" in err.value.message


def test_check_loads_refuses_a_file_that_loads_but_cannot_run_its_sample(tmp_path: Path) -> None:
    # Reshape to a fixed 7 elements: the session loads, and running a 4-element sample fails
    shape = numpy_helper.from_array(np.array([7], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    q.check_loads(path)  # loads
    with pytest.raises(TechniqueError) as err:
        q.check_loads(path, Dataset("m", {"x": np.zeros((2, 4), np.float32)}, None, "fidelity"))
    assert err.value.details["failure"] == "not_loadable"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "[ONNXRuntimeError] : 1 : FAIL : For per axis quantization, scale must be 1D tensor with size 1",
            "per_axis_scale",
        ),
        ("per-channel static quantization needs opset 13 or later", "opset_per_channel"),
        ("ValueError: supplied range of [-inf, inf] is not finite", "nonfinite_calibration"),
        ("[ShapeInferenceError] Inferred shape and existing shape differ in dimension 0", "shape_inference"),
        ("MemoryError: Unable to allocate 7.2 GiB", "out_of_memory"),
        ("something nobody has seen", "unknown"),
    ],
)
def test_classify_failure_names_each_known_upstream_message(message: str, kind: str) -> None:
    assert classify_failure(message) == kind


def test_opset_11_model_gets_per_channel_qdq_through_the_opset_workaround(
    tmp_path: Path, cnn_opset11_path: Path, cnn_calib: Dataset
) -> None:
    notes: dict = {}
    # prepared=True: nothing upgraded the opset beforehand, so the quantizer meets the opset-11 model as it is
    src = tmp_path / "m11.onnx"
    src.write_bytes(cnn_opset11_path.read_bytes())
    out = q.quantize_model(
        src, StaticInt8Recipe(), tmp_path / "q.onnx", calib=cnn_calib, prepared=True, notes=notes
    )
    assert [w["workaround"] for w in notes["workarounds"]] == ["upgrade_opset"]
    model = onnx.load(str(out))
    axes = [
        a.i
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        for a in n.attribute
        if a.name == "axis"
    ]
    assert axes, "per-channel weights (an axis on DequantizeLinear) after the upgrade"
