"""The engine that applies any recipe, step by step, recording what every step did and measured.

:func:`apply_recipe` applies a recipe (a chain's steps in order; any other recipe is one step) with the step
function its technique registers (:mod:`optimizer.techniques.registry`):

- a PyTorch step (pruning with a PyTorch source, QAT, INC) works on the module built from the
  :class:`~optimizer.types.TorchSource` (loaded at the first such step, then carried from step to step in the
  :class:`StepContext`) and exports it to ONNX;
- an ONNX step (the onnxruntime quantizers, or magnitude pruning without a PyTorch source) works on the ONNX file
  the previous step wrote. After it, the PyTorch module no longer matches the file, so a later PyTorch step is
  refused (a chain puts its pruning first and its one quantizing step last; :class:`ChainRecipe` checks that).

Each step's file must load in onnxruntime and run a calibration sample (when there is calibration data), and is
measured for size and compressed size, and, when the caller
gives an evaluator, for the metric and latency on onnxruntime: ``steps`` lists them in order. Whether a fine-tune
ran, and why not when it did not, is stated for every step.

Light to import: torch is imported only when a step needs it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import QuantTaaSError, RecipeError, TechniqueError
from optimizer.measure.data import Dataset
from optimizer.models.files import move_model
from optimizer.models.inspect import inspect_model
from optimizer.techniques.prune import compressed_size_bytes
from optimizer.techniques.quantize import check_loads
from optimizer.techniques.registry import steps_of, technique_of
from optimizer.types import Metrics, TorchSource

__all__ = [
    "AppliedRecipe",
    "StepContext",
    "apply_recipe",
    "complete_steps",
    "finetune",
    "needs_torch",
    "torch_source_for",
]

Evaluator = Callable[[Path], Metrics]


def needs_torch(recipe: Any) -> bool:
    """True when some step of ``recipe`` can only run on the PyTorch model."""
    from optimizer.techniques.registry import recipe_needs

    return "torch_source" in recipe_needs(recipe)


def torch_source_for(
    model_path: str | Path,
    *,
    module: str,
    state_dict_path: str | Path,
    train_path: str | Path | None = None,
    kwargs: dict[str, Any] | None = None,
) -> TorchSource:
    """A :class:`TorchSource` whose input/output names and sample shapes are read from the ONNX model that was
    exported from it.

    Raises:
        ModelLoadError: the ONNX file is not a model.
        RecipeError: an input has a symbolic dimension besides the batch axis (give the shapes yourself then).
    """
    info = inspect_model(model_path)
    shapes: list[tuple[int, ...]] = []
    for t in info.inputs:
        dims = t.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise RecipeError(
                f"input {t.name!r} has shape {t.shape}: the sample shape must be fixed to build example inputs",
                hint="construct TorchSource(input_shapes=...) yourself with the shape of one sample",
            )
        shapes.append(tuple(int(d) for d in dims))  # type: ignore[arg-type]
    return TorchSource(
        module=module,
        kwargs=kwargs or {},
        state_dict_path=str(state_dict_path),
        input_names=tuple(t.name for t in info.inputs),
        input_shapes=tuple(shapes),
        output_names=tuple(t.name for t in info.outputs),
        train_path=str(train_path) if train_path is not None else None,
    )


@dataclass
class AppliedRecipe:
    """What :func:`apply_recipe` made: the file, one record per step, and the candidate's detail."""

    path: Path
    steps: list[dict[str, Any]]
    detail: dict[str, Any]


class StepContext:
    """What carries from step to step: the calibration data, the PyTorch module (loaded lazily) and whether the
    file has left it. ``prepared`` says the first step's input is already pre-processed for quantization (the
    sweep does it once per model)."""

    def __init__(self, src: TorchSource | None, calib: Dataset | None, *, prepared: bool = False):
        self.src = src
        self.calib = calib
        self.prepared = prepared
        self.module: Any = None
        self.onnx_only_since: int | None = None  # the step after which the module no longer matches the file
        self._train: Dataset | None = None
        self._train_loaded = False

    def torch_usable(self) -> bool:
        return self.src is not None and self.onnx_only_since is None

    def module_for(self, i: int, step: Any) -> Any:
        if self.src is None:
            raise RecipeError(
                f"{step.kind} needs the PyTorch model this ONNX model was exported from, and none was given",
                hint="pass a TorchSource (class import path, state_dict, input names); ONNX-only models can get "
                "prune_magnitude (magnitude pruning of the initializers) and the onnxruntime quantizers",
            )
        if self.onnx_only_since is not None:
            raise RecipeError(
                f"step {i + 1} ({step.kind}) needs the PyTorch model, but step {self.onnx_only_since + 1} already "
                "changed the ONNX file only",
                hint="put the PyTorch steps (pruning, QAT) before the onnxruntime steps in a chain",
            )
        if self.module is None:
            from optimizer.techniques.torch_backend import load_module

            self.module = load_module(self.src)
        return self.module

    def train(self) -> Dataset | None:
        if not self._train_loaded and self.src is not None:
            from optimizer.techniques.torch_backend import load_train_data

            self._train = load_train_data(self.src)
            self._train_loaded = True
        return self._train

    def example(self) -> Any:
        from optimizer.techniques.torch_backend import example_inputs

        assert self.src is not None
        return example_inputs(self.src, self.calib)


def finetune(ctx: StepContext, module: Any, epochs: int, lr: float, teacher: Any) -> dict[str, Any]:
    """Fine-tune ``module`` for ``epochs`` on the source's training data, when there is some; the notes say
    whether it ran and why not."""
    if epochs == 0:
        return {"finetuned": False, "finetune": "not requested (finetune_epochs=0)"}
    train = ctx.train()
    if train is None:
        return {
            "finetuned": False,
            "finetune": "not run: no training data (the PyTorch source has no train_path)",
        }
    from optimizer.techniques.torch_backend import fit

    assert ctx.src is not None
    stats = fit(module, train, ctx.src.input_names, epochs=epochs, lr=lr, teacher=teacher)
    return {
        "finetuned": True,
        "finetune": f"{epochs} epoch(s) of Adam at lr {lr:g} on {stats['samples']} samples ({stats['loss']})",
        "training": stats,
    }


def apply_recipe(
    model_path: str | Path,
    recipe: Any,
    out_path: str | Path,
    *,
    calib: Dataset | None = None,
    torch_source: TorchSource | None = None,
    evaluate: Evaluator | None = None,
    prepared: bool = False,
) -> AppliedRecipe:
    """Apply ``recipe`` (one step or a :class:`ChainRecipe`) to the model at ``model_path``; write ``out_path``.

    ``evaluate`` measures every intermediate step's file (the caller measures the final one and completes the
    record with :func:`complete_steps`). ``prepared``: the model is already pre-processed for quantization.
    PyTorch steps run on one torch thread with a fixed seed.

    Raises:
        RecipeError: a step needs the PyTorch model and there is none (or an ONNX-only step came first), QAT
            has no training data, INC or static int8 has no calibration data, the target cannot be reached.
        ModelLoadError: the PyTorch source cannot be loaded.
        DataError: the training data does not fit the model.
        TechniqueError: a backend failed (torch.export, torchao, neural-compressor, torch-pruning, onnxruntime).
        Every error raised for a step carries ``details["steps"]``: the records of the steps before it.
    """
    steps = steps_of(recipe)
    fns = [technique_of(step).step_fn() for step in steps]
    state = StepContext(torch_source, calib, prepared=prepared)
    records: list[dict[str, Any]] = []
    uses_torch = torch_source is not None and any(
        "torch_source" in technique_of(s).needs or s.kind == "prune_magnitude" for s in steps
    )
    with tempfile.TemporaryDirectory(prefix="quanttaas-chain-") as tmp, _threads(uses_torch):
        current = Path(model_path)
        for i, step in enumerate(steps):
            target = Path(tmp) / f"step{i + 1}.onnx"
            t0 = time.perf_counter()
            name = f"step {i + 1}/{len(steps)} ({step.label})" if len(steps) > 1 else step.label
            try:
                notes = fns[i](state, step, current, target, i)
                check_loads(target, state.calib)
            except QuantTaaSError as e:
                e.details.setdefault("steps", list(records))
                if len(steps) > 1 and not e.message.startswith("step "):
                    e.message = f"{name}: {e.message}"
                    e.args = (e.message,)
                raise
            except Exception as e:
                raise TechniqueError(
                    f"{name} failed: {e.__class__.__name__}: {str(e)[:300]}",
                    hint="try another recipe or a smaller amount",
                    details={"steps": list(records)},
                ) from e
            record: dict[str, Any] = {
                "step": i + 1,
                "kind": step.kind,
                "label": step.label,
                "recipe": step.model_dump(mode="json"),
                "backend": notes.pop("backend", "onnx"),
                "finetuned": bool(notes.pop("finetuned", False)),
                "size_bytes": target.stat().st_size,
                "compressed_size_bytes": compressed_size_bytes(target),
                "seconds": round(time.perf_counter() - t0, 3),
                **notes,
            }
            if evaluate is not None and i < len(steps) - 1:
                record.update(_metric_fields(evaluate(target)))
            records.append(record)
            current = target
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        move_model(current, out)
    detail: dict[str, Any] = {
        "steps": records,
        "finetuned": any(r["finetuned"] for r in records),
        "torch_source": torch_source.module
        if torch_source is not None and state.module is not None
        else None,
    }
    used = [w for r in records for w in r.get("workarounds", [])]
    if used:
        detail["workarounds"] = used
    for key in ("limits", "note"):
        found = [r[key] for r in records if key in r]
        if found:
            detail[key] = found[0]
    return AppliedRecipe(out, records, detail)


def _metric_fields(m: Metrics) -> dict[str, Any]:
    return {
        "metric_name": m.metric_name,
        "metric": m.metric,
        "accuracy_drop_pct": m.accuracy_drop_pct,
        "latency_ms_p50": m.latency_ms_p50,
    }


def complete_steps(steps: Sequence[dict[str, Any]], final: Metrics) -> list[dict[str, Any]]:
    """The step records with the final measurement filled into the last one (the caller measured it)."""
    out = [dict(s) for s in steps]
    if out:
        out[-1].update(_metric_fields(final))
        out[-1]["size_bytes"] = final.size_bytes
        if final.compressed_size_bytes is not None:
            out[-1]["compressed_size_bytes"] = final.compressed_size_bytes
    return out


class _threads:
    """One torch thread while PyTorch steps run (no torch import when none does)."""

    def __init__(self, active: bool):
        self.active = active
        self.old: int | None = None

    def __enter__(self) -> None:
        if self.active:
            import torch

            self.old = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            import torch

            torch.set_num_threads(self.old)
