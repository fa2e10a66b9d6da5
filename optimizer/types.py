"""The typed values that flow through QuantTaaS (pydantic v2, frozen, unknown fields rejected, units in names).

Nothing here loads a model: a :class:`ModelRef` is a reference to a file, never the file's contents.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from optimizer.errors import GoalError


class Frozen(BaseModel):
    """Base for every value type: immutable, and a typo in a field name is an error rather than ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- models and data


class ModelRef(Frozen):
    """A stored model file."""

    id: str
    format: Literal["onnx"] = "onnx"
    path: str
    sha256: str
    size_bytes: int = Field(ge=0, description="size on disk, external data files included")


class TensorInfo(Frozen):
    name: str
    dtype: str
    shape: list[int | str | None] = Field(
        description="ints are fixed dims, strings are symbolic, null unknown"
    )


class LayerInfo(Frozen):
    """A node that carries weights (initializers or Constant inputs)."""

    name: str
    op_type: str
    param_count: int


class ModelInspection(Frozen):
    """What :func:`optimizer.models.inspect.inspect_model` finds in a model."""

    path: str
    format: Literal["onnx"] = "onnx"
    source_format: Literal["onnx", "pt2"] = "onnx"
    producer: str
    opset: int
    ir_version: int
    size_bytes: int
    external_data_bytes: int = 0
    param_count: int
    constant_param_count: int = Field(
        0, description="parameters held in Constant nodes rather than initializers"
    )
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: dict[str, int]
    layers: list[LayerInfo]
    quantized: bool
    quantization_markers: dict[str, int] = Field(default_factory=dict)


class DataSummary(Frozen):
    """A validated .npz data file."""

    path: str
    samples: int
    inputs: list[TensorInfo]
    has_labels: bool
    metric: str


# --------------------------------------------------------------------------- recipes


class RecipeBase(Frozen):
    """What every recipe carries. A recipe is data: the transform is registered against its type
    (:mod:`optimizer.techniques.registry`), and :func:`register_recipe_type` makes its ``kind`` known wherever a
    recipe is read back (reports, job stores, tool results)."""

    kind: str
    version: int = 1
    keep_fp32: tuple[str, ...] = Field(
        default=(), description="node names left in float32 (for selective, per-layer precision)"
    )
    #: whether the result is a quantized (or float16) model: nothing may follow it in a chain
    quantizing: ClassVar[bool] = False

    @property
    def label(self) -> str:
        """A short, human name for the recipe."""
        return self.kind


_RECIPE_TYPES: dict[str, type[RecipeBase]] = {}
R = TypeVar("R", bound=type[RecipeBase])


def register_recipe_type(cls: R) -> R:
    """Make a recipe type readable by its ``kind`` (a new technique registers its recipe type here, through
    :func:`optimizer.techniques.registry.register`)."""
    klass: type[RecipeBase] = cls
    kind = klass.model_fields["kind"].default
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a default `kind` (its discriminator)")
    _RECIPE_TYPES[kind] = cls
    return cls


def recipe_kinds() -> list[str]:
    """Every recipe kind known in this process (built-ins and registered ones)."""
    return sorted(_RECIPE_TYPES)


def recipe_from(value: Any) -> RecipeBase:
    """A recipe from its dict (or itself): dispatched on ``kind`` to the registered type.

    Raises:
        ValueError: no or unknown ``kind`` (pydantic turns it into a validation error); pydantic's
            ValidationError: fields that do not fit the type.
    """
    if isinstance(value, RecipeBase):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a recipe is an object with a `kind`, got {type(value).__name__}")
    kind = value.get("kind")
    cls = _RECIPE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown recipe kind {kind!r}; known kinds: {', '.join(recipe_kinds())}")
    return cls.model_validate(value)


class _RecipeField:
    """Pydantic glue: a field holding any registered recipe, validated by ``kind`` and serialized with the fields
    of its own type (not only the base's)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            recipe_from,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda r, info: r.model_dump(mode="json" if info.mode_is_json() else "python"), info_arg=True
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "object",
            "title": "Recipe",
            "description": "a recipe: `kind` names the technique, the other fields are its settings",
            "properties": {"kind": {"type": "string", "enum": recipe_kinds(), "maxLength": 64}},
            "required": ["kind"],
        }


#: a field type for any registered recipe (the discriminated union, open to new techniques)
Recipe = Annotated[RecipeBase, _RecipeField()]


@register_recipe_type
class StaticInt8Recipe(RecipeBase):
    """Static int8 quantization calibrated on data (the right default for CNNs), written as QDQ pairs or as
    QOperator nodes (QLinearConv, QLinearMatMul): the same numbers, but on CPU the QOperator form often runs
    much faster (STACK.md: 0.49x of fp32's latency against QDQ's 0.80x on an ImageNet convnet)."""

    kind: Literal["static_int8"] = "static_int8"
    quantizing: ClassVar[bool] = True
    quant_format: Literal["qdq", "qoperator"] = Field(
        default="qdq",
        description="qdq: QuantizeLinear/DequantizeLinear pairs around float ops (portable, what other runtimes "
        "read); qoperator: onnxruntime's quantized operators (QLinearConv, QLinearMatMul), often faster on CPU",
    )
    per_channel: bool = True
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    op_types: tuple[str, ...] | None = Field(
        default=None, description="op types to quantize; null means every type onnxruntime supports"
    )
    calib_samples: int = Field(default=128, ge=1, le=100_000)
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    reduce_range: bool | None = Field(
        default=None,
        description="7-bit weights, so onnxruntime's u8 x s8 kernels cannot saturate on CPUs without VNNI; "
        "null: on exactly when this CPU lacks VNNI",
    )

    @property
    def label(self) -> str:
        ops = "" if self.op_types is None else "[" + ",".join(self.op_types) + "]"
        gran = "pc" if self.per_channel else "pt"
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        rr = "" if self.reduce_range is None else "-rr" if self.reduce_range else "-fullrange"
        fmt = "-qop" if self.quant_format == "qoperator" else ""
        return f"static_int8{ops}{fmt}-{gran}-{self.calibration}{rr}{keep}"


@register_recipe_type
class DynamicInt8Recipe(RecipeBase):
    """Dynamic int8: weights int8 offline, activations quantized at run time (the transformer default)."""

    kind: Literal["dynamic_int8"] = "dynamic_int8"
    quantizing: ClassVar[bool] = True
    # Gather holds the embedding tables of transformers (half of MiniLM's weights); Conv is left out on purpose:
    # onnxruntime's ConvInteger is often slower than fp32 and can wreck accuracy (STACK.md)
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Gather")
    per_channel: bool = False

    @property
    def label(self) -> str:
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return "dynamic_int8[" + ",".join(self.op_types) + "]" + keep


@register_recipe_type
class Fp16Recipe(RecipeBase):
    """Float16 weights and arithmetic, with float32 inputs and outputs kept."""

    kind: Literal["fp16"] = "fp16"
    quantizing: ClassVar[bool] = True
    keep_io_types: bool = True


@register_recipe_type
class Int4WeightOnlyRecipe(RecipeBase):
    """4-bit block-wise weight-only quantization of MatMul (onnxruntime MatMulNBits)."""

    kind: Literal["int4_weight_only"] = "int4_weight_only"
    quantizing: ClassVar[bool] = True
    block_size: int = Field(default=32, ge=16, le=256)
    symmetric: bool = True

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("block_size must be a power of two (16, 32, 64, 128 or 256)")
        return v

    @property
    def label(self) -> str:
        return f"int4_weight_only-b{self.block_size}"


@register_recipe_type
class OrtOptimizedRecipe(RecipeBase):
    """onnxruntime's graph optimizations applied offline and saved: the file holds the fused graph (Conv+Add+Relu,
    folded constants, ...), so a session built on it skips that work. It is tied to the execution provider it was
    optimized for (fused ops are onnxruntime contrib ops); the session options that go with it are recorded with
    the candidate. Weights and arithmetic are unchanged: no accuracy is lost."""

    kind: Literal["ort_optimized"] = "ort_optimized"
    level: Literal["basic", "extended"] = Field(
        default="extended",
        description="basic: provider-independent rewrites only; extended: also onnxruntime's fused CPU "
        "operators. The layout rewrites of level 'all' depend on the exact CPU and are left to the session",
    )

    @model_validator(mode="after")
    def _no_keep_fp32(self) -> Self:
        if self.keep_fp32:
            raise ValueError("keep_fp32 does not apply to ort_optimized (it changes no precision)")
        return self

    @property
    def label(self) -> str:
        return f"ort_optimized-{self.level}"


class _OneLinerBase(RecipeBase):
    """onnxruntime's quantizer called the way a practitioner calls it by hand: every option at its default, on the
    original file (no pre-processing). Always a candidate, so no answer is worse than the one-liner."""

    quantizing: ClassVar[bool] = True

    @model_validator(mode="after")
    def _no_keep(self) -> Self:
        if self.keep_fp32:
            raise ValueError(
                f"{self.kind} is onnxruntime's one-liner with its defaults: it keeps nothing in fp32"
            )
        return self


@register_recipe_type
class OrtDynamicDefaultRecipe(_OneLinerBase):
    """``onnxruntime.quantization.quantize_dynamic(model, out)`` with every default."""

    kind: Literal["ort_dynamic_default"] = "ort_dynamic_default"


@register_recipe_type
class OrtStaticDefaultRecipe(_OneLinerBase):
    """``onnxruntime.quantization.quantize_static(model, out, reader)`` with every default (QDQ, int8 activations
    and weights, per-tensor, min-max), fed the calibration data."""

    kind: Literal["ort_static_default"] = "ort_static_default"
    calib_samples: int = Field(default=128, ge=1, le=100_000)


def _pct(x: float) -> str:
    return f"{round(x * 100, 1):g}"


@register_recipe_type
class EqualizedInt8Recipe(RecipeBase):
    """Static int8 QDQ after cross-layer equalization of the float weights, optionally with bias correction of
    the int8 model (an accuracy repair without training; see :mod:`optimizer.techniques.equalize`)."""

    kind: Literal["equalized_int8"] = "equalized_int8"
    quantizing: ClassVar[bool] = True
    per_channel: bool = True
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    calib_samples: int = Field(default=128, ge=1, le=100_000)
    equalize: bool = Field(default=True, description="cross-layer equalization of the float weights first")
    bias_correction: bool = Field(
        default=False, description="add each int8 layer's expected weight-rounding error to its bias"
    )

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not (self.equalize or self.bias_correction):
            raise ValueError("set equalize or bias_correction (with neither this is plain static_int8)")
        return self

    @property
    def label(self) -> str:
        parts = [p for p, on in (("cle", self.equalize), ("bc", self.bias_correction)) if on]
        gran = "pc" if self.per_channel else "pt"
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return f"equalized_int8-{'+'.join(parts)}-{gran}-{self.calibration}{keep}"


@register_recipe_type
class Int16ActivationsRecipe(RecipeBase):
    """Static QDQ with int8 weights and 16-bit activations (onnxruntime's 16-bit QDQ, opset 21): about the size of
    static int8, much closer to float in accuracy, but slower on CPU (no 16-bit integer kernels: about 2.4x the
    float latency measured on PP-OCRv4). ``int16_layers`` limits the 16-bit activations to those nodes' inputs
    and outputs (the rest stay 8-bit); null means every activation."""

    kind: Literal["int16_activations"] = "int16_activations"
    quantizing: ClassVar[bool] = True
    per_channel: bool = True
    calib_samples: int = Field(default=128, ge=1, le=100_000)
    int16_layers: tuple[str, ...] | None = Field(
        default=None, description="node names whose activations are 16-bit; null: every activation"
    )
    int16_weight_layers: tuple[str, ...] = Field(
        default=(),
        description="node names whose weights are 16-bit too (one more byte per parameter than int8): the "
        "layers a size budget affords (see optimizer.techniques.knapsack)",
    )

    @property
    def label(self) -> str:
        which = "all" if self.int16_layers is None else f"{len(self.int16_layers)}layers"
        w16 = f"-w16x{len(self.int16_weight_layers)}" if self.int16_weight_layers else ""
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return f"int16_activations-{which}{w16}-{'pc' if self.per_channel else 'pt'}{keep}"


@register_recipe_type
class AdaRoundInt8Recipe(RecipeBase):
    """Static int8 QDQ whose weight rounding (up or down) is learned on the calibration data (AdaRound), within a
    time budget (see :mod:`optimizer.techniques.adaround`)."""

    kind: Literal["adaround_int8"] = "adaround_int8"
    quantizing: ClassVar[bool] = True
    per_channel: bool = True
    calib_samples: int = Field(default=128, ge=1, le=100_000)
    iterations: int = Field(default=500, ge=10, le=20_000, description="Adam steps per layer at most")
    time_budget_s: float = Field(
        default=60.0,
        gt=0.0,
        le=3600.0,
        description="bound on the rounding optimization (layers past it keep nearest rounding)",
    )

    @property
    def label(self) -> str:
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return f"adaround_int8-{'pc' if self.per_channel else 'pt'}-{self.time_budget_s:g}s{keep}"


class TrainingRecipeBase(RecipeBase):
    """Recipes that change weights through PyTorch (or, for ONNX-only models, through numpy): no keep_fp32."""

    @model_validator(mode="after")
    def _no_keep_fp32(self) -> Self:
        if self.keep_fp32:
            raise ValueError(
                f"keep_fp32 does not apply to {self.kind!r} (it names ONNX nodes left in float32 by a quantizer)"
            )
        return self


@register_recipe_type
class PruneMagnitudeRecipe(TrainingRecipeBase):
    """Unstructured magnitude pruning: the smallest weights of Conv/Linear (Gemm/MatMul) layers are set to zero.

    With a PyTorch source this runs through ``torch.nn.utils.prune`` and may fine-tune with the mask in place;
    on an ONNX-only model the weight initializers are pruned with numpy and nothing is fine-tuned. A dense file
    does not shrink: the saving shows in ``Metrics.compressed_size_bytes`` (gzip of the file).
    """

    kind: Literal["prune_magnitude"] = "prune_magnitude"
    sparsity: float = Field(gt=0.0, lt=1.0, description="fraction of the weights set to zero")
    scope: Literal["global", "per_layer"] = Field(
        default="global",
        description="global: one threshold over every layer; per_layer: the same fraction in each layer",
    )
    finetune_epochs: int = Field(default=0, ge=0, le=100, description="epochs of fine-tuning after pruning")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate of the fine-tune")

    @property
    def label(self) -> str:
        ft = f"-ft{self.finetune_epochs}" if self.finetune_epochs else ""
        return f"prune_magnitude-{_pct(self.sparsity)}pct-{self.scope}{ft}"


@register_recipe_type
class PruneChannelsRecipe(TrainingRecipeBase):
    """Structured pruning that removes whole channels (``torch-pruning`` keeps the layers consistent), so the
    exported ONNX really is smaller and faster. Needs a PyTorch source; the output layer keeps its width."""

    kind: Literal["prune_channels"] = "prune_channels"
    target: Literal["params", "macs"] = Field(
        default="params", description="what ``amount`` is a fraction of: parameters or multiply-accumulates"
    )
    amount: float = Field(gt=0.0, lt=1.0, description="fraction of the target removed (0.3 = 30% fewer)")
    round_to: int | None = Field(
        default=8,
        ge=1,
        le=64,
        description="keep channel counts multiples of this (onnxruntime's CPU convolutions work in blocks of 8 "
        "channels: odd counts ran slower than the unpruned model); null for any count",
    )
    finetune_epochs: int = Field(default=0, ge=0, le=100)
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    allocation: Literal["uniform", "sensitivity"] = Field(
        default="uniform",
        description="uniform: the same fraction of channels in every layer; sensitivity: more pruning where a "
        "layer has more parameters per unit of measured sensitivity (each layer pruned alone on a few batches)",
    )

    @property
    def label(self) -> str:
        ft = f"-ft{self.finetune_epochs}" if self.finetune_epochs else ""
        rounding = "" if self.round_to == 8 else "-any" if self.round_to is None else f"-r{self.round_to}"
        alloc = "-alloc" if self.allocation == "sensitivity" else ""
        return f"prune_channels-{self.target}{_pct(self.amount)}pct{rounding}{alloc}{ft}"


@register_recipe_type
class QatInt8Recipe(TrainingRecipeBase):
    """Quantization-aware training for static int8 (torchao PT2E, the path neural-compressor 3.x uses), exported
    to ONNX with QuantizeLinear/DequantizeLinear pairs. Needs a PyTorch source and labelled training data."""

    kind: Literal["qat_int8"] = "qat_int8"
    quantizing: ClassVar[bool] = True
    epochs: int = Field(default=2, ge=1, le=100)
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate (cosine-decayed)")
    per_channel: bool = True

    @property
    def label(self) -> str:
        return f"qat_int8-{'pc' if self.per_channel else 'pt'}-e{self.epochs}"


@register_recipe_type
class IncAutotuneRecipe(TrainingRecipeBase):
    """Intel Neural Compressor's accuracy-aware ``autotune`` over static int8 configurations (PT2E). INC stops at
    the first configuration whose tuning metric is within ``tolerable_loss``; the exported ONNX is measured again
    like every other candidate. Needs a PyTorch source and calibration data."""

    kind: Literal["inc_autotune"] = "inc_autotune"
    quantizing: ClassVar[bool] = True
    tolerable_loss: float = Field(
        default=0.01, ge=0.0, le=1.0, description="relative loss of the tuning metric INC accepts"
    )
    calib_samples: int = Field(default=128, ge=1, le=100_000)

    @property
    def label(self) -> str:
        return f"inc_autotune-{_pct(self.tolerable_loss)}pct"


@register_recipe_type
class ChainRecipe(TrainingRecipeBase):
    """Steps applied in order (e.g. prune 30% of the channels with a fine-tune, then static int8 per channel),
    each measured in the report. Pruning steps come first; at most one quantizing step, and it comes last."""

    kind: Literal["chain"] = "chain"
    steps: tuple[Recipe, ...] = Field(min_length=2, max_length=8)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if any(isinstance(s, ChainRecipe) for s in self.steps):
            raise ValueError("a chain does not nest: list the steps of the inner chain instead")
        quant = [i for i, s in enumerate(self.steps) if s.quantizing]
        if len(quant) > 1:
            raise ValueError(
                "a chain may quantize only once (quantizing twice compounds the error); "
                f"steps {quant} all quantize"
            )
        if quant and quant[0] != len(self.steps) - 1:
            raise ValueError("the quantizing step must be the last step of a chain")
        return self

    @property
    def label(self) -> str:
        return "+".join(s.label for s in self.steps)


class TorchSource(Frozen):
    """The PyTorch model an ONNX model was exported from, so torch recipes (pruning, QAT) can run.

    The class is imported from ``module`` ("pkg.mod:Class"), built with ``kwargs`` and given the state_dict at
    ``state_dict_path`` (loaded with ``weights_only=True``, never as a pickle of code). Exports use
    ``input_names``/``output_names`` so the result takes the same data as the original ONNX model. The optional
    ``train_path`` (.npz named after the inputs, with ``labels``) enables fine-tuning and QAT.
    """

    module: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="import path of the nn.Module class"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor keyword arguments")
    state_dict_path: str
    input_names: tuple[str, ...] = Field(min_length=1)
    input_shapes: tuple[tuple[int, ...], ...] = Field(
        description="shape of one sample of each input, without the batch axis"
    )
    output_names: tuple[str, ...] = Field(min_length=1)
    train_path: str | None = Field(default=None, description="labelled training .npz (fine-tune, QAT)")

    @model_validator(mode="after")
    def _shapes_match_names(self) -> Self:
        if len(self.input_shapes) != len(self.input_names):
            raise ValueError(f"{len(self.input_names)} input names but {len(self.input_shapes)} input shapes")
        return self


# --------------------------------------------------------------------------- measurements


class Metrics(Frozen):
    """What one evaluation measured. ``metric`` is the data's metric in its own direction and scale;
    ``accuracy_drop_pct`` is always points of a 0-100 scale lost (positive = worse), whatever the direction."""

    size_bytes: int
    metric_name: str
    metric_note: str | None = Field(
        default=None,
        description="why this metric was chosen, when the data named none (fidelity by output kind)",
    )
    metric_higher_is_better: bool = Field(
        default=True, description="the metric's direction (error rates such as WER/CER are lower-is-better)"
    )
    metric: float | None = None
    accuracy_drop_pct: float | None = Field(
        default=None,
        description="points (of a 0-100 scale) of the metric lost against the baseline, in the metric's direction "
        "(negative = gained)",
    )
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    compressed_size_bytes: int | None = Field(
        default=None,
        description="gzip (level 6) of the model file: what sparse (pruned) weights save, since a dense file "
        "stores their zeros at full size",
    )
    peak_memory_bytes: int | None = Field(
        default=None,
        description="peak resident memory added by creating the session and running the measured batch, "
        "measured in a fresh process after onnxruntime's start-up (so the order of measurements cannot change it)",
    )
    backend: str = "CPUExecutionProvider"
    threads: int = 1
    batch_size: int = 1
    samples: int = 0
    latency_runs: int = 0


class SpeedComparison(Frozen):
    """A candidate's speed against the original, measured side by side in interleaved blocks
    (:mod:`optimizer.measure.speed`): a point estimate and a confidence interval for the speed-up
    (original p50 / candidate p50; above 1 = faster)."""

    speedup: float = Field(gt=0, description="geometric mean of the per-block ratios of medians")
    low: float = Field(gt=0, description="lower end of the confidence interval")
    high: float = Field(gt=0, description="upper end of the confidence interval")
    confidence: float = Field(default=0.95, gt=0, lt=1)
    verdict: Literal["faster", "slower", "same"] = Field(
        description="faster: the whole interval is above 1.0x; slower: below; same: it contains 1.0x (the "
        "difference is within the noise, and no speed claim is made)"
    )
    blocks: int = Field(ge=2, description="interleaved blocks the interval comes from")
    runs_per_block: int = Field(ge=1)
    original_p50_ms: float | None = Field(
        default=None, description="the original's p50 in the same comparison"
    )

    @property
    def interval_text(self) -> str:
        """``95% interval 1.30-1.55x`` (three decimals where two would round an end onto 1.00)."""

        def x(v: float) -> str:
            return f"{v:.3f}" if f"{v:.2f}" == "1.00" and v != 1.0 else f"{v:.2f}"

        return f"{self.confidence * 100:.0f}% interval {x(self.low)}-{x(self.high)}x"

    @property
    def text(self) -> str:
        """``1.42x faster than the original (95% interval 1.30-1.55x)``, ``1.20x slower ...`` or ``the original's
        speed within noise (...)``."""
        interval = self.interval_text
        if self.verdict == "faster":
            return f"{self.speedup:.2f}x faster than the original ({interval})"
        if self.verdict == "slower":
            return f"{1 / self.speedup:.2f}x slower than the original ({interval} speed-up)"
        return f"the original's speed within noise ({self.speedup:.2f}x, {interval})"


class ErrorInfo(Frozen):
    code: str
    message: str
    hint: str


class Candidate(Frozen):
    """One recipe applied to one model, with what it measured, or the error that stopped it."""

    id: str
    recipe: Recipe
    model_path: str | None = None
    metrics: Metrics | None = None
    error: ErrorInfo | None = None
    seconds: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    speed: SpeedComparison | None = Field(
        default=None,
        description="speed against the original, re-measured side by side (finalists); null: not re-measured",
    )

    @property
    def ok(self) -> bool:
        return self.error is None and self.metrics is not None


# --------------------------------------------------------------------------- goals

Method = Literal["quantize", "prune", "qat"]
"""Compression methods a goal can allow, forbid or ask for. ``qat`` (quantization-aware training) is a kind of
quantization: a QAT recipe counts as ``quantize`` and ``qat``, so "only quantization" still allows it. Forbidding
``qat`` ("no QAT", "post-training only") forbids training: QAT recipes are dropped and pruning is not fine-tuned."""
Objective = Literal["size", "latency", "accuracy", "balanced"]
Precision = Literal["int8", "int4", "fp16"]
Device = Literal["cpu", "gpu"]
FloatLayer = Literal["first", "last"]

#: The numeric fields that count as constraints (``has_constraints`` is true when one is set).
CONSTRAINT_FIELDS: tuple[str, ...] = (
    "max_size_mb",
    "max_size_ratio",
    "min_size_reduction_mb",
    "max_memory_mb",
    "max_accuracy_drop_pct",
    "min_metric",
    "min_metric_ratio",
    "max_latency_ms",
    "min_speedup",
    "max_latency_ratio",
    "max_latency_increase_ms",
    "min_latency_reduction_ms",
)
#: Fields that bound the same quantity: a follow-up that sets one of a group replaces the whole group.
SIZE_FIELDS: tuple[str, ...] = ("max_size_mb", "max_size_ratio", "min_size_reduction_mb")
ACCURACY_FIELDS: tuple[str, ...] = ("max_accuracy_drop_pct", "min_metric", "min_metric_ratio")
LATENCY_FIELDS: tuple[str, ...] = (
    "max_latency_ms",
    "min_speedup",
    "max_latency_ratio",
    "max_latency_increase_ms",
    "min_latency_reduction_ms",
)

GoalField = Literal[
    "max_size_mb",
    "max_size_ratio",
    "min_size_reduction_mb",
    "max_memory_mb",
    "max_accuracy_drop_pct",
    "min_metric",
    "min_metric_ratio",
    "max_latency_ms",
    "min_speedup",
    "max_latency_ratio",
    "max_latency_increase_ms",
    "min_latency_reduction_ms",
    "objective",
    "methods_allowed",
    "methods_forbidden",
    "methods_requested",
    "methods_fallback",
    "precision",
    "precision_forbidden",
    "keep_float_layers",
    "device",
    "threads",
    "batch_size",
]


class Reading(Frozen):
    """One stretch of the goal's text the reader understood, and the Goal fields it set.

    ``fields`` is empty for words that were read and restrict nothing ("pruning is fine", "size does not
    matter"). Words that no reading covers are in ``Goal.unparsed_words``.
    """

    text: str = Field(
        max_length=400,
        description="the words read, as normalised by the reader (lower case, number words as digits)",
    )
    fields: list[GoalField] = Field(
        default_factory=list,
        max_length=8,
        description="the Goal fields these words set (none: read, no limit)",
    )


class Goal(Frozen):
    """What the user wants from a compression run: limits, an objective, and what methods and precision they
    allow, forbid or ask for. Read from their words (:func:`optimizer.goals.parse.parse_goal`) or set field by
    field (an LLM through the tool schema); it crosses every boundary as this value, never as text to re-read.

    Limits relative to the original (ratios, amounts of change, metric floors relative to the baseline) are
    checked against the measured original by :func:`optimizer.search.pareto.check_goal`.
    """

    max_size_mb: float | None = Field(
        default=None, gt=0, le=1e7, allow_inf_nan=False, description="largest file size, decimal MB"
    )
    max_size_ratio: float | None = Field(
        default=None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="largest file size as a fraction of the original",
    )
    min_size_reduction_mb: float | None = Field(
        default=None,
        gt=0,
        le=1e7,
        allow_inf_nan=False,
        description='least file size saved against the original, decimal MB ("reduce the size by 4 MB" = 4; '
        '"under 4 MB" is max_size_mb)',
    )
    max_memory_mb: float | None = Field(
        default=None,
        gt=0,
        le=1e7,
        allow_inf_nan=False,
        description='largest peak memory (RAM) added by running the model, decimal MB ("2 MB of RAM" = 2); the '
        "file on disk is max_size_mb",
    )
    max_accuracy_drop_pct: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="most metric points lost against the original",
    )
    min_metric: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        allow_inf_nan=False,
        description='least value of the task metric itself, on its 0..1 scale ("accuracy must not drop below '
        '75%" = 0.75): a floor on the level, not a drop',
    )
    min_metric_ratio: float | None = Field(
        default=None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description='least candidate metric / original metric ("not below 90% of the baseline" = 0.9)',
    )
    max_latency_ms: float | None = Field(
        default=None, gt=0, le=1e7, allow_inf_nan=False, description="largest p50 latency, milliseconds"
    )
    min_speedup: float | None = Field(
        default=None, gt=0, le=1000, allow_inf_nan=False, description="least original p50 / candidate p50"
    )
    max_latency_ratio: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description='largest candidate p50 / original p50 ("latency within 10% of the original" = 1.1, "may '
        'increase by at most 20%" = 1.2); it allows a slower model, min_speedup asks for a faster one',
    )
    max_latency_increase_ms: float | None = Field(
        default=None,
        ge=0,
        le=1e7,
        allow_inf_nan=False,
        description='most milliseconds the p50 latency may grow over the original\'s ("at most 5 ms slower" = 5)',
    )
    min_latency_reduction_ms: float | None = Field(
        default=None,
        gt=0,
        le=1e7,
        allow_inf_nan=False,
        description='least milliseconds the p50 latency must fall below the original\'s ("5 ms faster" = 5)',
    )
    objective: Objective = "balanced"
    methods_allowed: list[Method] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='only these methods may be used ("quantize" includes QAT unless "qat" is forbidden)',
    )
    methods_forbidden: list[Method] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='these methods must not be used ("qat" alone: post-training quantization only)',
    )
    methods_requested: list[Method] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='methods the user asked to try ("prune it"): the sweep builds their candidates even when '
        "another method alone would do; restricts nothing",
    )
    methods_fallback: list[Method] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='methods to use only when the others cannot meet the goal ("only prune if quantization alone '
        'is not enough"): a candidate using one is recommended only when no candidate without it meets the goal',
    )
    precision: Precision | None = None
    precision_forbidden: list[Precision] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='precisions that must not be used ("avoid fp16")',
    )
    keep_float_layers: list[FloatLayer] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description='layers every quantizing recipe keeps in float32 ("do not quantize the first and last '
        'layers"); recipes that cannot keep them (QAT, INC autotune) are not run',
    )
    device: Device | None = None
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description='onnxruntime threads the model will run with ("on 4 threads"); latency is measured with '
        "them. null: the run's option, 1 by default",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description='samples per inference the model will run with ("batch 32"); latency is measured at it. '
        "null: the run's option, 1 by default",
    )
    unparsed_words: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=200,
        description="words of the text that were not understood (ask about them rather than guess)",
    )
    readings: list[Reading] = Field(
        default_factory=list,
        max_length=200,
        description="filled by the goal reader (leave empty when setting fields): the words it understood and "
        "the fields each set",
    )
    has_constraints: bool = Field(
        default=False,
        description="derived from the limits (leave it out: a value that disagrees with them is refused)",
        json_schema_extra={"readOnly": True},
    )
    text: str = Field(default="", max_length=20_000, description="the words the goal was read from, if any")

    @model_validator(mode="before")
    @classmethod
    def _derive_has_constraints(cls, data: Any) -> Any:
        """Derive ``has_constraints`` from the numeric fields; a contradicting value given is an error."""
        if not isinstance(data, dict):
            return data
        derived = any(data.get(name) is not None for name in CONSTRAINT_FIELDS)
        given = data.get("has_constraints")
        if given is not None and bool(given) != derived:
            raise ValueError(
                f"has_constraints is derived from {', '.join(CONSTRAINT_FIELDS)}: it must be {derived}"
            )
        return {**data, "has_constraints": derived}

    @model_validator(mode="after")
    def _check_methods(self) -> Self:
        for name in (
            "methods_allowed",
            "methods_forbidden",
            "methods_requested",
            "methods_fallback",
            "precision_forbidden",
            "keep_float_layers",
        ):
            values = getattr(self, name)
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        forbidden = set(self.methods_forbidden or [])
        for name, label in (
            ("methods_allowed", "allowed"),
            ("methods_requested", "asked for"),
            ("methods_fallback", "kept as a fallback"),
        ):
            both = sorted(set(getattr(self, name) or []) & forbidden)
            if both:
                raise ValueError(f"methods both {label} and forbidden: {both}")
        both = sorted(set(self.methods_fallback or []) & set(self.methods_requested or []))
        if both:
            raise ValueError(f"methods both asked for and kept as a fallback: {both}")
        if self.methods_allowed and self.methods_fallback:
            outside = sorted(set(self.methods_fallback) - self.allowed_methods())
            if outside:
                raise ValueError(f"fallback methods that are not allowed: {outside}")
        if self.precision is not None and self.precision in (self.precision_forbidden or []):
            raise ValueError(f"precision {self.precision} is both required and forbidden")
        return self

    def allowed_methods(self) -> set[str]:
        """The methods ``methods_allowed`` lets through: ``quantize`` includes ``qat``, and ``qat`` alone implies
        the ``quantize`` a QAT recipe also counts as (so "only QAT" keeps QAT recipes and nothing else). Empty when
        ``methods_allowed`` is unset."""
        out: set[str] = set(self.methods_allowed or [])
        if "quantize" in out:
            out.add("qat")
        return out

    def asks_for(self, method: Method) -> bool:
        """Whether the goal asks for ``method``: requested, or the only methods allowed name it, and it is neither
        forbidden nor kept as a fallback."""
        if method in (self.methods_forbidden or []) or method in (self.methods_fallback or []):
            return False
        return method in (self.methods_requested or []) or method in (self.methods_allowed or [])

    def merged_with(self, follow_up: Goal) -> Goal:
        """This goal with a follow-up's words applied ("I can accept 2%", "and under 3 MB", "no pruning").

        Only what the follow-up set counts (``model_fields_set``; a goal read from words sets only what they
        say). A new bound of one quantity replaces every bound of that quantity: size (``SIZE_FIELDS``),
        accuracy (``ACCURACY_FIELDS``), latency (``LATENCY_FIELDS``), memory. A method the follow-up allows or
        asks for is no longer forbidden nor a fallback, one it forbids is no longer allowed, asked for or a
        fallback; a precision it requires is no longer forbidden. The text joins both; the words not
        understood and the readings are the follow-up's.

        Raises pydantic's ``ValidationError`` only if the result is inconsistent (never for parser output).
        """
        new = (
            {k: getattr(follow_up, k) for k in follow_up.model_fields_set}
            if follow_up.model_fields_set
            else {}
        )
        out = self.model_dump(exclude={"has_constraints", "text", "unparsed_words", "readings"})
        for group in (SIZE_FIELDS, ACCURACY_FIELDS, LATENCY_FIELDS, ("max_memory_mb",)):
            if any(new.get(k) is not None for k in group):
                for k in group:
                    out[k] = new.get(k)
        for key in ("objective", "precision", "device", "keep_float_layers", "threads", "batch_size"):
            if new.get(key) is not None:
                out[key] = new[key]
        new_allowed = set(new.get("methods_allowed") or [])
        new_forbidden = set(new.get("methods_forbidden") or [])
        new_requested = set(new.get("methods_requested") or [])
        new_fallback = set(new.get("methods_fallback") or [])
        allowed = set(new_allowed or out.get("methods_allowed") or [])
        forbidden = new_forbidden | set(out.get("methods_forbidden") or [])
        requested = new_requested | set(out.get("methods_requested") or [])
        fallback = new_fallback | set(out.get("methods_fallback") or [])
        forbidden -= new_allowed | new_requested | new_fallback
        allowed -= new_forbidden
        requested -= forbidden | new_fallback
        fallback -= forbidden | new_requested | new_allowed
        if allowed:
            fallback &= allowed | ({"qat"} if "quantize" in allowed else set())
        out["methods_allowed"] = sorted(allowed) or None
        out["methods_forbidden"] = sorted(forbidden) or None
        out["methods_requested"] = sorted(requested) or None
        out["methods_fallback"] = sorted(fallback) or None
        precisions = set(new.get("precision_forbidden") or []) | set(out.get("precision_forbidden") or [])
        if new.get("precision") is not None:
            precisions.discard(new["precision"])
        if out.get("precision") in precisions:
            out["precision"] = None
        out["precision_forbidden"] = sorted(precisions) or None
        text = "; ".join(t for t in (self.text, follow_up.text) if t)
        return Goal.model_validate(
            {
                **out,
                "text": text,
                "unparsed_words": list(follow_up.unparsed_words),
                "readings": list(follow_up.readings),
            }
        )

    @property
    def has_target(self) -> bool:
        """Whether a sweep can aim at this goal: a limit, an objective other than balanced, or a precision."""
        return self.has_constraints or self.objective != "balanced" or self.precision is not None

    def require_target(self) -> None:
        """The one rule "a goal needs something to aim at", for every surface.

        Raises:
            GoalError: no limit, no objective and no precision (the words not understood are named).
        """
        if self.has_target:
            return
        unread = f" (words not understood: {', '.join(self.unparsed_words)})" if self.unparsed_words else ""
        raise GoalError(
            f"the goal {self.text[:200]!r} sets no limit I can measure{unread}",
            hint='say what you need, e.g. "under 5 MB with less than 1% accuracy loss" or "as small as possible"; '
            "parse_goal shows how a goal is read",
        )

    def constraint_names(self) -> list[str]:
        """Names of the numeric constraint fields that are set, in schema order."""
        return [name for name in CONSTRAINT_FIELDS if getattr(self, name) is not None]

    def with_changes(self, **fields: Any) -> Goal:
        """A new, re-validated Goal with ``fields`` replaced (e.g. ``max_size_mb=2.0`` for "make it smaller").

        ``has_constraints`` is derived again; unknown field names and invalid values raise
        ``pydantic.ValidationError``.
        """
        data = self.model_dump(exclude={"has_constraints"})
        data.update(fields)
        return Goal.model_validate(data)

    def describe(self) -> str:
        """One line of plain English, e.g. ``size <= 5.0 MB, accuracy drop <= 1.0 pt, objective: balanced``.

        Sizes are decimal MB, drops in percentage points, latency is p50 in ms; limits relative to the original
        say so ("of original", "original - 4.0 MB").
        """
        parts: list[str] = []
        if self.max_size_mb is not None:
            parts.append(f"size <= {self.max_size_mb} MB")
        if self.max_size_ratio is not None:
            parts.append(f"size <= {self.max_size_ratio * 100:g}% of original")
        if self.min_size_reduction_mb is not None:
            parts.append(f"size <= original - {self.min_size_reduction_mb} MB")
        if self.max_memory_mb is not None:
            parts.append(f"peak memory <= {self.max_memory_mb} MB")
        if self.max_accuracy_drop_pct is not None:
            parts.append(f"accuracy drop <= {self.max_accuracy_drop_pct} pt")
        if self.min_metric is not None:
            parts.append(f"metric >= {self.min_metric:g} ({self.min_metric * 100:g}%)")
        if self.min_metric_ratio is not None:
            parts.append(f"metric >= {self.min_metric_ratio * 100:g}% of original")
        if self.max_latency_ms is not None:
            parts.append(f"p50 latency <= {self.max_latency_ms} ms")
        if self.min_speedup is not None:
            parts.append(f"speedup >= {self.min_speedup}x")
        if self.max_latency_ratio is not None:
            parts.append(f"p50 latency <= {self.max_latency_ratio:g}x original")
        if self.max_latency_increase_ms is not None:
            parts.append(f"p50 latency <= original + {self.max_latency_increase_ms} ms")
        if self.min_latency_reduction_ms is not None:
            parts.append(f"p50 latency <= original - {self.min_latency_reduction_ms} ms")
        if not parts:
            parts.append("no constraints")
        if self.precision is not None:
            parts.append(f"precision: {self.precision}")
        if self.precision_forbidden is not None:
            parts.append(f"precision not: {', '.join(self.precision_forbidden)}")
        if self.keep_float_layers is not None:
            layers = " and ".join(self.keep_float_layers)
            parts.append(f"kept in float: {layers} layer{'s' if len(self.keep_float_layers) > 1 else ''}")
        if self.device is not None:
            parts.append(f"device: {self.device}")
        if self.threads is not None:
            parts.append(f"threads: {self.threads}")
        if self.batch_size is not None:
            parts.append(f"batch: {self.batch_size}")
        if self.methods_allowed is not None:
            parts.append(f"methods allowed: {', '.join(self.methods_allowed)}")
        if self.methods_forbidden is not None:
            parts.append(f"methods forbidden: {', '.join(self.methods_forbidden)}")
        if self.methods_requested is not None:
            parts.append(f"methods asked for: {', '.join(self.methods_requested)}")
        if self.methods_fallback is not None:
            parts.append(f"only as a fallback: {', '.join(self.methods_fallback)}")
        parts.append(f"objective: {self.objective}")
        return ", ".join(parts)


# --------------------------------------------------------------------------- analysis reports


class LayerSensitivity(Frozen):
    """How much error quantizing one layer adds. Lower SQNR = more error = more sensitive."""

    name: str
    op_type: str
    sqnr_db: float | None = Field(
        default=None,
        description="SQNR (dB) of the noise this layer adds: its output's error minus its input's",
    )
    cumulative_sqnr_db: float | None = Field(
        default=None,
        description="SQNR (dB) of the layer's output in the quantized model against the fp32 model",
    )
    exact_drop_pct: float | None = Field(
        default=None,
        description="exact mode: metric drop of full int8 minus the drop with this layer kept fp32",
    )
    rank: int = Field(description="1 = most sensitive")


class SensitivityReport(Frozen):
    model_path: str
    method: Literal["sqnr", "exact"]
    recipe: str = Field(description="the quantization the error was measured for")
    layers: list[LayerSensitivity] = Field(description="most sensitive first")
    calib_samples: int
    seconds: float
    model_passes: int = Field(description="forward passes over the calibration data the profile cost")
