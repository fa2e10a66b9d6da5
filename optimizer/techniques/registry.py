"""The technique registry: one record per recipe type, and everything else is generated from it.

A :class:`Technique` says how to apply its recipe (one step of the engine in :mod:`optimizer.techniques.chain`),
the file size it should produce, which compression methods and precision it counts as, its label (the recipe
type's ``label``), its one-line description, what it needs (calibration data, the PyTorch model, labelled
training data), and which candidates the sweep should try on a given model (:attr:`Technique.propose`). The sweep's
grid, the size predictions, the goal's method/precision filters, the ``quanttaas quantize`` options, the tool
descriptions and the ``list_techniques`` tool all read this registry; adding a technique is one
:func:`register` call.

This module is light to import (no onnx, onnxruntime or torch): apply functions are named by import path
("package.module:function") and imported when a recipe is applied, so Ray workers and the pure Pareto functions
can read the registry cheaply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from optimizer.errors import RecipeError
from optimizer.types import (
    ModelInspection,
    RecipeBase,
    SensitivityReport,
    TorchSource,
    register_recipe_type,
)

if TYPE_CHECKING:
    import onnx

    from optimizer.techniques.chain import StepContext

Need = Literal["calibration", "torch_source", "training_data"]

#: how the directed search treats a proposal, in the order the grid lists them (see optimizer.search.sweep)
FAMILIES: tuple[str, ...] = (
    "anchor",  # the cheapest recipe of each kind: measured first
    "calibration",  # other calibration methods of static int8
    "per_tensor",
    "selective",  # static int8 with the k most sensitive layers kept in float
    "dynamic_conv",
    "speed",  # the formats that are fast on CPU (QOperator, dynamic MatMul-only, offline graph optimization)
    "recovery",  # int8 with equalization, bias correction, learned rounding or 16-bit activations: run when full
    # int8 loses too much
    "prune",  # pruning on the PyTorch model
    "prune_onnx",  # magnitude pruning of an ONNX-only model's initializers
    "qat",
    "inc",
    "chain",
    "needs_torch",  # listed to state a limit: never run without a PyTorch source
)


class StepFn(Protocol):
    """Applies one recipe step: reads ``src``, writes ``out``, returns notes for the step's record (``backend``,
    ``finetuned`` and anything worth reporting). Raises the optimizer's errors (RecipeError, TechniqueError...)."""

    def __call__(self, ctx: StepContext, recipe: Any, src: Path, out: Path, index: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SizeBasis:
    """What size predictions are made from: the model's inspection (parameter counts per layer)."""

    info: ModelInspection
    layer_params: dict[str, int]

    @classmethod
    def of(cls, info: ModelInspection) -> SizeBasis:
        return cls(info, {la.name: la.param_count for la in info.layers})

    @property
    def float_bytes(self) -> float:
        """Bytes of the float32 parameters."""
        return 4.0 * self.info.param_count

    @property
    def overhead(self) -> float:
        """Bytes of the file that are not float parameters (graph, names, int tensors)."""
        return max(self.info.size_bytes - self.float_bytes, 0.0)

    def weight_params(self, op_types: Sequence[str] | None) -> int:
        """Parameters of the layers of ``op_types`` (every layer for None)."""
        return sum(la.param_count for la in self.info.layers if op_types is None or la.op_type in op_types)

    def kept_params(self, recipe: RecipeBase) -> int:
        """Parameters of the layers a recipe keeps in float32."""
        return sum(self.layer_params.get(n, 0) for n in recipe.keep_fp32)


@dataclass(frozen=True)
class GridContext:
    """What a technique may look at to propose candidates for one model and goal."""

    info: ModelInspection
    sensitivity: SensitivityReport | None = None
    has_calib: bool = False
    torch_source: TorchSource | None = None
    #: the goal asks for pruning (an ONNX-only model then gets magnitude pruning of its initializers)
    asks_pruning: bool = False
    finetune_epochs: int = 1
    max_selective: int = 12
    #: the pre-processed graph (selective candidates keep each layer with the activation chain it feeds)
    graph: onnx.ModelProto | None = None
    #: the goal's size limit in bytes (None: the goal sets none); budgeted proposals spend what it leaves above
    #: full int8
    size_limit_bytes: float | None = None
    #: the measured size of full static int8, once known (else its prediction is used)
    int8_size_bytes: float | None = None

    @property
    def ops(self) -> set[str]:
        return set(self.info.op_counts)

    @property
    def finetune(self) -> int:
        """Fine-tune epochs for pruning: only when the PyTorch source has training data."""
        return self.finetune_epochs if self.torch_source is not None and self.torch_source.train_path else 0


@dataclass(frozen=True)
class Proposal:
    """A candidate a technique proposes for the grid; ``k`` orders selective candidates. ``why`` says how it was
    chosen (the report's ``tried_reasons``); ``budgeted`` marks one chosen under the goal's size budget, which
    the sweep re-plans once the full int8 size is measured."""

    recipe: RecipeBase
    family: str
    k: int = 0
    why: str = ""
    budgeted: bool = False


@dataclass(frozen=True)
class CliFlag:
    """A command-line flag a technique adds beyond those generated from its recipe's fields, e.g.
    ``--per-tensor`` setting ``per_channel=False``."""

    flag: str
    field: str
    value: Any
    help: str


@dataclass(frozen=True)
class Technique:
    """One registered technique (see the module docstring)."""

    recipe_type: type[RecipeBase]
    description: str
    predict_size: Callable[[Any, SizeBasis], float]
    methods: frozenset[str]
    precision: str | None = None
    #: "module:function" (imported when applied) or the function; None for a composite (a chain of steps)
    apply: str | StepFn | None = None
    needs: frozenset[Need] = frozenset()
    aliases: tuple[str, ...] = ()
    propose: Callable[[GridContext], list[Proposal]] | None = None
    cli_flags: tuple[CliFlag, ...] = field(default=())
    #: values the command line fills in when the user gives none (a field the recipe requires)
    cli_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.recipe_type.model_fields["kind"].default)

    @property
    def cli_name(self) -> str:
        """The name ``quanttaas quantize --recipe`` takes (the first alias, or the kind with dashes)."""
        return self.aliases[0] if self.aliases else self.kind.replace("_", "-")

    def step_fn(self) -> StepFn:
        """The function that applies one step of this technique.

        Raises:
            RecipeError: the technique is a composite (it has no single step).
        """
        if self.apply is None:
            raise RecipeError(f"{self.kind} is a composite of other recipes and has no single step")
        if callable(self.apply):
            return self.apply
        module, _, name = self.apply.partition(":")
        fn: StepFn = getattr(importlib.import_module(module), name)
        return fn


_REGISTRY: dict[str, Technique] = {}


def register(technique: Technique) -> Technique:
    """Add (or replace) a technique; its recipe type becomes readable wherever recipes are read back."""
    register_recipe_type(technique.recipe_type)
    _REGISTRY[technique.kind] = technique
    return technique


def unregister(kind: str) -> None:
    """Remove a technique (tests and plug-ins that undo themselves). Built-ins stay readable as recipes."""
    _REGISTRY.pop(kind, None)


def techniques() -> list[Technique]:
    """Every registered technique, in registration order (the built-ins first)."""
    return list(_REGISTRY.values())


def technique_of(recipe_or_kind: RecipeBase | str) -> Technique:
    """The technique of a recipe (or kind).

    Raises:
        RecipeError: no technique is registered for that kind.
    """
    kind = recipe_or_kind if isinstance(recipe_or_kind, str) else recipe_or_kind.kind
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise RecipeError(
            f"no technique is registered for recipe kind {kind!r}",
            hint=f"use one of: {', '.join(_REGISTRY)}",
        ) from None


def resolve_name(name: str) -> str:
    """A recipe kind from a kind or a command-line alias (``static-int8`` -> ``static_int8``).

    Raises:
        RecipeError: no technique has that name.
    """
    for t in _REGISTRY.values():
        if name == t.kind or name in t.aliases or name == t.cli_name:
            return t.kind
    raise RecipeError(
        f"unknown recipe {name!r}", hint=f"use one of: {', '.join(t.cli_name for t in _REGISTRY.values())}"
    )


def steps_of(recipe: RecipeBase) -> list[RecipeBase]:
    """The steps of a composite recipe (a chain), or ``[recipe]``."""
    steps = getattr(recipe, "steps", None)
    return list(steps) if steps else [recipe]


def recipe_methods(recipe: RecipeBase) -> set[str]:
    """The compression methods a recipe uses (a chain: the union of its steps')."""
    out: set[str] = set()
    for step in steps_of(recipe):
        out |= set(technique_of(step).methods)
    return out


def recipe_precision(recipe: RecipeBase) -> str | None:
    """The numeric precision a recipe produces (``int8``, ``int4``, ``fp16``), or None (pruning alone); for a
    chain, its last quantizing step's."""
    found = [p for step in steps_of(recipe) if (p := technique_of(step).precision) is not None]
    return found[-1] if found else None


def recipe_needs(recipe: RecipeBase) -> set[Need]:
    """What a recipe needs (a chain: what any of its steps needs)."""
    out: set[Need] = set()
    for step in steps_of(recipe):
        out |= set(technique_of(step).needs)
    return out


def predict_size(recipe: RecipeBase, basis: SizeBasis) -> float:
    """Bytes the recipe's file should take on this model (the technique's own prediction)."""
    return technique_of(recipe).predict_size(recipe, basis)


def propose_all(ctx: GridContext) -> list[Proposal]:
    """Every candidate the registered techniques propose for this model, in grid order (by family, then in
    registration order)."""
    rank = {f: i for i, f in enumerate(FAMILIES)}
    proposals = [p for t in _REGISTRY.values() if t.propose is not None for p in t.propose(ctx)]
    return sorted(proposals, key=lambda p: rank.get(p.family, len(FAMILIES)))  # sorted() is stable


def describe_techniques() -> str:
    """One line per technique (for tool descriptions and help texts)."""
    lines = []
    for t in _REGISTRY.values():
        needs = f" (needs {', '.join(sorted(t.needs))})" if t.needs else ""
        lines.append(f"- {t.kind}: {t.description}{needs}")
    return "\n".join(lines)


from optimizer.techniques import builtin as _builtin  # noqa: E402  (registers the built-in techniques)

__all__ = [
    "FAMILIES",
    "CliFlag",
    "GridContext",
    "Need",
    "Proposal",
    "SizeBasis",
    "StepFn",
    "Technique",
    "_builtin",
    "describe_techniques",
    "predict_size",
    "propose_all",
    "recipe_methods",
    "recipe_needs",
    "recipe_precision",
    "register",
    "resolve_name",
    "steps_of",
    "technique_of",
    "techniques",
    "unregister",
]
