"""Pruning: unstructured magnitude pruning (PyTorch or ONNX initializers) and structured channel pruning.

- :func:`prune_onnx_magnitude` zeroes the smallest weights of an ONNX model's Conv/Gemm/MatMul initializers with
  numpy: the only pruning possible without the PyTorch source, and the one the goal's "prune" maps to for
  ONNX-only models. No fine-tune is possible, and a dense file stores zeros at full size, so only the compressed
  size (:func:`compressed_size_bytes`) falls; the latency does not.
- :func:`prune_module_magnitude` does the same on a PyTorch module through ``torch.nn.utils.prune`` (global or per
  layer); the masks stay in place during a fine-tune and are made permanent by :func:`make_pruning_permanent`.
- :func:`prune_module_channels` removes whole channels with ``torch-pruning``'s dependency graph (a kept library,
  not home-made graph surgery), so the exported ONNX really is smaller and faster. The layers that produce the
  model's outputs keep their width.

Light to import: torch and torch-pruning are imported inside the functions that use them.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from optimizer.errors import RecipeError
from optimizer.types import PruneChannelsRecipe, PruneMagnitudeRecipe

if TYPE_CHECKING:
    import torch
    from torch import nn

    from optimizer.techniques.chain import StepContext

__all__ = [
    "COMPRESSION_NOTE",
    "ONNX_PRUNING_LIMITS",
    "apply_channels_step",
    "apply_magnitude_step",
    "compressed_size_bytes",
    "make_pruning_permanent",
    "prune_module_channels",
    "prune_module_magnitude",
    "prune_onnx_magnitude",
]

#: said in every report of unstructured pruning
COMPRESSION_NOTE = (
    "unstructured pruning stores zeros: the dense ONNX file keeps its size, so compare compressed_size_bytes "
    "(gzip level 6 of the file), which is what a zipped download or a compressed file system saves"
)
#: said when pruning an ONNX-only model
ONNX_PRUNING_LIMITS = (
    "ONNX-only model (no PyTorch source): only unstructured magnitude pruning of the weight initializers is "
    "possible; it shrinks the compressed size, not the dense file or its latency, and nothing can be fine-tuned. "
    "Structured channel pruning and QAT need the PyTorch model"
)

#: weight inputs of the layers pruned in an ONNX graph (op type -> input positions that may hold weights)
_ONNX_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gemm": (1,),
    "MatMul": (0, 1),
}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def compressed_size_bytes(model_path: str | Path) -> int:
    """Bytes of the model file (and any external data files it names) after gzip level 6.

    Raises:
        OSError: a file cannot be read.
    """
    path = Path(model_path)
    files = [path]
    try:
        model = onnx.load(str(path), load_external_data=False)
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                loc = next((e.value for e in init.external_data if e.key == "location"), None)
                if loc and (path.parent / loc) not in files:
                    files.append(path.parent / loc)
    except Exception:  # not an ONNX file we can parse: compress the bytes we were given
        pass
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container, as `gzip -6` writes
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                total += len(comp.compress(block))
    return total + len(comp.flush())


def _kth_threshold(magnitudes: np.ndarray, fraction: float) -> float | None:
    """The magnitude at or below which ``fraction`` of the values lie (None when that is no value at all)."""
    k = round(fraction * magnitudes.size)
    if k <= 0:
        return None
    return float(np.partition(magnitudes, k - 1)[k - 1])


def prune_onnx_magnitude(src: str | Path, recipe: PruneMagnitudeRecipe, out: str | Path) -> dict[str, Any]:
    """Zero the smallest-magnitude weights of the Conv/ConvTranspose/Gemm/MatMul initializers of ``src``.

    ``scope="global"`` uses one threshold over every weight; ``"per_layer"`` prunes the same fraction of each
    tensor. Biases and non-float tensors are left alone. Writes ``out``; returns the achieved sparsity and what
    was pruned.

    Raises:
        ModelLoadError: ``src`` is not a model (from onnx.load).
        RecipeError: the model has no weight initializer to prune.
    """
    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        for pos in _ONNX_WEIGHT_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] in inits:
                t = inits[node.input[pos]]
                if len(t.dims) >= 2 and t.data_type in _FLOAT_TYPES and node.input[pos] not in names:
                    names.append(node.input[pos])
    if not names:
        raise RecipeError(
            "magnitude pruning found no Conv/Gemm/MatMul weight initializer in this model",
            hint="weights held in Constant nodes or computed at run time cannot be pruned here",
        )
    arrays = {n: numpy_helper.to_array(inits[n]).copy() for n in names}
    if recipe.scope == "global":
        thr = _kth_threshold(np.concatenate([np.abs(a).ravel() for a in arrays.values()]), recipe.sparsity)
        thresholds = dict.fromkeys(names, thr)
    else:
        thresholds = {n: _kth_threshold(np.abs(a).ravel(), recipe.sparsity) for n, a in arrays.items()}
    zeroed = total = 0
    per_layer: dict[str, float] = {}
    for n, a in arrays.items():
        thr = thresholds[n]
        if thr is not None:
            a[np.abs(a) <= thr] = 0
        zeros = int(a.size - np.count_nonzero(a))
        zeroed += zeros
        total += a.size
        per_layer[n] = round(zeros / a.size, 4)
        inits[n].CopyFrom(numpy_helper.from_array(a, n))
    onnx.save(model, str(out))
    return {
        "backend": "onnx",
        "sparsity": round(zeroed / total, 4),
        "pruned_weights": zeroed,
        "weights": total,
        "layers": per_layer,
    }


# --------------------------------------------------------------------------- PyTorch


def _prunable(module: nn.Module) -> list[nn.Module]:
    from torch import nn

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
    return [m for m in module.modules() if isinstance(m, kinds)]


def prune_module_magnitude(module: nn.Module, recipe: PruneMagnitudeRecipe) -> list[nn.Module]:
    """Mask the smallest-magnitude weights of every Conv/Linear layer of ``module`` (L1, global or per layer).

    The masks stay attached (``weight_orig`` * ``weight_mask``) so a fine-tune keeps the zeros; call
    :func:`make_pruning_permanent` with the returned layers before exporting.

    Raises:
        RecipeError: the module has no Conv or Linear layer.
    """
    import torch.nn.utils.prune as tprune

    layers = _prunable(module)
    if not layers:
        raise RecipeError("magnitude pruning found no Conv or Linear layer in the PyTorch model")
    if recipe.scope == "global":
        tprune.global_unstructured(
            [(m, "weight") for m in layers], pruning_method=tprune.L1Unstructured, amount=recipe.sparsity
        )
    else:
        for m in layers:
            tprune.l1_unstructured(m, "weight", amount=recipe.sparsity)
    return layers


def make_pruning_permanent(layers: list[nn.Module]) -> dict[str, Any]:
    """Fold the masks into the weights (``torch.nn.utils.prune.remove``); returns the achieved sparsity."""
    import torch.nn.utils.prune as tprune

    zeros = total = 0
    for m in layers:
        tprune.remove(m, "weight")
        w: torch.Tensor = m.weight.detach()  # type: ignore[operator]
        zeros += int((w == 0).sum())
        total += w.numel()
    return {
        "backend": "torch",
        "sparsity": round(zeros / max(total, 1), 4),
        "pruned_weights": zeros,
        "weights": total,
    }


def output_layers(module: nn.Module, example: tuple[torch.Tensor, ...]) -> list[nn.Module]:
    """The Conv/Linear layers whose output is a model output, and the last one to run: their output width is
    the model's contract (the number of classes), so channel pruning must leave it alone."""
    import torch

    layers = _prunable(module)
    seen: list[tuple[nn.Module, Any]] = []
    hooks = [m.register_forward_hook(lambda m, _i, o: seen.append((m, o))) for m in layers]
    try:
        with torch.no_grad():
            out = module(*example)
    finally:
        for h in hooks:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else (out.values() if isinstance(out, dict) else (out,))
    ids = {id(t) for t in outs}
    keep = [m for m, o in seen if id(o) in ids]
    if seen and seen[-1][0] not in keep:
        keep.append(seen[-1][0])
    return keep


_CHANNEL_STEPS = 45
_MAX_CHANNEL_RATIO = 0.9


#: samples of the calibration data each layer's sensitivity is measured on
ALLOCATION_SAMPLES = 64
#: the least share of the largest layer ratio any prunable layer gets (none is left wholly unpruned)
_MIN_ALLOCATION_SHARE = 0.1


def _pruner(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    ignored: list[nn.Module],
    round_to: int | None,
    *,
    ratio: float,
    ratios: dict[nn.Module, float] | None = None,
    steps: int = _CHANNEL_STEPS,
) -> Any:
    import torch_pruning as tp

    return tp.pruner.MetaPruner(
        module,
        example if len(example) > 1 else example[0],
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        pruning_ratio_dict=ratios,
        iterative_steps=steps,
        ignored_layers=ignored,
        global_pruning=False,
        round_to=round_to,
    )


def layer_allocation(
    module: nn.Module,
    recipe: PruneChannelsRecipe,
    example: tuple[torch.Tensor, ...],
    probe: tuple[torch.Tensor, ...],
) -> dict[str, dict[str, float]]:
    """Each prunable layer's sensitivity and parameters per unit of it: a copy of ``module`` with that layer
    alone pruned at ``recipe.amount`` of its channels, run on ``probe`` (a few calibration batches); the
    sensitivity is the relative squared error of the first output against the unpruned model's, the parameters
    are those the pruning removed (the layer's and its consumers' inputs). ``share`` (0..1) is the layer's
    parameters per unit of sensitivity relative to the best layer's, floored at a tenth.

    Raises:
        RecipeError: no prunable layer besides the output layers.
    """
    import copy

    import torch

    from optimizer.techniques.torch_backend import count_macs_params, first_output

    ignored = output_layers(module, example)
    layers = [m for m in _prunable(module) if m not in ignored]
    if not layers:
        raise RecipeError("channel pruning found only output layers, nothing to allocate")
    with torch.no_grad():
        ref = first_output(module(*probe)).float()
    _, params0 = count_macs_params(module, example)
    scale = float((ref**2).mean()) or 1.0
    rows: dict[str, dict[str, float]] = {}
    for layer in layers:
        name = _name(module, layer)
        clone = copy.deepcopy(module)
        twin = dict(zip(module.modules(), clone.modules(), strict=True))
        pruner = _pruner(
            clone,
            example,
            [twin[m] for m in ignored],
            recipe.round_to,
            ratio=0.0,
            ratios={twin[layer]: recipe.amount},
            steps=1,
        )
        pruner.step()
        _, params = count_macs_params(clone, example)
        with torch.no_grad():
            err = float(((first_output(clone(*probe)).float() - ref) ** 2).mean()) / scale
        removed = max(params0 - params, 0)
        rows[name] = {"sensitivity": round(err, 6), "params_removed": float(removed)}
    score = {n: r["params_removed"] / max(r["sensitivity"], 1e-9) for n, r in rows.items()}
    best = max(score.values()) or 1.0
    for n, r in rows.items():
        r["share"] = round(max(score[n] / best, _MIN_ALLOCATION_SHARE), 4)
    return rows


def prune_module_channels(
    module: nn.Module,
    recipe: PruneChannelsRecipe,
    example: tuple[torch.Tensor, ...],
    probe: tuple[torch.Tensor, ...] | None = None,
) -> dict[str, Any]:
    """Remove whole channels from ``module`` (in place) until ``recipe.amount`` of its parameters or MACs are gone.

    ``torch-pruning`` (``MetaPruner`` with L2 magnitude importance) removes channels in small steps, and the
    counts are taken after each, so the result lands just past the target. With ``allocation="uniform"`` every
    layer loses the same fraction of channels; with ``"sensitivity"`` each layer's fraction grows in proportion
    to its parameters per unit of sensitivity (:func:`layer_allocation`, measured on ``probe`` inputs, else the
    example), so the layers that cost the least accuracy per parameter give up the most. The output layers keep
    their width (:func:`output_layers`).

    Returns the parameter and MAC counts before and after, and the channels of every pruned layer.

    Raises:
        RecipeError: the model has nothing prunable, or the target cannot be reached without emptying layers.
    """
    from optimizer.techniques.torch_backend import count_macs_params

    layers = _prunable(module)
    if not layers:
        raise RecipeError("channel pruning found no Conv or Linear layer in the PyTorch model")
    ignored = output_layers(module, example)
    if all(m in ignored for m in layers):
        raise RecipeError(
            "channel pruning found only output layers (their width is the model's output), nothing to remove",
            hint="use prune_magnitude for models this small",
        )
    before = {_name(module, m): _width(m) for m in layers}
    macs0, params0 = count_macs_params(module, example)
    base = params0 if recipe.target == "params" else macs0
    allocation: dict[str, dict[str, float]] | None = None
    ratios: dict[nn.Module, float] | None = None
    if recipe.allocation == "sensitivity":
        allocation = layer_allocation(module, recipe, example, probe or example)
        by_name = {_name(module, m): m for m in layers}
        ratios = {by_name[n]: _MAX_CHANNEL_RATIO * r["share"] for n, r in allocation.items()}
    pruner = _pruner(module, example, ignored, recipe.round_to, ratio=_MAX_CHANNEL_RATIO, ratios=ratios)
    macs, params = macs0, params0
    removed = 0.0
    for _ in range(_CHANNEL_STEPS):
        pruner.step()
        macs, params = count_macs_params(module, example)
        removed = 1.0 - (params if recipe.target == "params" else macs) / max(base, 1)
        if removed >= recipe.amount:
            break
    if removed < recipe.amount - 0.005:  # every step ran and the target is still out of reach
        raise RecipeError(
            f"channel pruning removed only {removed:.1%} of the {recipe.target} (target {recipe.amount:.1%}) "
            f"before layers would be emptied",
            hint="ask for a smaller amount; the output layers and the input cannot be pruned",
        )
    after = {_name(module, m): _width(m) for m in layers}
    return {
        "backend": "torch-pruning",
        "target": recipe.target,
        "removed_fraction": round(removed, 4),
        "params_before": params0,
        "params_after": params,
        "macs_before": macs0,
        "macs_after": macs,
        "channels": {n: [before[n], after[n]] for n in before if before[n] != after[n]},
        "kept_width": [_name(module, m) for m in ignored],
        "allocation": recipe.allocation,
        **({"layer_allocation": allocation} if allocation is not None else {}),
    }


def _name(root: nn.Module, layer: nn.Module) -> str:
    return next((n for n, m in root.named_modules() if m is layer), type(layer).__name__)


def _width(layer: nn.Module) -> int:
    return int(getattr(layer, "out_channels", getattr(layer, "out_features", 0)))


# --------------------------------------------------------------------------- steps of the engine (registry)


def _torch_prune(ctx: StepContext, index: int, step: Any, out: Path) -> dict[str, Any]:
    import torch

    from optimizer.techniques.chain import finetune
    from optimizer.techniques.torch_backend import export_float, teacher_copy

    module = ctx.module_for(index, step)
    example = ctx.example()
    teacher = teacher_copy(module, ctx.train()) if step.finetune_epochs else None
    torch.manual_seed(0)
    if isinstance(step, PruneChannelsRecipe):
        notes = prune_module_channels(module, step, example, _probe(ctx))
        notes.update(finetune(ctx, module, step.finetune_epochs, step.lr, teacher))
    else:
        layers = prune_module_magnitude(module, step)
        ft = finetune(ctx, module, step.finetune_epochs, step.lr, teacher)
        notes = {**make_pruning_permanent(layers), **ft, "scope": step.scope, "note": COMPRESSION_NOTE}
    assert ctx.src is not None
    export_float(module, example, out, ctx.src)
    return notes


def _probe(ctx: StepContext) -> tuple[torch.Tensor, ...] | None:
    """A few calibration batches to measure each layer's sensitivity on (None: the example inputs serve)."""
    import numpy as np
    import torch

    if ctx.calib is None or ctx.src is None or not all(n in ctx.calib.inputs for n in ctx.src.input_names):
        return None
    k = min(ALLOCATION_SAMPLES, ctx.calib.samples)
    return tuple(torch.from_numpy(np.ascontiguousarray(ctx.calib.inputs[n][:k])) for n in ctx.src.input_names)


def apply_magnitude_step(
    ctx: StepContext, step: PruneMagnitudeRecipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """Magnitude pruning as one engine step: on the PyTorch model when there is one (and a fine-tune), else on the
    ONNX initializers (numpy, no fine-tune)."""
    if ctx.torch_usable():
        return _torch_prune(ctx, index, step, out)
    notes = prune_onnx_magnitude(src, step, out)
    why = (
        "no PyTorch source"
        if ctx.src is None
        else f"step {(ctx.onnx_only_since or 0) + 1} changed the ONNX file only"
    )
    notes.update(
        finetuned=False,
        finetune=f"not possible: pruned the ONNX initializers ({why})",
        scope=step.scope,
        note=COMPRESSION_NOTE,
    )
    if ctx.src is None:
        notes["limits"] = ONNX_PRUNING_LIMITS
    ctx.onnx_only_since = index
    return notes


def apply_channels_step(
    ctx: StepContext, step: PruneChannelsRecipe, src: Path, out: Path, index: int
) -> dict[str, Any]:
    """Structured channel pruning as one engine step (needs the PyTorch model)."""
    return _torch_prune(ctx, index, step, out)
