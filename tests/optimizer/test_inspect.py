"""inspect_model / load_onnx on graphs whose every number is known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from optimizer.errors import ModelLoadError
from optimizer.models.inspect import inspect_model, load_onnx
from optimizer.techniques.quantize import quantize_model
from optimizer.types import DynamicInt8Recipe, LayerInfo, StaticInt8Recipe, TensorInfo


def test_inspect_model_reports_exact_structure_of_known_graph(tiny_graph_path: Path) -> None:
    info = inspect_model(tiny_graph_path)

    assert info.opset == 13
    assert info.ir_version == 8
    assert info.producer == "test 1.0"
    assert info.size_bytes == tiny_graph_path.stat().st_size
    assert info.external_data_bytes == 0
    # W1 8x4 + b1 8 (initializers) + W2 8x3 (Constant); the int64 shape tensor is not a weight
    assert info.param_count == 32 + 8 + 24
    assert info.constant_param_count == 24
    assert info.inputs == [TensorInfo(name="x", dtype="float32", shape=["N", 4])]
    assert info.outputs == [TensorInfo(name="out", dtype="float32", shape=["N", 3])]
    assert info.op_counts == {"Gemm": 1, "Relu": 1, "Constant": 1, "MatMul": 1, "Reshape": 1}
    assert info.layers == [
        LayerInfo(name="fc1", op_type="Gemm", param_count=40),
        LayerInfo(name="fc2", op_type="MatMul", param_count=24),
    ]
    assert info.quantized is False
    assert info.quantization_markers == {}


def test_inspect_model_counts_torch_cnn_parameters(cnn_path: Path, torch_cnn: object) -> None:
    info = inspect_model(cnn_path)

    expected = sum(p.numel() for p in torch_cnn.parameters())  # type: ignore[attr-defined]
    assert info.param_count == expected
    assert info.constant_param_count == 0
    assert info.op_counts["Conv"] == 2
    assert {layer.op_type for layer in info.layers} == {"Conv", "Gemm"}
    assert sum(layer.param_count for layer in info.layers) == expected
    assert info.inputs[0].shape == ["N", 1, 16, 16]


def test_inspect_model_counts_external_data_size(
    tmp_path: Path, make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(
        make_tiny_graph(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="w.bin",
        size_threshold=0,
    )
    side = tmp_path / "w.bin"
    assert side.stat().st_size > 0

    info = inspect_model(path)

    assert info.external_data_bytes == side.stat().st_size
    assert info.size_bytes == path.stat().st_size + side.stat().st_size
    assert info.param_count == 64  # counted from the dims, without reading the side file


@pytest.mark.parametrize(
    ("recipe", "markers"),
    [
        (StaticInt8Recipe(), {"QuantizeLinear", "DequantizeLinear"}),
        (DynamicInt8Recipe(), {"DynamicQuantizeLinear", "MatMulInteger"}),
    ],
    ids=["static_qdq", "dynamic"],
)
def test_inspect_model_detects_quantized_model(
    tmp_path: Path, cnn_path: Path, cnn_calib: object, recipe: object, markers: set[str]
) -> None:
    out = quantize_model(cnn_path, recipe, tmp_path / "q.onnx", calib=cnn_calib)  # type: ignore[arg-type]

    info = inspect_model(out)

    assert info.quantized is True
    assert markers <= set(info.quantization_markers)
    assert all(v > 0 for v in info.quantization_markers.values())
    assert inspect_model(cnn_path).quantized is False


def test_inspect_model_counts_weights_behind_dequantize_as_layer_weights(
    tmp_path: Path, cnn_path: Path, cnn_calib: object
) -> None:
    out = quantize_model(cnn_path, StaticInt8Recipe(), tmp_path / "q.onnx", calib=cnn_calib)  # type: ignore[arg-type]

    layers = {layer.op_type: layer for layer in inspect_model(out).layers}

    assert {"Conv", "Gemm"} <= set(layers)
    assert "DequantizeLinear" not in layers


# --------------------------------------------------------------------------- load errors


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d, real: d / "missing.onnx", id="missing"),
        pytest.param(lambda d, real: _write(d / "empty.onnx", b""), id="empty"),
        pytest.param(
            lambda d, real: _write(d / "half.onnx", real.read_bytes()[: real.stat().st_size // 2]),
            id="truncated",
        ),
        pytest.param(
            lambda d, real: _write(d / "random.onnx", np.random.default_rng(0).bytes(4096)), id="random_bytes"
        ),
        pytest.param(
            lambda d, real: _write(d / "notes.onnx", b"these are my notes, not a model\n" * 20),
            id="text_file",
        ),
    ],
)
def test_load_onnx_raises_model_load_when_file_is_not_a_model(
    tmp_path: Path, cnn_path: Path, make: Callable[[Path, Path], Path]
) -> None:
    path = make(tmp_path, cnn_path)

    with pytest.raises(ModelLoadError) as exc:
        inspect_model(path)

    assert exc.value.code == "model_load"
    assert path.name in exc.value.message
    assert exc.value.hint


def test_load_onnx_raises_model_load_when_opset_is_newer_than_supported(
    save_model: Callable[[onnx.ModelProto, str], Path], make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    model = make_tiny_graph()
    model.opset_import[0].version = 99
    path = save_model(model, "future.onnx")

    with pytest.raises(ModelLoadError) as exc:
        load_onnx(path)

    assert exc.value.code == "model_load"
    assert "99" in exc.value.message
    assert exc.value.details == {"opset": 99}


def test_load_onnx_raises_model_load_when_no_default_opset(
    save_model: Callable[[onnx.ModelProto, str], Path], make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    model = make_tiny_graph()
    model.opset_import[0].domain = "com.example"
    path = save_model(model, "nodefault.onnx")

    with pytest.raises(ModelLoadError, match="no default-domain opset"):
        load_onnx(path)


def test_load_onnx_returns_model_when_file_is_valid(tiny_graph_path: Path) -> None:
    model = load_onnx(tiny_graph_path)

    assert [n.name for n in model.graph.node] == ["fc1", "relu", "w2_const", "fc2", "reshape"]


# --------------------------------------------------------------------------- validate_model: what an upload must pass


def _with_cycle(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.node.extend(
        [
            onnx.helper.make_node("Add", ["x", "z"], ["w"], name="a"),
            onnx.helper.make_node("Relu", ["w"], ["z"], name="b"),
        ]
    )
    return model


def _hollow_initializer(model: onnx.ModelProto, raw: bytes = b"") -> onnx.ModelProto:
    # W1 declared as 2**42 floats (17.6 TB), backed by ``raw`` only
    t = onnx.TensorProto(name="W1", data_type=onnx.TensorProto.FLOAT, dims=[1 << 21, 1 << 21], raw_data=raw)
    model.graph.initializer[0].CopyFrom(t)
    return model


def _missing_external(model: onnx.ModelProto, location: str = "weights.bin") -> onnx.ModelProto:
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    return model


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_with_cycle, "must be topologically sorted"),
        (
            _hollow_initializer,
            r"initializer 'W1' declares shape \[2097152, 2097152\] of float \(17.6 TB\) but holds 0",
        ),
        (lambda m: _hollow_initializer(m, b"1234"), r"\(17.6 TB\) but holds 4 bytes"),
        (_missing_external, "keeps its data in the external data file 'weights.bin', which is missing"),
        (lambda m: _missing_external(m, "../../etc/passwd"), "outside the model's folder"),
    ],
    ids=["cycle", "hollow-initializer", "short-raw-data", "missing-external-data", "external-data-outside"],
)
def test_validate_model_refuses_what_inspection_alone_accepts(
    save_model: Callable[[onnx.ModelProto, str], Path],
    make_tiny_graph: Callable[[], onnx.ModelProto],
    damage: Callable[[onnx.ModelProto], onnx.ModelProto],
    message: str,
) -> None:
    from optimizer.models.inspect import validate_model

    path = save_model(damage(make_tiny_graph()), "damaged.onnx")
    inspect_model(path)  # reading the structure alone does not notice

    with pytest.raises(ModelLoadError, match=message):
        validate_model(path)


def test_validate_model_accepts_valid_models_and_returns_their_inspection(
    tiny_graph_path: Path, cnn_path: Path, constant_weight_mlp_path: Path
) -> None:
    from optimizer.models.inspect import validate_model

    for path in (tiny_graph_path, cnn_path, constant_weight_mlp_path):
        assert validate_model(path) == inspect_model(path)


def test_is_quant_op_knows_onnxruntime_contrib_quantized_ops() -> None:
    from optimizer.models.inspect import is_quant_op

    for op in (
        "DynamicQuantizeLSTM",
        "QLinearSigmoid",
        "QLinearConcat",
        "MatMulIntegerToFloat",
        "ConvInteger",
    ):
        assert is_quant_op(op), op
    for op in ("Conv", "LSTM", "MatMul", "Quantize", "Cast"):
        assert not is_quant_op(op), op
