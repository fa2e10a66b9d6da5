"""The typed values that flow through QuantTaaS (pydantic v2, frozen, unknown fields rejected, units in names).

Nothing here loads a model: a :class:`ModelRef` is a reference to a file, never the file's contents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    """What :func:`optimizer.inspect.inspect_model` finds in a model."""

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


class _RecipeBase(Frozen):
    version: int = 1
    keep_fp32: tuple[str, ...] = Field(
        default=(), description="node names left in float32 (for selective, per-layer precision)"
    )

    @property
    def label(self) -> str:
        """A short, human name for the recipe."""
        return self.kind  # type: ignore[attr-defined,no-any-return]


class StaticInt8Recipe(_RecipeBase):
    """Static int8 QDQ quantization calibrated on data (the right default for CNNs)."""

    kind: Literal["static_int8"] = "static_int8"
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
        return f"static_int8{ops}-{gran}-{self.calibration}{rr}{keep}"


class DynamicInt8Recipe(_RecipeBase):
    """Dynamic int8: weights int8 offline, activations quantized at run time (the transformer default)."""

    kind: Literal["dynamic_int8"] = "dynamic_int8"
    # Gather holds the embedding tables of transformers (half of MiniLM's weights); Conv is left out on purpose:
    # onnxruntime's ConvInteger is often slower than fp32 and can wreck accuracy (STACK.md)
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Gather")
    per_channel: bool = False

    @property
    def label(self) -> str:
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return "dynamic_int8[" + ",".join(self.op_types) + "]" + keep


class Fp16Recipe(_RecipeBase):
    """Float16 weights and arithmetic, with float32 inputs and outputs kept."""

    kind: Literal["fp16"] = "fp16"
    keep_io_types: bool = True


class Int4WeightOnlyRecipe(_RecipeBase):
    """4-bit block-wise weight-only quantization of MatMul (onnxruntime MatMulNBits)."""

    kind: Literal["int4_weight_only"] = "int4_weight_only"
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


def _pct(x: float) -> str:
    return f"{round(x * 100, 1):g}"


class _TrainingRecipeBase(_RecipeBase):
    """Recipes that change weights through PyTorch (or, for ONNX-only models, through numpy): no keep_fp32."""

    @model_validator(mode="after")
    def _no_keep_fp32(self) -> Self:
        if self.keep_fp32:
            raise ValueError(
                f"keep_fp32 does not apply to {self.kind!r} (it names ONNX nodes left in float32 by a quantizer)"  # type: ignore[attr-defined]
            )
        return self


class PruneMagnitudeRecipe(_TrainingRecipeBase):
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


class PruneChannelsRecipe(_TrainingRecipeBase):
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

    @property
    def label(self) -> str:
        ft = f"-ft{self.finetune_epochs}" if self.finetune_epochs else ""
        rounding = "" if self.round_to == 8 else "-any" if self.round_to is None else f"-r{self.round_to}"
        return f"prune_channels-{self.target}{_pct(self.amount)}pct{rounding}{ft}"


class QatInt8Recipe(_TrainingRecipeBase):
    """Quantization-aware training for static int8 (torchao PT2E, the path neural-compressor 3.x uses), exported
    to ONNX with QuantizeLinear/DequantizeLinear pairs. Needs a PyTorch source and labelled training data."""

    kind: Literal["qat_int8"] = "qat_int8"
    epochs: int = Field(default=2, ge=1, le=100)
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam learning rate (cosine-decayed)")
    per_channel: bool = True

    @property
    def label(self) -> str:
        return f"qat_int8-{'pc' if self.per_channel else 'pt'}-e{self.epochs}"


class IncAutotuneRecipe(_TrainingRecipeBase):
    """Intel Neural Compressor's accuracy-aware ``autotune`` over static int8 configurations (PT2E). INC stops at
    the first configuration whose tuning metric is within ``tolerable_loss``; the exported ONNX is measured again
    like every other candidate. Needs a PyTorch source and calibration data."""

    kind: Literal["inc_autotune"] = "inc_autotune"
    tolerable_loss: float = Field(
        default=0.01, ge=0.0, le=1.0, description="relative loss of the tuning metric INC accepts"
    )
    calib_samples: int = Field(default=128, ge=1, le=100_000)

    @property
    def label(self) -> str:
        return f"inc_autotune-{_pct(self.tolerable_loss)}pct"


#: the recipes a chain may hold (a chain does not nest)
ChainStep = Annotated[
    StaticInt8Recipe
    | DynamicInt8Recipe
    | Fp16Recipe
    | Int4WeightOnlyRecipe
    | PruneMagnitudeRecipe
    | PruneChannelsRecipe
    | QatInt8Recipe
    | IncAutotuneRecipe,
    Field(discriminator="kind"),
]

#: kinds whose result is a quantized (or float16) model; nothing may follow them in a chain
QUANTIZING_KINDS: frozenset[str] = frozenset(
    {"static_int8", "dynamic_int8", "fp16", "int4_weight_only", "qat_int8", "inc_autotune"}
)


class ChainRecipe(_TrainingRecipeBase):
    """Steps applied in order (e.g. prune 30% of the channels with a fine-tune, then static int8 per channel),
    each measured in the report. Pruning steps come first; at most one quantizing step, and it comes last."""

    kind: Literal["chain"] = "chain"
    steps: tuple[ChainStep, ...] = Field(min_length=2, max_length=8)

    @model_validator(mode="after")
    def _order(self) -> Self:
        quant = [i for i, s in enumerate(self.steps) if s.kind in QUANTIZING_KINDS]
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


Recipe = Annotated[
    StaticInt8Recipe
    | DynamicInt8Recipe
    | Fp16Recipe
    | Int4WeightOnlyRecipe
    | PruneMagnitudeRecipe
    | PruneChannelsRecipe
    | QatInt8Recipe
    | IncAutotuneRecipe
    | ChainRecipe,
    Field(discriminator="kind"),
]

RECIPE_ALIASES: dict[str, str] = {
    "static-int8": "static_int8",
    "dynamic-int8": "dynamic_int8",
    "fp16": "fp16",
    "int4": "int4_weight_only",
    "int4-weight-only": "int4_weight_only",
    "prune-magnitude": "prune_magnitude",
    "prune-channels": "prune_channels",
    "qat-int8": "qat_int8",
    "inc-autotune": "inc_autotune",
    "chain": "chain",
}


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
    """What one evaluation measured. ``metric`` is higher-is-better on a 0..1 (or -1..1) scale."""

    size_bytes: int
    metric_name: str
    metric: float | None = None
    accuracy_drop_pct: float | None = Field(
        default=None,
        description="percentage points of the metric lost against the baseline (negative = gained)",
    )
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    compressed_size_bytes: int | None = Field(
        default=None,
        description="gzip (level 6) of the model file: what sparse (pruned) weights save, since a dense file "
        "stores their zeros at full size",
    )
    peak_memory_bytes: int | None = Field(
        default=None, description="resident memory added by creating the session and running the evaluation"
    )
    backend: str = "CPUExecutionProvider"
    threads: int = 1
    batch_size: int = 1
    samples: int = 0
    latency_runs: int = 0


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.metrics is not None


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
