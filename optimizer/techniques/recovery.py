"""Accuracy recovery without training, as steps of the engine (:func:`optimizer.techniques.chain.apply_recipe`):
static int8 after cross-layer equalization (and optionally with bias correction), and static int8 with learned
rounding (AdaRound). Each writes an ordinary QDQ int8 file of the same size as plain static int8; only the values
of the weights and biases differ.

The numerics live in :mod:`optimizer.techniques.equalize` and :mod:`optimizer.techniques.adaround` (numpy and
onnx, no torch); onnxruntime's static quantizer does the quantizing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from optimizer.errors import QuantTaaSError, RecipeError, TechniqueError
from optimizer.measure.data import Dataset
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.techniques.quantize import quantize_model
from optimizer.types import AdaRoundInt8Recipe, EqualizedInt8Recipe, StaticInt8Recipe

if TYPE_CHECKING:
    from optimizer.techniques.chain import StepContext


def _calib(ctx: StepContext, kind: str, samples: int) -> Dataset:
    if ctx.calib is None:
        raise RecipeError(
            f"{kind} needs calibration data",
            hint="pass --calib DATA.npz (a few hundred representative inputs, no labels needed)",
        )
    return ctx.calib.head(samples)


def _prepared(ctx: StepContext, src: Path, work: Path, index: int) -> onnx.ModelProto:
    """The float model ready for QDQ quantization (the sweep prepares the first step's input once)."""
    if ctx.prepared and index == 0:
        return onnx.load(str(src))
    dst = work / "prepared.onnx"
    prepare_model(src, dst, min_opset=QDQ_MIN_OPSET)
    return onnx.load(str(dst))


def apply_equalized_step(
    ctx: StepContext, recipe: EqualizedInt8Recipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """Cross-layer equalization of the float model, static int8, then (optionally) bias correction.

    Raises:
        RecipeError: no calibration data; the model is already quantized.
        TechniqueError: equalization, quantization or bias correction failed.
    """
    from optimizer.techniques.equalize import correct_bias, equalize

    calib = _calib(ctx, recipe.kind, recipe.calib_samples)
    notes: dict[str, Any] = {
        "backend": "onnxruntime+numpy",
        "finetuned": False,
        "finetune": "none (post-training)",
    }
    with tempfile.TemporaryDirectory(prefix="quanttaas-cle-") as tmp:
        work = Path(tmp)
        fp = _prepared(ctx, src, work, index)
        try:
            if recipe.equalize:
                notes["equalization"] = equalize(fp)
        except Exception as e:
            raise TechniqueError(
                f"cross-layer equalization failed: {e.__class__.__name__}: {str(e)[:300]}"
            ) from e
        eq_path = work / "equalized.onnx"
        onnx.save(fp, str(eq_path))
        static = StaticInt8Recipe(
            per_channel=recipe.per_channel,
            calibration=recipe.calibration,
            calib_samples=recipe.calib_samples,
            keep_fp32=recipe.keep_fp32,
        )
        q_path = work / "int8.onnx"
        quantize_model(eq_path, static, q_path, calib=calib, prepared=True, check=False)
        qdq = onnx.load(str(q_path))
        if recipe.bias_correction:
            try:
                notes["bias_correction"] = correct_bias(qdq, fp, calib)
            except QuantTaaSError:
                raise
            except Exception as e:
                raise TechniqueError(f"bias correction failed: {e.__class__.__name__}: {str(e)[:300]}") from e
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(qdq, str(out))
    ctx.onnx_only_since = index
    return notes


def apply_adaround_step(
    ctx: StepContext, recipe: AdaRoundInt8Recipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """Static int8, then learned rounding of its int8 weights within ``recipe.time_budget_s``.

    Raises:
        RecipeError: no calibration data; the model is already quantized.
        TechniqueError: quantization or the rounding optimization failed.
    """
    from optimizer.techniques.adaround import learn_rounding

    calib = _calib(ctx, recipe.kind, recipe.calib_samples)
    notes: dict[str, Any] = {
        "backend": "onnxruntime+numpy",
        "finetuned": False,
        "finetune": "none (post-training)",
    }
    with tempfile.TemporaryDirectory(prefix="quanttaas-ada-") as tmp:
        work = Path(tmp)
        fp = _prepared(ctx, src, work, index)
        fp_path = work / "float.onnx"
        onnx.save(fp, str(fp_path))
        static = StaticInt8Recipe(
            per_channel=recipe.per_channel, calib_samples=recipe.calib_samples, keep_fp32=recipe.keep_fp32
        )
        q_path = work / "int8.onnx"
        quantize_model(fp_path, static, q_path, calib=calib, prepared=True, check=False)
        qdq = onnx.load(str(q_path))
        try:
            notes["adaround"] = learn_rounding(
                qdq, fp, calib, iterations=recipe.iterations, time_budget_s=recipe.time_budget_s
            )
        except Exception as e:
            raise TechniqueError(f"learned rounding failed: {e.__class__.__name__}: {str(e)[:300]}") from e
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(qdq, str(out))
    ctx.onnx_only_since = index
    return notes
