"""The typed values that flow through QuantTaaS (pydantic v2, frozen, unknown fields rejected, units in names).

Nothing here loads a model: a :class:`ModelRef` is a reference to a file, never the file's contents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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

    @property
    def label(self) -> str:
        ops = "" if self.op_types is None else "[" + ",".join(self.op_types) + "]"
        gran = "pc" if self.per_channel else "pt"
        keep = f"-keep{len(self.keep_fp32)}" if self.keep_fp32 else ""
        return f"static_int8{ops}-{gran}-{self.calibration}{keep}"


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


Recipe = Annotated[
    StaticInt8Recipe | DynamicInt8Recipe | Fp16Recipe | Int4WeightOnlyRecipe,
    Field(discriminator="kind"),
]

RECIPE_ALIASES: dict[str, str] = {
    "static-int8": "static_int8",
    "dynamic-int8": "dynamic_int8",
    "fp16": "fp16",
    "int4": "int4_weight_only",
    "int4-weight-only": "int4_weight_only",
}


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
