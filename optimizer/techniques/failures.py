"""Known upstream failure modes of the quantizers, and the documented workaround for each.

:func:`classify_failure` names what went wrong from the exception (its message and the functions it passed
through); :data:`WORKAROUNDS` lists, per failure kind, the fixes to retry with, in order. The onnxruntime backend
(:mod:`optimizer.techniques.quantize`) retries a failed quantization with the next fix, records which ones were
used in the candidate's detail, and raises a :class:`~optimizer.errors.TechniqueError` whose ``details`` carry
``failure`` (the kind) and ``workarounds_tried`` when none helps: a failure that remains is data with its cause.

Kinds (each seen on real models with onnxruntime 1.31/1.32):

- ``int32_bias_scale``: ``ValueError: The truth value of an array with more than one element is ambiguous`` in
  ``qdq_quantizer._adjust_weight_scale_for_int32_bias``: per-channel static QDQ of a Gemm whose bias is 2-D
  (``[1, N]``, as some exporters write it). Fixes: reshape such biases to 1-D (what the quantizer expects;
  exact), else ``extra_options={"QDQDisableWeightAdjustForInt32Bias": True}``.
- ``per_axis_scale``: onnxruntime refuses the written file ("For per axis quantization, scale must be 1D tensor
  with size 1"): the bias of such a Gemm was quantized per axis along an axis of size 1. Fixes: keep biases in
  float (``QuantizeBias: False``), then per-tensor weights.
- ``opset_per_channel``: per-channel QDQ needs opset 13 (``axis`` on Quantize/DequantizeLinear). Fixes: convert
  the model to opset 13, then per-tensor.
- ``nonfinite_calibration``: ``supplied range of [-inf, inf] is not finite`` from entropy/percentile calibration
  (attention masks hold -inf). Fix: histograms of the finite values only (the -inf tensors keep a range of their
  finite values; their consumers are left in float).
- ``shape_inference``: symbolic or ONNX shape inference failed. Fix: quantize without the inferred shapes
  (pre-processing already falls back; see :func:`optimizer.models.preprocess.prepare_model`).
- ``constant_weights``: weights sit in ``Constant`` nodes the quantizer cannot see. Fix: move them into
  initializers.
- ``out_of_memory``: the process ran out of memory (calibration keeps every activation). Fix: fewer calibration
  samples.
- ``not_loadable``: onnxruntime cannot load or run the written file (no other cause known).
- ``unknown``.

Light: no onnx or onnxruntime import here.
"""

from __future__ import annotations

import traceback

FAILURE_KINDS: tuple[str, ...] = (
    "int32_bias_scale",
    "per_axis_scale",
    "opset_per_channel",
    "nonfinite_calibration",
    "shape_inference",
    "constant_weights",
    "out_of_memory",
    "not_loadable",
    "unknown",
)

#: failure kind -> the fixes to retry with, in order (names the backend understands)
WORKAROUNDS: dict[str, tuple[str, ...]] = {
    "int32_bias_scale": ("flatten_gemm_bias", "disable_weight_adjust_for_int32_bias"),
    "per_axis_scale": ("float_bias", "per_tensor"),
    "opset_per_channel": ("upgrade_opset", "per_tensor"),
    "nonfinite_calibration": ("finite_calibration",),
    "shape_inference": ("no_shape_inference",),
    "constant_weights": ("constants_to_initializers",),
    "out_of_memory": ("fewer_calibration_samples",),
    "not_loadable": ("float_bias", "per_tensor"),
}

#: what each fix does, for the report
FIX_TEXT: dict[str, str] = {
    "flatten_gemm_bias": "2-D Gemm biases ([1, N]) reshaped to 1-D before quantizing",
    "disable_weight_adjust_for_int32_bias": "extra_options QDQDisableWeightAdjustForInt32Bias=True",
    "float_bias": "biases kept in float (extra_options QuantizeBias=False)",
    "per_tensor": "per-tensor weight scales instead of per-channel",
    "upgrade_opset": "model converted to opset 13 before per-channel QDQ",
    "finite_calibration": "calibration histograms of the finite values only (-inf/NaN ignored)",
    "no_shape_inference": "quantized without onnxruntime's shape inference",
    "constants_to_initializers": "Constant-node weights moved into initializers",
    "fewer_calibration_samples": "half the calibration samples",
}


def _frames(exc: BaseException) -> str:
    names = []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names += [f.name for f in traceback.extract_tb(e.__traceback__)]
        e = e.__cause__ or e.__context__
    return " ".join(names)


def _messages(exc: BaseException) -> str:
    out = []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(f"{e.__class__.__name__}: {e}")
        e = e.__cause__ or e.__context__
    return " | ".join(out)


def classify_failure(exc: BaseException | str) -> str:
    """The kind of a quantizer failure (one of :data:`FAILURE_KINDS`) from the exception (its chain of causes
    and the functions it passed through) or a message."""
    text = exc if isinstance(exc, str) else _messages(exc)
    frames = "" if isinstance(exc, str) else _frames(exc)
    low = text.lower()
    if "_adjust_weight_scale_for_int32_bias" in frames or (
        "truth value of an array" in low and "int32_bias" in low
    ):
        return "int32_bias_scale"
    if "per axis quantization" in low and "scale must be" in low:
        return "per_axis_scale"
    if "needs opset 13" in low or ("per-channel" in low and "opset" in low):
        return "opset_per_channel"
    if "is not finite" in low or ("histogram" in frames.lower() and ("inf" in low or "nan" in low)):
        return "nonfinite_calibration"
    if "memoryerror" in low or "bad_alloc" in low or "failed to allocate" in low or "out of memory" in low:
        return "out_of_memory"
    if "shapeinference" in low.replace(" ", "") or "shape inference" in low or "infer_shapes" in frames:
        return "shape_inference"
    if "constant" in low and "initializer" in low:
        return "constant_weights"
    if "does not load" in low or "cannot load" in low or "inferencesession" in frames.lower():
        return "not_loadable"
    return "unknown"
