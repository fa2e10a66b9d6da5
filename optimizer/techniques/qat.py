"""Quantization-aware training and neural-compressor's accuracy-aware autotune, both through PT2E (torchao).

Both produce a converted PT2E graph (``quantized_decomposed`` quantize/dequantize ops around float Conv/Linear)
that :func:`optimizer.techniques.torch_backend.export_pt2e` exports to ONNX QDQ, so the result runs on onnxruntime and is
measured like every other candidate. The numbers either tool reports about itself are kept in the candidate's
detail, never used as its metric.

- :func:`qat_int8`: ``torch.export`` -> ``prepare_qat_pt2e`` with torchao's X86 quantizer (fake-quant of uint8
  activations and int8 weights, per channel or per tensor) -> a short training -> ``convert_pt2e`` (weights folded
  to int8). This is the path neural-compressor 3.x runs for static int8 on CPU.
- :func:`inc_autotune`: neural-compressor's ``autotune`` over a list of static int8 configurations, stopping at the
  first whose tuning metric (top-1 agreement with the float model on the calibration inputs) is within
  ``tolerable_loss``; INC returns None when none is, which is reported as a failed candidate.

Imports torch; imported only when a QAT or INC step runs (the registry names its step functions by path).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from optimizer.errors import RecipeError, TechniqueError
from optimizer.measure.data import Dataset
from optimizer.techniques.torch_backend import batch_dims, first_output, fit
from optimizer.types import IncAutotuneRecipe, QatInt8Recipe, TorchSource

if TYPE_CHECKING:
    from optimizer.techniques.chain import StepContext

log = logging.getLogger(__name__)


def _qat_config(per_channel: bool) -> Any:
    """torchao's X86 QAT configuration (uint8 activations, int8 symmetric weights), per channel or per tensor."""
    from torchao.quantization.pt2e import FusedMovingAvgObsFakeQuantize, MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        get_default_x86_inductor_quantization_config,
    )

    if per_channel:
        return get_default_x86_inductor_quantization_config(is_qat=True)
    act = QuantizationSpec(
        dtype=torch.uint8,
        quant_min=0,
        quant_max=255,
        qscheme=torch.per_tensor_affine,
        is_dynamic=False,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(eps=2**-12),
    )
    weight = QuantizationSpec(
        dtype=torch.int8,
        quant_min=-128,
        quant_max=127,
        qscheme=torch.per_tensor_symmetric,
        is_dynamic=False,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(
            eps=2**-12, observer=MovingAverageMinMaxObserver
        ),
    )
    return QuantizationConfig(act, act, weight, None, True)


def qat_int8(
    module: nn.Module,
    recipe: QatInt8Recipe,
    example: tuple[torch.Tensor, ...],
    train: Dataset,
    src: TorchSource,
) -> tuple[Any, dict[str, Any]]:
    """Quantization-aware training of ``module`` for ``recipe.epochs`` on ``train``; returns the converted PT2E
    graph (int8 weights, QDQ activations) and what the training did.

    Raises:
        DataError: the training data has no class labels (from :func:`optimizer.techniques.torch_backend.fit`).
        TechniqueError: torch.export or torchao failed on this model.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    try:
        graph = torch.export.export(module.eval(), example, dynamic_shapes=batch_dims(example)).module()
        quantizer = X86InductorQuantizer().set_global(_qat_config(recipe.per_channel))
        prepared = prepare_qat_pt2e(graph, quantizer)
    except Exception as e:
        raise TechniqueError(
            f"preparing QAT (torch.export + torchao prepare_qat_pt2e) failed: {e.__class__.__name__}: "
            f"{str(e)[:300]}",
            hint="the model must be exportable with torch.export (no data-dependent Python control flow)",
        ) from e
    move_exported_model_to_train(prepared)
    torch.manual_seed(0)
    stats = fit(prepared, train, src.input_names, epochs=recipe.epochs, lr=recipe.lr, train_mode=False)
    move_exported_model_to_eval(prepared)
    try:
        converted = convert_pt2e(prepared)  # fold_quantize=True: weights become int8 constants
    except Exception as e:
        raise TechniqueError(f"torchao convert_pt2e failed: {e.__class__.__name__}: {str(e)[:300]}") from e
    return converted, {"training": stats, "quantizer": "torchao X86InductorQuantizer (is_qat=True)"}


def _agreement(model: Any, inputs: tuple[torch.Tensor, ...], reference: np.ndarray) -> float:
    with torch.no_grad():
        out = first_output(model(*inputs)).numpy()
    if out.ndim < 2:
        return float(np.mean(np.isclose(out, reference, rtol=1e-2, atol=1e-3)))
    return float(np.mean(out.argmax(-1) == reference.argmax(-1)))


def inc_autotune(
    module: nn.Module,
    recipe: IncAutotuneRecipe,
    example: tuple[torch.Tensor, ...],
    calib: Dataset,
    src: TorchSource,
) -> tuple[Any, dict[str, Any]]:
    """neural-compressor's ``autotune`` of static int8 on ``module``; returns the quantized PT2E graph and what INC
    tried and reported.

    The configurations, in the order INC tries them: per-channel weights with min-max activation ranges,
    per-channel with KL (histogram) ranges, per-tensor min-max. The tuning metric is top-1 agreement with the
    float model on the calibration inputs (no labels needed; the evaluation set stays unseen). When no
    configuration is within ``tolerable_loss``, INC 3.10 still returns its best trial: ``met_tolerance`` is then
    false and a note says so.

    Raises:
        TechniqueError: INC failed, or returned no model at all.
    """
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import StaticQuantConfig, TuningConfig, autotune

    k = min(recipe.calib_samples, calib.samples)
    inputs = tuple(torch.from_numpy(np.ascontiguousarray(calib.inputs[n][:k])) for n in src.input_names)
    with torch.no_grad():
        reference = first_output(module.eval()(*inputs)).numpy()
    configs = [
        ("per_channel-minmax", StaticQuantConfig(w_granularity="per_channel", act_algo="minmax")),
        ("per_channel-kl", StaticQuantConfig(w_granularity="per_channel", act_algo="kl")),
        ("per_tensor-minmax", StaticQuantConfig(w_granularity="per_tensor", act_algo="minmax")),
    ]
    scores: list[float] = []

    def run_fn(model: Any) -> None:
        with torch.no_grad():
            model(*inputs)

    def eval_fn(model: Any) -> float:
        scores.append(_agreement(model, inputs, reference))
        return scores[-1]

    logs = io.StringIO()
    try:
        with contextlib.redirect_stdout(logs):
            exported = export(module.eval(), example, dynamic_shapes=batch_dims(example))
            if exported is None:
                raise TechniqueError("neural-compressor could not export the model for PT2E quantization")
            best = autotune(
                exported,
                tune_config=TuningConfig(
                    config_set=[c for _, c in configs], tolerable_loss=recipe.tolerable_loss
                ),
                eval_fn=eval_fn,
                run_fn=run_fn,
                example_inputs=example,
            )
    except TechniqueError:
        raise
    except Exception as e:
        raise TechniqueError(
            f"neural-compressor autotune failed: {e.__class__.__name__}: {str(e)[:300]}",
            hint="INC's PT2E path needs a model torch.export can capture",
        ) from e
    tried = [name for name, _ in configs][: max(0, len(scores) - 1)]
    trials: list[dict[str, Any]] = [
        {"config": n, "score": s} for n, s in zip(tried, scores[1:], strict=False)
    ]
    floor = (scores[0] if scores else 1.0) * (1 - recipe.tolerable_loss)
    fitting = [t for t in trials if t["score"] >= floor]
    reported: dict[str, Any] = {
        "tuning_metric": "top-1 agreement with the float model on the calibration inputs (INC's eval_fn)",
        "baseline": scores[0] if scores else None,
        "trials": trials,
        "tolerable_loss": recipe.tolerable_loss,
        "met_tolerance": bool(fitting),
        # INC stops at the first configuration that fits; when none does it re-quantizes with its best trial
        "chosen": (fitting[0] if fitting else max(trials, key=lambda t: t["score"]))["config"]
        if trials
        else None,
    }
    if trials and not fitting:
        reported["note"] = (
            "no configuration met tolerable_loss; neural-compressor 3.10 caps max_trials at the number of "
            "configurations and then returns its best trial anyway, so this candidate misses INC's own target "
            "(it is measured like any other)"
        )
    if best is None:
        raise TechniqueError(
            f"neural-compressor autotune returned no model: no static int8 configuration within "
            f"{recipe.tolerable_loss:.1%} relative loss of its tuning metric (tried {', '.join(tried)}; "
            f"scores {scores[1:]})",
            hint="raise tolerable_loss, or try QAT (qat_int8), which trains the model for int8",
            details={"inc": reported},
        )
    folded = _fold_weight_quantization(best)
    return best, {"inc": reported, "weights_folded": folded}


def _fold_weight_quantization(graph: Any) -> bool:
    """Fold INC's weight quantize ops into int8 constants, as torchao's ``convert_pt2e(fold_quantize=True)`` does
    (INC converts without folding: the file would keep float weights). Returns whether it worked."""
    try:
        from torchao.quantization.pt2e.constant_fold import constant_fold
        from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

        constant_fold(graph, _quant_node_constraint)
        return True
    except Exception as e:  # a private torchao helper: the model stays correct, only larger
        log.warning("could not fold INC's weight quantization: %s", e)
        return False


# --------------------------------------------------------------------------- steps of the engine (registry)


def apply_qat_step(ctx: StepContext, step: QatInt8Recipe, src: Path, out: Path, index: int) -> dict[str, Any]:
    """Quantization-aware training as one engine step: trains the PyTorch model, exports ONNX QDQ."""
    from optimizer.techniques.torch_backend import export_pt2e

    module = ctx.module_for(index, step)
    train = ctx.train()
    if train is None:
        raise RecipeError(
            "quantization-aware training needs labelled training data",
            hint="set TorchSource.train_path to a .npz of training inputs with `labels`",
        )
    assert ctx.src is not None
    example = ctx.example()
    graph, notes = qat_int8(module, step, example, train, ctx.src)
    export_pt2e(graph, example, out, ctx.src)
    ctx.onnx_only_since = index
    return {"backend": "torchao-pt2e", "finetuned": True, "finetune": "QAT training (see training)", **notes}


def apply_inc_step(
    ctx: StepContext, step: IncAutotuneRecipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """neural-compressor's autotune as one engine step: quantizes the PyTorch model, exports ONNX QDQ."""
    from optimizer.techniques.torch_backend import export_pt2e

    module = ctx.module_for(index, step)
    if ctx.calib is None:
        raise RecipeError("neural-compressor autotune needs calibration data", hint="pass --calib DATA.npz")
    assert ctx.src is not None
    example = ctx.example()
    graph, notes = inc_autotune(module, step, example, ctx.calib, ctx.src)
    export_pt2e(graph, example, out, ctx.src)
    ctx.onnx_only_since = index
    return {
        "backend": "neural-compressor-pt2e",
        "finetuned": False,
        "finetune": "none (post-training)",
        **notes,
    }
