"""quantize_model on real tiny models, checked with onnxruntime: ops, size, and closeness to fp32."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from optimizer.errors import ModelLoadError, RecipeError
from optimizer.measure.data import Dataset
from optimizer.models.inspect import default_opset, inspect_model
from optimizer.techniques.quantize import quantize_model, registered_kinds
from optimizer.types import DynamicInt8Recipe, Fp16Recipe, Int4WeightOnlyRecipe, StaticInt8Recipe


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(axis=-1) == b.argmax(axis=-1)).mean())


def _ops(path: Path) -> dict[str, int]:
    return inspect_model(path).op_counts


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in model.graph.node for out in n.output}


@pytest.fixture(scope="module")
def cnn_x(make_cnn_samples: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return make_cnn_samples(64, 99)[0]


@pytest.fixture(scope="module")
def mlp_x() -> np.ndarray:
    return np.random.default_rng(98).standard_normal((64, 64)).astype(np.float32)


def test_registered_kinds_cover_every_recipe() -> None:
    assert registered_kinds() == [
        "dynamic_int8",
        "fp16",
        "int16_activations",
        "int4_weight_only",
        "static_int8",
    ]


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("calibration", ["minmax", "entropy", "percentile"])
def test_quantize_model_static_int8_gives_small_accurate_qdq_model(
    tmp_path: Path,
    cnn_path: Path,
    cnn_calib: Dataset,
    cnn_x: np.ndarray,
    per_channel: bool,
    calibration: Any,
) -> None:
    recipe = StaticInt8Recipe(per_channel=per_channel, calibration=calibration)

    out = quantize_model(cnn_path, recipe, tmp_path / "q.onnx", calib=cnn_calib)

    ops = _ops(out)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    assert out.stat().st_size < 0.35 * cnn_path.stat().st_size
    assert _agreement(_run(out, cnn_x), _run(cnn_path, cnn_x)) >= 0.95
    # per-channel: the first conv's weight scale has one entry per output channel (16), per-tensor one in all
    model = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    dq = _producers(model)[conv.input[1]]
    assert dq.op_type == "DequantizeLinear"
    assert inits[dq.input[0]].dtype == np.int8
    assert inits[dq.input[1]].size == (16 if per_channel else 1)


def test_quantize_model_static_int8_quantizes_matmul_mlp(
    tmp_path: Path, mlp_path: Path, mlp_calib: Dataset, mlp_x: np.ndarray
) -> None:
    out = quantize_model(mlp_path, StaticInt8Recipe(), tmp_path / "q.onnx", calib=mlp_calib)

    assert _ops(out)["DequantizeLinear"] >= 2
    assert out.stat().st_size < 0.35 * mlp_path.stat().st_size
    assert _agreement(_run(out, mlp_x), _run(mlp_path, mlp_x)) >= 0.9


def test_quantize_model_static_int8_honours_op_types(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset
) -> None:
    out = quantize_model(cnn_path, StaticInt8Recipe(op_types=("Gemm",)), tmp_path / "q.onnx", calib=cnn_calib)

    model = onnx.load(str(out))
    producers = _producers(model)
    conv_weights = [producers.get(n.input[1]) for n in model.graph.node if n.op_type == "Conv"]
    gemm_weights = [producers.get(n.input[1]) for n in model.graph.node if n.op_type == "Gemm"]
    assert all(p is None or p.op_type != "DequantizeLinear" for p in conv_weights)
    assert all(p is not None and p.op_type == "DequantizeLinear" for p in gemm_weights)


def test_quantize_model_dynamic_int8_defaults_to_matmul_and_gemm(
    tmp_path: Path, mlp_path: Path, cnn_path: Path, mlp_x: np.ndarray, cnn_x: np.ndarray
) -> None:
    mlp_out = quantize_model(mlp_path, DynamicInt8Recipe(), tmp_path / "mlp_q.onnx")
    cnn_out = quantize_model(cnn_path, DynamicInt8Recipe(), tmp_path / "cnn_q.onnx")

    mlp_ops, cnn_ops = _ops(mlp_out), _ops(cnn_out)
    assert mlp_ops["MatMulInteger"] == 2 and mlp_ops["DynamicQuantizeLinear"] >= 1
    assert "MatMul" not in mlp_ops
    assert mlp_out.stat().st_size < 0.35 * mlp_path.stat().st_size
    assert _agreement(_run(mlp_out, mlp_x), _run(mlp_path, mlp_x)) >= 0.9
    # the CNN's Gemms are quantized, its Convs are left alone
    assert cnn_ops["MatMulInteger"] == 2
    assert cnn_ops["Conv"] == 2 and "ConvInteger" not in cnn_ops
    assert _agreement(_run(cnn_out, cnn_x), _run(cnn_path, cnn_x)) >= 0.95


def test_quantize_model_dynamic_int8_quantizes_conv_when_asked(
    tmp_path: Path, cnn_path: Path, cnn_x: np.ndarray
) -> None:
    out = quantize_model(cnn_path, DynamicInt8Recipe(op_types=("Conv", "Gemm")), tmp_path / "q.onnx")

    ops = _ops(out)
    assert ops["ConvInteger"] == 2 and ops["MatMulInteger"] == 2
    assert "Conv" not in ops
    assert out.stat().st_size < 0.35 * cnn_path.stat().st_size
    assert _agreement(_run(out, cnn_x), _run(cnn_path, cnn_x)) >= 0.9


@pytest.mark.parametrize("op_types", [("Gemm",), ("MatMul",)])
def test_quantize_model_dynamic_int8_quantizes_gemm_when_either_matmul_or_gemm_asked(
    tmp_path: Path, cnn_path: Path, op_types: tuple[str, ...]
) -> None:
    # onnxruntime rewrites Gemm as MatMul before dynamic quantization; asking for Gemm alone used to quantize nothing
    out = quantize_model(cnn_path, DynamicInt8Recipe(op_types=op_types), tmp_path / "q.onnx")

    ops = _ops(out)
    assert ops.get("MatMulInteger") == 2
    assert "MatMul" not in ops and "Gemm" not in ops
    assert out.stat().st_size < 0.35 * cnn_path.stat().st_size


def test_quantize_model_dynamic_int8_keep_fp32_leaves_named_gemm_float(
    tmp_path: Path, cnn_path: Path
) -> None:
    out = quantize_model(cnn_path, DynamicInt8Recipe(keep_fp32=("/fc1/Gemm",)), tmp_path / "q.onnx")

    model = onnx.load(str(out))
    float_matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    assert [n.name for n in float_matmuls] == ["/fc1/Gemm_MatMul"]
    inits = {t.name: t for t in model.graph.initializer}
    assert inits[float_matmuls[0].input[1]].data_type == onnx.TensorProto.FLOAT
    assert _ops(out)["MatMulInteger"] == 1


def test_quantize_model_dynamic_int8_raises_recipe_invalid_when_no_op_matches(
    tmp_path: Path, mlp_path: Path
) -> None:
    with pytest.raises(RecipeError, match="none of these op types"):
        quantize_model(mlp_path, DynamicInt8Recipe(op_types=("Conv",)), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_quantize_model_fp16_halves_size_and_keeps_outputs(
    tmp_path: Path, cnn_path: Path, cnn_x: np.ndarray
) -> None:
    out = quantize_model(cnn_path, Fp16Recipe(), tmp_path / "q.onnx")

    model = onnx.load(str(out))
    float_inits = [
        t
        for t in model.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    ]
    assert float_inits and all(t.data_type == onnx.TensorProto.FLOAT16 for t in float_inits)
    # float32 inputs and outputs are kept
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ratio = out.stat().st_size / cnn_path.stat().st_size
    assert 0.45 < ratio < 0.55
    got, want = _run(out, cnn_x), _run(cnn_path, cnn_x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.05 * float(np.abs(want).max()))
    assert _agreement(got, want) >= 0.98


def test_quantize_model_int4_packs_matmul_weights(tmp_path: Path, mlp_path: Path, mlp_x: np.ndarray) -> None:
    out = quantize_model(mlp_path, Int4WeightOnlyRecipe(block_size=32), tmp_path / "q.onnx")

    ops = _ops(out)
    assert ops.get("MatMulNBits") == 2
    assert "MatMul" not in ops
    assert out.stat().st_size < 0.25 * mlp_path.stat().st_size
    assert _agreement(_run(out, mlp_x), _run(mlp_path, mlp_x)) >= 0.85


def test_quantize_model_int4_raises_recipe_invalid_when_model_has_no_matmul(
    tmp_path: Path, cnn_path: Path, sha256: Callable[[Path], str]
) -> None:
    # the CNN's Linear layers export as Gemm, which MatMulNBits does not cover
    before = sha256(cnn_path)

    with pytest.raises(RecipeError) as exc:
        quantize_model(cnn_path, Int4WeightOnlyRecipe(), tmp_path / "q.onnx")

    assert exc.value.code == "recipe_invalid"
    assert "MatMul" in exc.value.message
    assert not (tmp_path / "q.onnx").exists()
    assert sha256(cnn_path) == before


def test_quantize_model_int4_raises_recipe_invalid_when_model_is_conv_only(
    tmp_path: Path, save_model: Callable[[onnx.ModelProto, str], Path]
) -> None:
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "W"
    )
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            onnx.helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "conv_only",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 8, 8, 8])],
        initializer=[w],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8
    src = save_model(model, "conv_only.onnx")

    with pytest.raises(RecipeError, match="int4 weight-only quantizes MatMul"):
        quantize_model(src, Int4WeightOnlyRecipe(), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_quantize_model_keep_fp32_leaves_named_node_float(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset
) -> None:
    out = quantize_model(
        cnn_path, StaticInt8Recipe(keep_fp32=("/c1/Conv",)), tmp_path / "q.onnx", calib=cnn_calib
    )

    model = onnx.load(str(out))
    producers = _producers(model)
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    kept = producers.get(convs["/c1/Conv"].input[1])
    assert kept is None or kept.op_type != "DequantizeLinear"
    inits = {t.name: t for t in model.graph.initializer}
    assert inits[convs["/c1/Conv"].input[1]].data_type == onnx.TensorProto.FLOAT
    assert producers[convs["/c2/Conv"].input[1]].op_type == "DequantizeLinear"


def test_quantize_model_raises_recipe_invalid_when_keep_fp32_names_unknown_node(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset
) -> None:
    with pytest.raises(RecipeError) as exc:
        quantize_model(
            cnn_path, StaticInt8Recipe(keep_fp32=("no_such_node",)), tmp_path / "q.onnx", calib=cnn_calib
        )

    assert exc.value.code == "recipe_invalid"
    assert "no_such_node" in exc.value.message
    assert "/c1/Conv" in exc.value.hint


def test_quantize_model_raises_recipe_invalid_when_static_has_no_calibration(
    tmp_path: Path, cnn_path: Path
) -> None:
    with pytest.raises(RecipeError, match="calibration"):
        quantize_model(cnn_path, StaticInt8Recipe(), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("second", [DynamicInt8Recipe(), Fp16Recipe()], ids=["dynamic", "fp16"])
def test_quantize_model_raises_recipe_invalid_when_model_already_quantized(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset, second: Any
) -> None:
    once = quantize_model(cnn_path, StaticInt8Recipe(), tmp_path / "once.onnx", calib=cnn_calib)

    with pytest.raises(RecipeError, match="already quantized"):
        quantize_model(once, second, tmp_path / "twice.onnx")
    assert not (tmp_path / "twice.onnx").exists()


def test_quantize_model_raises_model_load_when_input_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage" * 50)

    with pytest.raises(ModelLoadError):
        quantize_model(bad, DynamicInt8Recipe(), tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize(
    "recipe",
    [DynamicInt8Recipe(), StaticInt8Recipe()],
    ids=["dynamic", "static"],
)
def test_quantize_model_quantizes_weights_held_in_constant_nodes(
    tmp_path: Path, constant_weight_mlp_path: Path, recipe: Any
) -> None:
    assert inspect_model(constant_weight_mlp_path).constant_param_count == 64 * 48 + 48 * 10 + 10
    calib = Dataset("mem", {"x": _mlp_inputs(0, 16)}, None, "agreement")

    out = quantize_model(constant_weight_mlp_path, recipe, tmp_path / "q.onnx", calib=calib)

    info = inspect_model(out)
    assert info.constant_param_count == 0
    assert "Constant" not in info.op_counts
    model = onnx.load(str(out))
    int8_weights = [
        t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    ]
    assert sum(int(np.prod(t.dims)) for t in int8_weights) >= 64 * 48 + 48 * 10
    x = _mlp_inputs(100, MLP_EVAL_SAMPLES)
    assert _agreement(_run(out, x), _run(constant_weight_mlp_path, x)) >= MLP_MIN_AGREEMENT


# Top-1 agreement of the int8 MLP with its float original, over 2,000 held-out inputs: static int8 (per channel or
# per tensor, calibrated on 16 inputs of 4 calibration seeds) measured 0.976-0.986, dynamic 0.987. The old check
# used the 16 calibration inputs themselves, where one flipped sample moved it by 6 points and it failed on
# another machine (0.81). 0.95 is about 3x the seed spread below the lowest measurement; a quantizer that breaks
# the weights (e.g. saturating int8 arithmetic) lands far lower.
MLP_EVAL_SAMPLES = 2000
MLP_MIN_AGREEMENT = 0.95


def _mlp_inputs(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 64)).astype(np.float32)


@pytest.mark.parametrize("recipe", [DynamicInt8Recipe(), StaticInt8Recipe()], ids=["dynamic", "static"])
def test_quantize_model_reduces_the_weight_range_where_int8_kernels_saturate(
    tmp_path: Path, constant_weight_mlp_path: Path, recipe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an x86 CPU without VNNI, onnxruntime's u8 x s8 kernels saturate with full 8-bit weights: weights are
    quantized to 7 bits there (onnxruntime's reduce_range), and the model stays accurate."""
    import optimizer.techniques.quantize as q

    calib = Dataset("mem", {"x": _mlp_inputs(0, 16)}, None, "agreement")
    ranges = {}
    for saturates in (False, True):
        monkeypatch.setattr(q, "int8_saturates", lambda s=saturates: s)
        out = quantize_model(constant_weight_mlp_path, recipe, tmp_path / f"q{saturates}.onnx", calib=calib)
        weights = [
            numpy_helper.to_array(t)
            for t in onnx.load(str(out)).graph.initializer
            if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
        ]
        assert weights
        ranges[saturates] = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
        x = _mlp_inputs(100, MLP_EVAL_SAMPLES)
        assert _agreement(_run(out, x), _run(constant_weight_mlp_path, x)) >= MLP_MIN_AGREEMENT
    assert ranges[False] > 64 and ranges[True] <= 64, ranges


def test_quantize_model_upgrades_opset11_model_for_per_channel_static(
    tmp_path: Path, cnn_opset11_path: Path, cnn_calib: Dataset, cnn_x: np.ndarray
) -> None:
    assert default_opset(onnx.load(str(cnn_opset11_path))) == 11

    out = quantize_model(
        cnn_opset11_path, StaticInt8Recipe(per_channel=True), tmp_path / "q.onnx", calib=cnn_calib
    )

    model = onnx.load(str(out))
    assert (default_opset(model) or 0) >= 13
    dq_axes = [
        a.i
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        for a in n.attribute
        if a.name == "axis"
    ]
    assert dq_axes, "per-channel weights carry an axis"
    assert _agreement(_run(out, cnn_x), _run(cnn_opset11_path, cnn_x)) >= 0.95


def test_quantize_model_parallel_runs_on_same_input_do_not_collide(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset, cnn_x: np.ndarray
) -> None:
    src = tmp_path / "shared.onnx"
    shutil.copyfile(cnn_path, src)
    recipes: list[Any] = [StaticInt8Recipe(), StaticInt8Recipe(per_channel=False)]
    results: dict[int, Path] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = quantize_model(src, recipes[i], tmp_path / f"out{i}.onnx", calib=cnn_calib)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors
    assert sorted(results) == [0, 1]
    for out in results.values():
        assert inspect_model(out).quantized
        assert _agreement(_run(out, cnn_x), _run(cnn_path, cnn_x)) >= 0.95
    # nothing was written next to the shared input
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.onnx", "out1.onnx", "shared.onnx"]


def test_quantize_model_failure_leaves_no_output_and_input_unchanged(
    tmp_path: Path, cnn_path: Path, cnn_calib: Dataset, sha256: Callable[[Path], str]
) -> None:
    src = tmp_path / "in.onnx"
    shutil.copyfile(cnn_path, src)
    before = sha256(src)
    out = tmp_path / "sub" / "q.onnx"

    with pytest.raises(RecipeError):
        quantize_model(src, StaticInt8Recipe(keep_fp32=("ghost",)), out, calib=cnn_calib)

    assert not out.exists()
    assert sha256(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]


def test_quantize_model_does_not_change_input_on_success(
    tmp_path: Path, constant_weight_mlp_path: Path, sha256: Callable[[Path], str]
) -> None:
    # pre-processing rewrites Constant weights: it must do so on a copy
    before = sha256(constant_weight_mlp_path)

    quantize_model(constant_weight_mlp_path, DynamicInt8Recipe(), tmp_path / "q.onnx")

    assert sha256(constant_weight_mlp_path) == before
