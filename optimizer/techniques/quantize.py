"""The onnxruntime quantizers: static int8, dynamic int8, fp16 and int4 weight-only on an ONNX model.

One backend function per recipe type (:func:`backend`); :func:`quantize_model` validates, pre-processes in a
private temporary folder (parallel runs never share a file) and checks that the result loads. :func:`apply_step`
is the step the technique registry (:mod:`optimizer.techniques.registry`) names for these four recipes.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import onnx
from pydantic import BaseModel

from optimizer.errors import QuantTaaSError, RecipeError, TechniqueError
from optimizer.measure.data import Dataset
from optimizer.measure.hardware import int8_saturates
from optimizer.models.files import copy_model, move_model, save_model
from optimizer.models.inspect import default_opset, inspect_model, load_onnx
from optimizer.models.preprocess import QDQ_MIN_OPSET, constants_to_initializers, prepare_model, upgrade_opset
from optimizer.techniques.failures import FIX_TEXT, WORKAROUNDS, classify_failure
from optimizer.types import (
    DynamicInt8Recipe,
    Fp16Recipe,
    Int4WeightOnlyRecipe,
    Int16ActivationsRecipe,
    OrtOptimizedRecipe,
    Recipe,
    StaticInt8Recipe,
)

if TYPE_CHECKING:
    from optimizer.techniques.chain import StepContext

log = logging.getLogger(__name__)

R = TypeVar("R")
#: (input, recipe, output, calibration data, the workarounds to apply: names from failures.WORKAROUNDS)
Backend = Callable[[Path, Any, Path, Dataset | None, frozenset[str]], None]
_BACKENDS: dict[type, Backend] = {}
#: a failed quantization is retried at most this many times, each with one more workaround
MAX_WORKAROUNDS = 3
#: tests and the experiment in evals can switch off the float inputs of kept layers to compare
_RAW_KEEP: contextvars.ContextVar[bool] = contextvars.ContextVar("quanttaas_raw_keep", default=False)


def backend(
    recipe_type: type[R],
) -> Callable[[Callable[[Path, R, Path, Dataset | None, frozenset[str]], None]], Backend]:
    """The onnxruntime function that applies ``recipe_type`` (this module's own dispatch, behind apply_step)."""

    def wrap(fn: Callable[[Path, R, Path, Dataset | None, frozenset[str]], None]) -> Backend:
        _BACKENDS[recipe_type] = fn
        return fn

    return wrap


def needs_calibration(recipe: Recipe) -> bool:
    return isinstance(recipe, StaticInt8Recipe | Int16ActivationsRecipe)


def apply_step(ctx: StepContext, recipe: Recipe, src: Path, out: Path, index: int) -> dict[str, Any]:
    """One onnxruntime quantizer as a step of the engine (:func:`optimizer.techniques.chain.apply_recipe`); the
    engine checks that the file loads and runs. After it the ONNX file no longer matches a PyTorch model."""
    notes: dict[str, Any] = {}
    quantize_model(
        src, recipe, out, calib=ctx.calib, prepared=ctx.prepared and index == 0, check=True, notes=notes
    )
    ctx.onnx_only_since = index
    return {"backend": "onnxruntime", "finetuned": False, "finetune": "none (post-training)", **notes}


def quantize_model(
    model_path: str | Path,
    recipe: Recipe,
    out_path: str | Path,
    *,
    calib: Dataset | None = None,
    prepared: bool = False,
    check: bool = True,
    notes: dict[str, Any] | None = None,
) -> Path:
    """Apply ``recipe`` to the model at ``model_path`` and write the result to ``out_path``.

    A failure of a known upstream kind (:mod:`optimizer.techniques.failures`) is retried with its documented
    workaround; ``notes`` (when given) receives ``workarounds`` (what was used, and why) so the candidate's
    detail says it. With ``check`` the file must load in onnxruntime and run one calibration sample (a file
    onnxruntime refuses counts as a failure of the attempt, and the next workaround is tried).
    ``prepared=True`` skips pre-processing when the caller already ran :func:`optimizer.models.preprocess.prepare_model`
    (the sweep does it once per model, not once per candidate).

    Raises:
        ModelLoadError: the input is not a valid model.
        RecipeError: the recipe does not fit the model (already quantized, no calibration data for static,
            unknown layer names in keep_fp32, no layer the recipe applies to).
        TechniqueError: onnxruntime failed to quantize, or the result does not load or run, after the known
            workarounds; ``details`` carry ``failure`` (its kind) and ``workarounds_tried``.
    """
    src = Path(model_path)
    out = Path(out_path)
    info = inspect_model(src)
    if info.quantized:
        raise RecipeError(
            f"{src.name} is already quantized ({', '.join(f'{k} x{v}' for k, v in info.quantization_markers.items())})",
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
            copy_model(src, own_copy)
        else:
            min_opset = QDQ_MIN_OPSET if needs_calibration(recipe) else 0
            prepare_model(src, own_copy, min_opset=min_opset)
        _check_keep_fp32(own_copy, recipe)
        staged = work / "output.onnx"
        fixes: list[str] = []
        used: list[dict[str, str]] = []
        while True:
            try:
                staged.unlink(missing_ok=True)
                fn(own_copy, recipe, staged, calib, frozenset(fixes))
                if check:
                    check_loads(staged, calib)
                break
            except RecipeError as e:
                kind = classify_failure(e)
                if kind != "opset_per_channel":
                    raise
                err: Exception = e
            except Exception as e:
                err = e
                kind = classify_failure(e)
            nxt = next((f for f in WORKAROUNDS.get(kind, ()) if f not in fixes), None)
            if nxt is None or len(fixes) >= MAX_WORKAROUNDS:
                tried = ", ".join(FIX_TEXT[f] for f in fixes) or "none"
                msg = err.message if isinstance(err, QuantTaaSError) else f"{err.__class__.__name__}: {err}"
                raise TechniqueError(
                    f"{recipe.kind} failed on {src.name} ({kind}): {msg[:300]}",
                    hint=f"workarounds tried: {tried}; try another recipe, or keep the failing layer in fp32",
                    details={"failure": kind, "workarounds_tried": list(fixes)},
                ) from err
            log.info("%s failed on %s (%s); retrying with %s", recipe.kind, src.name, kind, nxt)
            fixes.append(nxt)
            used.append({"failure": kind, "workaround": nxt, "what": FIX_TEXT[nxt]})
        if notes is not None and used:
            notes["workarounds"] = used
        out.parent.mkdir(parents=True, exist_ok=True)
        move_model(staged, out)  # staged in the temp dir, so a failed run never leaves a half-written file
    return out


def _large(path: Path) -> bool:
    """Whether the quantizer must write external data: the input keeps its weights beside it, or is near 2 GB."""
    info = inspect_model(path)
    return bool(info.external_data_bytes) or info.size_bytes > 1_800_000_000


def check_loads(path: Path, sample: Dataset | None = None) -> None:
    """Create an onnxruntime session on ``path`` (with every graph optimisation, as evaluation does) and, when
    ``sample`` data is given, run its first sample: a file counts only once onnxruntime has loaded and run it.

    Raises:
        TechniqueError: onnxruntime refuses the file or fails to run it (``details["failure"]`` says why).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        kind = classify_failure(e)
        raise TechniqueError(
            f"the quantized model does not load in onnxruntime: {str(e)[:300]}",
            hint="this recipe produced a file onnxruntime's CPU provider refuses; try another recipe",
            details={"failure": kind if kind != "unknown" else "not_loadable"},
        ) from e
    if sample is None or not sample.inputs:
        return
    names = [i.name for i in sess.get_inputs()]
    if not set(names) <= set(sample.inputs):
        return  # a step whose file has other inputs (never for quantizers); the evaluation runs it
    dim = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None
    bs = dim if isinstance(dim, int) and dim > 0 else 1
    try:
        sess.run(None, sample.feed(0, bs, names))
    except Exception as e:
        raise TechniqueError(
            f"the quantized model loads but does not run in onnxruntime: {str(e)[:300]}",
            hint="this recipe produced a file onnxruntime cannot run; try another recipe",
            details={"failure": "not_loadable"},
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
            yield self._data.feed(i, i + self._batch)

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


def _flatten_gemm_biases(path: Path) -> int:
    """Reshape 2-D Gemm biases of shape [1, N] to [N] (in place): the same broadcast, and the 1-D bias the
    int32-bias code of onnxruntime's QDQ quantizer expects. Returns how many were reshaped."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, int] = {}
    for n in model.graph.node:
        for x in n.input:
            users[x] = users.get(x, 0) + 1
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        bias = inits[node.input[2]]
        if len(bias.dims) == 2 and bias.dims[0] == 1 and users.get(bias.name, 0) == 1:
            arr = onnx.numpy_helper.to_array(bias).reshape(-1)
            bias.CopyFrom(onnx.numpy_helper.from_array(arr, bias.name))
            changed += 1
    if changed:
        save_model(model, path)
    return changed


def float_inputs_for_kept(path: Path, keep: tuple[str, ...]) -> int:
    """Feed every kept (excluded) node its float inputs, in place: onnxruntime's QDQ quantizer still puts a
    Quantize/Dequantize pair on an activation that a kept node shares with a quantized one (or that a quantized
    producer writes), so a layer "kept in float" computed on int8-rounded inputs, and keeping more layers could
    be worse than keeping fewer (seen on ppocr-rec). Dequantize/Quantize nodes left without consumers are
    removed. Returns how many inputs were rewired."""
    if not keep:
        return 0
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    kept = set(keep)
    rewired = 0
    for node in graph.node:
        if node.name not in kept:
            continue
        for i, x in enumerate(node.input):
            dq = producer.get(x)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or q.input[0] in inits:
                continue  # a weight (an initializer quantized offline) or a tensor that was never float
            node.input[i] = q.input[0]
            rewired += 1
    if not rewired:
        return 0
    outputs = {o.name for o in graph.output}
    while True:
        used = {x for n in graph.node for x in n.input} | outputs
        dead = [
            n
            for n in graph.node
            if n.op_type in ("DequantizeLinear", "QuantizeLinear") and not set(n.output) & used
        ]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    save_model(model, path)
    return rewired


class _FiniteHistograms:
    """While active, onnxruntime's histogram calibration sees only the finite values of each tensor (attention
    masks hold -inf, and ``np.histogram`` refuses an infinite range). Process-wide: trials run one per process."""

    _lock = threading.Lock()

    def __enter__(self) -> None:
        from onnxruntime.quantization import calibrate

        self._lock.acquire()
        self._cls = calibrate.HistogramCollector
        self._orig = self._cls.collect

        def finite(arr: Any) -> Any:
            a = np.asarray(arr)
            if a.dtype.kind != "f" or np.isfinite(a).all():
                return arr
            kept = a[np.isfinite(a)]
            return kept if kept.size else np.zeros(1, dtype=a.dtype)

        orig = self._orig

        def collect(inner: Any, name_to_arr: dict[str, Any]) -> Any:
            clean = {
                k: [finite(x) for x in v] if isinstance(v, list) else finite(v)
                for k, v in name_to_arr.items()
            }
            # histograms of ragged per-batch lists: flatten each batch first (np.asarray needs equal shapes)
            clean = {
                k: np.concatenate([np.ravel(x) for x in v]) if isinstance(v, list) else v
                for k, v in clean.items()
            }
            return orig(inner, clean)

        self._cls.collect = collect

    def __exit__(self, *exc: object) -> None:
        self._cls.collect = self._orig
        self._lock.release()


@backend(StaticInt8Recipe)
def _static_int8(
    src: Path, recipe: StaticInt8Recipe, out: Path, calib: Dataset | None, fixes: frozenset[str] = frozenset()
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if calib is None:
        raise RecipeError("static int8 needs calibration data", hint="pass --calib DATA.npz")
    samples = recipe.calib_samples
    if "fewer_calibration_samples" in fixes:
        samples = max(1, min(samples, calib.samples) // 2)
    batches = _CalibrationReader(calib, samples, _calibration_batch(src))
    per_channel = recipe.per_channel and "per_tensor" not in fixes
    if "flatten_gemm_bias" in fixes:
        _flatten_gemm_biases(src)
    if "upgrade_opset" in fixes:
        model = upgrade_opset(load_onnx(src), QDQ_MIN_OPSET)
        save_model(model, src)
    if "constants_to_initializers" in fixes:
        model = load_onnx(src)
        if constants_to_initializers(model):
            save_model(model, src)

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
    if per_channel and (default_opset(load_onnx(src, load_external_data=False)) or 0) < QDQ_MIN_OPSET:
        raise RecipeError(
            "per-channel static quantization needs opset 13 or later", hint="use per_channel=false"
        )
    extra: dict[str, Any] = {
        "WeightSymmetric": recipe.weight_symmetric,
        "ActivationSymmetric": recipe.activation_symmetric,
        "CalibTensorRangeSymmetric": False,
    }
    if "disable_weight_adjust_for_int32_bias" in fixes:
        extra["QDQDisableWeightAdjustForInt32Bias"] = True
    if "float_bias" in fixes:
        extra["QuantizeBias"] = False
    guard = _FiniteHistograms() if "finite_calibration" in fixes else contextlib.nullcontext()
    with guard:
        quantize_static(
            str(src),
            str(out),
            Reader(),
            quant_format=QuantFormat.QOperator if recipe.quant_format == "qoperator" else QuantFormat.QDQ,
            op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,  # u8 activations + s8 weights: the fast path of the CPU kernels
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(recipe.keep_fp32),
            calibrate_method=method,
            use_external_data_format=_large(src),
            reduce_range=int8_saturates() if recipe.reduce_range is None else recipe.reduce_range,
            extra_options=extra,
        )
    if recipe.keep_fp32 and not _RAW_KEEP.get() and recipe.quant_format != "qoperator":
        float_inputs_for_kept(out, recipe.keep_fp32)


@backend(Int16ActivationsRecipe)
def _int16_activations(
    src: Path, recipe: Int16ActivationsRecipe, out: Path, calib: Dataset | None, fixes: frozenset[str]
) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if calib is None:
        raise RecipeError("int16 activations need calibration data", hint="pass --calib DATA.npz")
    batches = _CalibrationReader(calib, recipe.calib_samples, _calibration_batch(src))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    model = onnx.load(str(src), load_external_data=False)
    extra: dict[str, Any] = {
        "WeightSymmetric": True,
        "ActivationSymmetric": False,
        "CalibTensorRangeSymmetric": False,
    }
    activation_type = QuantType.QUInt16
    names = {n.name: n for n in model.graph.node}
    unknown = [n for n in (*(recipe.int16_layers or ()), *recipe.int16_weight_layers) if n not in names]
    if unknown:
        raise RecipeError(
            f"int16_layers / int16_weight_layers name nodes the model does not have: {unknown[:5]}"
        )
    inits = {i.name for i in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    if recipe.int16_layers is not None:
        tensors = {
            t
            for n in recipe.int16_layers
            for t in (*names[n].input, *names[n].output)
            if t and t not in inits
        }
        # every other activation stays 8-bit; each tensor has one type, and a node reading tensors of two types
        # dequantizes both to float, so 8- and 16-bit layers mix without conversion nodes
        activation_type = QuantType.QUInt8
        overrides.update({t: [{"quant_type": QuantType.QUInt16}] for t in sorted(tensors)})
    for n in recipe.int16_weight_layers:
        node = names[n]
        # the weight is the second input of Conv/Gemm/MatMul; per channel, its output channels' axis
        if len(node.input) > 1 and node.input[1] in inits:
            spec: dict[str, Any] = {"quant_type": QuantType.QInt16}
            if recipe.per_channel:
                spec["axis"] = _weight_axis(model, node)
            overrides[node.input[1]] = [spec]
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    quantize_static(
        str(src),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=recipe.per_channel,
        activation_type=activation_type,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(recipe.keep_fp32),
        extra_options=extra,
    )


def _weight_axis(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    """The output-channel axis of a layer's weight, as onnxruntime's quantizer chooses it: 0 for Conv, 1 for
    ConvTranspose, 0 for a Gemm that transposes its weight, else the last axis ([..., in, out])."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm" and next((a.i for a in node.attribute if a.name == "transB"), 0):
        return 0
    weight = next((i for i in model.graph.initializer if i.name == node.input[1]), None)
    return max(len(weight.dims) - 1, 0) if weight is not None else 1


@backend(DynamicInt8Recipe)
def _dynamic_int8(
    src: Path,
    recipe: DynamicInt8Recipe,
    out: Path,
    calib: Dataset | None,
    fixes: frozenset[str] = frozenset(),
) -> None:
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
        use_external_data_format=_large(src),
    )


@backend(Fp16Recipe)
def _fp16(
    src: Path, recipe: Fp16Recipe, out: Path, calib: Dataset | None, fixes: frozenset[str] = frozenset()
) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(
        model, keep_io_types=recipe.keep_io_types, node_block_list=list(recipe.keep_fp32) or None
    )
    save_model(converted, out)


@backend(Int4WeightOnlyRecipe)
def _int4_weight_only(
    src: Path,
    recipe: Int4WeightOnlyRecipe,
    out: Path,
    calib: Dataset | None,
    fixes: frozenset[str] = frozenset(),
) -> None:
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
    save_model(result, out)


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


def apply_one_liner(ctx: StepContext, recipe: Any, src: Path, out: Path, index: int) -> dict[str, Any]:
    """onnxruntime's own one-liner with every default, on ``src`` as it is (the sweep gives it the original
    file, not the pre-processed one): ``quantize_dynamic(src, out)`` or ``quantize_static(src, out, reader)``.
    No workaround is applied: this is the result a practitioner gets by hand (a failure is recorded as such).

    Raises:
        RecipeError: static without calibration data, or an already quantized model.
        TechniqueError: onnxruntime failed.
    """
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    if inspect_model(src).quantized:
        raise RecipeError(
            f"{src.name} is already quantized", hint="quantize the original float model instead"
        )
    static = recipe.kind == "ort_static_default"
    if static and ctx.calib is None:
        raise RecipeError(f"{recipe.kind} needs calibration data", hint="pass --calib DATA.npz")
    with tempfile.TemporaryDirectory(prefix="quanttaas-1l-") as tmp:
        # quantize_static writes <input>-inferred.onnx next to its input: never next to the user's file
        own = copy_model(src, Path(tmp) / "model.onnx")
        large = bool(inspect_model(own).external_data_bytes)
        try:
            if static:
                assert ctx.calib is not None
                batches = iter(_CalibrationReader(ctx.calib, recipe.calib_samples, _calibration_batch(own)))

                class Reader(CalibrationDataReader):
                    def get_next(self) -> dict[str, np.ndarray] | None:
                        return next(batches, None)

                quantize_static(str(own), str(out), Reader(), use_external_data_format=large)
            else:
                quantize_dynamic(str(own), str(out), use_external_data_format=large)
        except QuantTaaSError:
            raise
        except Exception as e:
            kind = classify_failure(e)
            raise TechniqueError(
                f"{recipe.kind} (onnxruntime's one-liner with its defaults) failed ({kind}): "
                f"{e.__class__.__name__}: {str(e)[:300]}",
                hint="the directed search's own recipes apply the known workarounds",
                details={"failure": kind},
            ) from e
    ctx.onnx_only_since = index
    return {
        "backend": "onnxruntime",
        "finetuned": False,
        "finetune": "none (post-training)",
        "note": "onnxruntime's one-liner with its defaults, on the original file",
    }
