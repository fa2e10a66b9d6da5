"""The onnxruntime quantizers: static int8, dynamic int8, fp16 and int4 weight-only on an ONNX model.

One backend function per recipe type (:func:`backend`); :func:`quantize_model` validates, pre-processes in a
private temporary folder (parallel runs never share a file) and checks that the result loads. :func:`apply_step`
is the step the technique registry (:mod:`optimizer.techniques.registry`) names for these four recipes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import onnx
from pydantic import BaseModel

from optimizer.errors import QuantTaaSError, RecipeError, TechniqueError
from optimizer.measure.data import Dataset
from optimizer.measure.hardware import int8_saturates
from optimizer.models.inspect import default_opset, inspect_model, load_onnx
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.types import (
    DynamicInt8Recipe,
    Fp16Recipe,
    Int4WeightOnlyRecipe,
    OrtOptimizedRecipe,
    Recipe,
    StaticInt8Recipe,
)

if TYPE_CHECKING:
    from optimizer.techniques.chain import StepContext

log = logging.getLogger(__name__)

R = TypeVar("R")
Backend = Callable[[Path, Any, Path, Dataset | None], None]
_BACKENDS: dict[type, Backend] = {}


def backend(recipe_type: type[R]) -> Callable[[Callable[[Path, R, Path, Dataset | None], None]], Backend]:
    """The onnxruntime function that applies ``recipe_type`` (this module's own dispatch, behind apply_step)."""

    def wrap(fn: Callable[[Path, R, Path, Dataset | None], None]) -> Backend:
        _BACKENDS[recipe_type] = fn
        return fn

    return wrap


def needs_calibration(recipe: Recipe) -> bool:
    return isinstance(recipe, StaticInt8Recipe)


def apply_step(ctx: StepContext, recipe: Recipe, src: Path, out: Path, index: int) -> dict[str, Any]:
    """One onnxruntime quantizer as a step of the engine (:func:`optimizer.techniques.chain.apply_recipe`); the
    engine checks that the file loads. After it the ONNX file no longer matches a PyTorch model."""
    quantize_model(src, recipe, out, calib=ctx.calib, prepared=ctx.prepared and index == 0, check=False)
    ctx.onnx_only_since = index
    return {"backend": "onnxruntime", "finetuned": False, "finetune": "none (post-training)"}


def quantize_model(
    model_path: str | Path,
    recipe: Recipe,
    out_path: str | Path,
    *,
    calib: Dataset | None = None,
    prepared: bool = False,
    check: bool = True,
) -> Path:
    """Apply ``recipe`` to the model at ``model_path`` and write the result to ``out_path``.

    ``check=False`` leaves the load check to the caller (the engine checks every step).
    ``prepared=True`` skips pre-processing when the caller already ran :func:`optimizer.models.preprocess.prepare_model`
    (the sweep does it once per model, not once per candidate).

    Raises:
        ModelLoadError: the input is not a valid model.
        RecipeError: the recipe does not fit the model (already quantized, no calibration data for static,
            unknown layer names in keep_fp32, no layer the recipe applies to).
        TechniqueError: onnxruntime failed to quantize, or the result does not load.
    """
    src = Path(model_path)
    out = Path(out_path)
    info = inspect_model(src)
    if info.quantized:
        raise RecipeError(
            f"{src.name} is already quantized ({', '.join(f'{k}x{v}' for k, v in info.quantization_markers.items())})",
            hint="quantize the original float model instead; quantizing twice compounds the error",
        )
    fn = _BACKENDS.get(type(recipe))
    if fn is None:
        raise RecipeError(f"no technique is registered for recipe kind {recipe.kind!r}")
    if needs_calibration(recipe) and calib is None:
        raise RecipeError(
            f"{recipe.kind} needs calibration data",
            hint="pass --calib DATA.npz (a few hundred representative inputs, no labels needed)",
        )
    with tempfile.TemporaryDirectory(prefix="quanttaas-q-") as tmp:
        work = Path(tmp)
        own_copy = work / "input.onnx"
        if prepared:
            shutil.copyfile(src, own_copy)
        else:
            min_opset = QDQ_MIN_OPSET if isinstance(recipe, StaticInt8Recipe) else 0
            prepare_model(src, own_copy, min_opset=min_opset)
        _check_keep_fp32(own_copy, recipe)
        staged = work / "output.onnx"
        try:
            fn(own_copy, recipe, staged, calib)
        except QuantTaaSError:
            raise
        except Exception as e:
            raise TechniqueError(
                f"{recipe.kind} failed on {src.name}: {e.__class__.__name__}: {str(e)[:300]}",
                hint="try another recipe, or keep the failing layer in fp32 with keep_fp32",
            ) from e
        if check:
            check_loads(staged)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(
            str(staged), out
        )  # staged in the temp dir, so a failed run never leaves a half-written file
    return out


def check_loads(path: Path) -> None:
    """Create an onnxruntime session on ``path``; raises :class:`TechniqueError` when it cannot run."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise TechniqueError(
            f"the quantized model does not load in onnxruntime: {str(e)[:300]}",
            hint="this recipe produced operators onnxruntime's CPU provider cannot run; try another recipe",
        ) from e


def _check_keep_fp32(model_path: Path, recipe: Recipe) -> None:
    if not recipe.keep_fp32:
        return
    model = onnx.load(str(model_path), load_external_data=False)
    names = {n.name for n in model.graph.node}
    unknown = [n for n in recipe.keep_fp32 if n not in names]
    if unknown:
        sample = sorted(n for n in names if n)[:8]
        raise RecipeError(
            f"keep_fp32 names layers the model does not have: {unknown}",
            hint=f"use node names from `quanttaas inspect` (e.g. {sample})",
        )


class _CalibrationReader:
    """Feeds calibration samples to onnxruntime in small batches."""

    def __init__(self, data: Dataset, limit: int, batch: int):
        self._data = data.head(limit)
        self._batch = max(1, batch)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        n = self._data.samples
        for i in range(0, n, self._batch):
            yield {k: v[i : i + self._batch] for k, v in self._data.inputs.items()}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self._batches()


def _calibration_batch(model_path: Path) -> int:
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)  # a fixed batch axis: feed exactly that many
    return 16


@backend(StaticInt8Recipe)
def _static_int8(src: Path, recipe: StaticInt8Recipe, out: Path, calib: Dataset | None) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if calib is None:
        raise RecipeError("static int8 needs calibration data", hint="pass --calib DATA.npz")
    batches = _CalibrationReader(calib, recipe.calib_samples, _calibration_batch(src))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[recipe.calibration]
    if recipe.per_channel and (default_opset(load_onnx(src, load_external_data=False)) or 0) < QDQ_MIN_OPSET:
        raise RecipeError(
            "per-channel static quantization needs opset 13 or later", hint="use per_channel=false"
        )
    quantize_static(
        str(src),
        str(out),
        Reader(),
        quant_format=QuantFormat.QOperator if recipe.quant_format == "qoperator" else QuantFormat.QDQ,
        op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
        per_channel=recipe.per_channel,
        activation_type=QuantType.QUInt8,  # u8 activations + s8 weights: the fast path of the CPU kernels
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(recipe.keep_fp32),
        calibrate_method=method,
        reduce_range=int8_saturates() if recipe.reduce_range is None else recipe.reduce_range,
        extra_options={
            "WeightSymmetric": recipe.weight_symmetric,
            "ActivationSymmetric": recipe.activation_symmetric,
            "CalibTensorRangeSymmetric": False,
        },
    )


@backend(DynamicInt8Recipe)
def _dynamic_int8(src: Path, recipe: DynamicInt8Recipe, out: Path, calib: Dataset | None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime's dynamic quantizer first rewrites every Gemm NAME as a MatMul named NAME_MatMul (+ Add), and
    # then quantizes only the op types it is given: without this, op_types=("Gemm",) quantized nothing and
    # keep_fp32 of a Gemm was ignored.
    op_types = set(recipe.op_types)
    if op_types & {"MatMul", "Gemm"}:
        op_types |= {"MatMul", "Gemm"}
    exclude = [*recipe.keep_fp32, *(f"{name}_MatMul" for name in recipe.keep_fp32)]
    present = set(inspect_model(src).op_counts)
    if not present & op_types:
        raise RecipeError(
            f"dynamic int8 on {list(recipe.op_types)}: the model has none of these op types",
            hint=f"choose op types the model has (it has {sorted(present)[:12]})",
        )
    quantize_dynamic(
        str(src),
        str(out),
        op_types_to_quantize=sorted(op_types),
        per_channel=recipe.per_channel,
        # onnxruntime's CPU ConvInteger has no int8-weight kernel: Conv needs uint8 weights to load at all
        weight_type=QuantType.QUInt8 if "Conv" in recipe.op_types else QuantType.QInt8,
        # u8 activations x s8 weights saturate without VNNI (optimizer.measure.hardware); u8 x u8 (Conv) does not
        reduce_range=int8_saturates() and "Conv" not in recipe.op_types,
        nodes_to_exclude=exclude,
    )


@backend(Fp16Recipe)
def _fp16(src: Path, recipe: Fp16Recipe, out: Path, calib: Dataset | None) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(
        model, keep_io_types=recipe.keep_io_types, node_block_list=list(recipe.keep_fp32) or None
    )
    onnx.save(converted, str(out))


@backend(Int4WeightOnlyRecipe)
def _int4_weight_only(src: Path, recipe: Int4WeightOnlyRecipe, out: Path, calib: Dataset | None) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    quantizer = MatMulNBitsQuantizer(
        model,
        block_size=recipe.block_size,
        is_symmetric=recipe.symmetric,
        nodes_to_exclude=list(recipe.keep_fp32),
    )
    quantizer.process()
    result = quantizer.model.model
    if not any(n.op_type == "MatMulNBits" for n in result.graph.node):
        raise RecipeError(
            "int4 weight-only quantizes MatMul layers with constant weights, and this model has none "
            f"whose inner dimension is at least the block size ({recipe.block_size})",
            hint="use static or dynamic int8 for convolutional models",
        )
    onnx.save(result, str(out))


#: the onnxruntime graph optimization level of each OrtOptimizedRecipe level
_ORT_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}


def apply_ort_optimized_step(
    ctx: StepContext, recipe: OrtOptimizedRecipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """onnxruntime's graph optimizations run once and saved to ``out`` (its session's ``optimized_model_filepath``).

    The notes record the session options that go with the file: the provider it was optimized for, and that a
    session may then skip these optimizations (``graph_optimization_level`` up to the level applied is already
    done; the CPU-specific layout rewrites of ORT_ENABLE_ALL are still left to the session).

    Raises:
        TechniqueError: onnxruntime cannot optimize the model.
    """
    import onnxruntime as ort

    level = _ORT_LEVELS[recipe.level]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise TechniqueError(
            f"onnxruntime could not optimize {src.name}: {str(e)[:300]}",
            hint="the model does not load in onnxruntime's CPU provider",
        ) from e
    if not out.is_file():
        raise TechniqueError("onnxruntime wrote no optimized model", hint="try level='basic'")
    ctx.onnx_only_since = index
    return {
        "backend": "onnxruntime",
        "finetuned": False,
        "finetune": "none (graph rewrite only)",
        "session_options": {
            "providers": ["CPUExecutionProvider"],
            "optimized_for": f"onnxruntime {ort.__version__}, CPUExecutionProvider",
            "applied_level": level,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "note": f"the {level} rewrites are already in the file; ORT_ENABLE_ALL adds only the CPU-specific "
            "layout rewrites at load time (ORT_DISABLE_ALL also works and loads fastest, without them)",
        },
    }


def registered_kinds() -> list[str]:
    """The recipe kinds this module's onnxruntime backends apply."""
    return sorted(str(t.model_fields["kind"].default) for t in _BACKENDS if issubclass(t, BaseModel))
