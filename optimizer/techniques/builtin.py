"""The built-in techniques, one record each (see :mod:`optimizer.techniques.registry`).

Size predictions: float weights take 4 bytes, int8 1, fp16 2, int4 about 0.6; what a recipe keeps in float32 keeps
4. Channel pruning keeps ``1 - amount`` of the weights (a MAC target is read as a parameter target); magnitude
pruning keeps the dense size; QAT and INC produce static int8; a chain is its quantizing step applied to what its
pruning keeps. The first measured int8 size re-scales every prediction in the sweep.

Imported by the registry at the end of its module; light (no onnx, onnxruntime or torch here).
"""

from __future__ import annotations

from optimizer.techniques.knapsack import Selection
from optimizer.techniques.registry import (
    CliFlag,
    GridContext,
    Proposal,
    SizeBasis,
    Technique,
    register,
)
from optimizer.types import (
    AdaRoundInt8Recipe,
    ChainRecipe,
    DynamicInt8Recipe,
    EqualizedInt8Recipe,
    Fp16Recipe,
    IncAutotuneRecipe,
    Int4WeightOnlyRecipe,
    Int16ActivationsRecipe,
    OrtDynamicDefaultRecipe,
    OrtOptimizedRecipe,
    OrtStaticDefaultRecipe,
    PruneChannelsRecipe,
    PruneMagnitudeRecipe,
    QatInt8Recipe,
    RecipeBase,
    StaticInt8Recipe,
)

#: layers int8 quantizers act on
QUANT_LAYER_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: what full static int8 quantizes among the weight-carrying ops (embeddings too)
STATIC_WEIGHT_OPS = (*QUANT_LAYER_OPS, "Gather")
DYNAMIC_OPS = ("MatMul", "Gemm", "Gather")
#: the ks of the selective candidates (the k most sensitive layers kept in float)
SELECTIVE_KS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: the ks of dynamic int8 with the most sensitive MatMul/Gemm layers kept in float (speed goals)
DYNAMIC_SELECTIVE_KS = (1, 2, 4, 8)

ONNXRUNTIME_STEP = "optimizer.techniques.quantize:apply_step"
ONE_LINER_STEP = "optimizer.techniques.quantize:apply_one_liner"
#: what onnxruntime's quantize_dynamic / quantize_static quantize by default (weights in initializers only)
ORT_DEFAULT_OPS = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Gather",
    "Attention",
    "LSTM",
    "EmbedLayerNormalization",
)


# --------------------------------------------------------------------------- size predictions


def _int8_size(basis: SizeBasis, quantized: int) -> float:
    return basis.overhead + basis.float_bytes - 3.0 * quantized


def _static_size(recipe: StaticInt8Recipe, basis: SizeBasis) -> float:
    q = basis.weight_params(recipe.op_types or STATIC_WEIGHT_OPS) - basis.kept_params(recipe)
    return _int8_size(basis, q)


def _recovered_size(
    recipe: EqualizedInt8Recipe | AdaRoundInt8Recipe | Int16ActivationsRecipe, basis: SizeBasis
) -> float:
    # the same QDQ file as static int8 of every weight op; only weight and bias values differ (16-bit weights
    # take one byte more per parameter)
    size = _int8_size(basis, basis.weight_params(STATIC_WEIGHT_OPS) - basis.kept_params(recipe))
    if isinstance(recipe, Int16ActivationsRecipe):
        size += sum(basis.layer_params.get(n, 0) for n in recipe.int16_weight_layers)
    return size


def _dynamic_size(recipe: DynamicInt8Recipe, basis: SizeBasis) -> float:
    return _int8_size(basis, basis.weight_params(recipe.op_types) - basis.kept_params(recipe))


def _one_liner_size(recipe: RecipeBase, basis: SizeBasis) -> float:
    # the one-liner runs on the original file: weights left in Constant nodes are not quantized
    q = basis.weight_params(ORT_DEFAULT_OPS) - basis.info.constant_param_count
    return _int8_size(basis, max(q, 0))


def _fp16_size(recipe: Fp16Recipe, basis: SizeBasis) -> float:
    return basis.overhead + 2.0 * basis.info.param_count + 2.0 * basis.kept_params(recipe)


def _int4_size(recipe: Int4WeightOnlyRecipe, basis: SizeBasis) -> float:
    q = basis.weight_params(("MatMul",)) - basis.kept_params(recipe)
    return basis.overhead + basis.float_bytes - 3.4 * q


def _ort_optimized_size(recipe: OrtOptimizedRecipe, basis: SizeBasis) -> float:
    return basis.overhead + basis.float_bytes


def _kept_fraction(recipe: RecipeBase) -> float:
    """The fraction of parameters channel pruning keeps (1 for every other recipe)."""
    frac = 1.0
    for step in recipe.steps if isinstance(recipe, ChainRecipe) else (recipe,):
        if isinstance(step, PruneChannelsRecipe):
            frac *= 1.0 - step.amount
    return frac


def _channels_size(recipe: PruneChannelsRecipe, basis: SizeBasis) -> float:
    return basis.overhead + basis.float_bytes * _kept_fraction(recipe)


def _dense_size(recipe: RecipeBase, basis: SizeBasis) -> float:
    return basis.overhead + basis.float_bytes


def _trained_int8_size(recipe: RecipeBase, basis: SizeBasis) -> float:
    return _static_size(StaticInt8Recipe(), basis)


def _chain_size(recipe: ChainRecipe, basis: SizeBasis) -> float:
    from optimizer.techniques.registry import predict_size

    last = next((st for st in recipe.steps if st.quantizing), None)
    full = predict_size(last, basis) if last is not None else basis.overhead + basis.float_bytes
    return basis.overhead + (full - basis.overhead) * _kept_fraction(recipe)


# --------------------------------------------------------------------------- proposals for the grid


def _quantizable(ctx: GridContext) -> bool:
    return bool(ctx.ops & set(QUANT_LAYER_OPS))


def _static_proposals(ctx: GridContext) -> list[Proposal]:
    if not (ctx.has_calib and _quantizable(ctx)):
        return []
    out = [
        Proposal(StaticInt8Recipe(), "anchor"),
        Proposal(StaticInt8Recipe(calibration="entropy"), "calibration"),
        Proposal(StaticInt8Recipe(calibration="percentile"), "calibration"),
        Proposal(StaticInt8Recipe(per_channel=False), "per_tensor"),
        # the same calibration written as onnxruntime's quantized operators: on CPU often much faster than QDQ
        # (STACK.md); built for speed goals, per channel and per tensor, since which is faster depends on the model
        Proposal(StaticInt8Recipe(quant_format="qoperator"), "speed"),
        Proposal(StaticInt8Recipe(quant_format="qoperator", per_channel=False), "speed"),
    ]
    if ctx.sensitivity and ctx.sensitivity.layers:
        from optimizer.models.graph import layer_blocks

        ranked = [la.name for la in ctx.sensitivity.layers]
        ks = [k for k in SELECTIVE_KS if k < len(ranked)][: ctx.max_selective]
        for k in ks:
            keep = layer_blocks(ctx.graph, ranked[:k]) if ctx.graph is not None else tuple(ranked[:k])
            out.append(Proposal(StaticInt8Recipe(keep_fp32=keep), "selective", k))
    return out + _budgeted_fp32_proposals(ctx)


#: the time bound of the AdaRound candidate the sweep proposes (the statistics passes count against it too)
ADAROUND_SWEEP_BUDGET_S = 30.0


def _recovery_proposals(ctx: GridContext) -> list[Proposal]:
    """Equalization (when the graph has layer pairs it can scale), equalization with bias correction, and learned
    rounding: the sweep runs them only when full post-training int8 misses the accuracy limit."""
    if not (ctx.has_calib and ctx.ops & {"Conv", "Gemm", "MatMul"}):
        return []
    out = []
    pairs = True
    if ctx.graph is not None:
        from optimizer.techniques.equalize import equalization_pairs

        pairs = bool(equalization_pairs(ctx.graph))
    if pairs:
        out.append(Proposal(EqualizedInt8Recipe(), "recovery"))
        out.append(Proposal(EqualizedInt8Recipe(bias_correction=True), "recovery"))
    else:
        out.append(Proposal(EqualizedInt8Recipe(equalize=False, bias_correction=True), "recovery"))
    out.append(Proposal(AdaRoundInt8Recipe(time_budget_s=ADAROUND_SWEEP_BUDGET_S), "recovery"))
    return out


#: the share of the measured per-layer quantization noise the mixed 16-bit candidate moves to 16-bit activations
INT16_NOISE_SHARE = 0.9


def noisiest_layers(ctx: GridContext, share: float = INT16_NOISE_SHARE) -> tuple[str, ...]:
    """The fewest layers whose quantization noise (10^(-SQNR/10) of each layer's own added noise, from the
    sensitivity profile, at most the layer's signal) adds up to ``share`` of all layers' noise: the layers where
    16-bit activations matter."""
    if ctx.sensitivity is None:
        return ()
    from optimizer.techniques.knapsack import layer_noise

    noise = layer_noise(ctx.sensitivity)
    total = sum(noise.values())
    if total <= 0:
        return ()
    chosen: list[str] = []
    acc = 0.0
    for name, v in sorted(noise.items(), key=lambda kv: -kv[1]):
        if acc >= share * total:
            break
        chosen.append(name)
        acc += v
    return tuple(chosen)


def size_budget(ctx: GridContext) -> float | None:
    """Bytes the goal's size limit leaves above full static int8 (its measured size once known, else its
    prediction), or None when the goal sets no size limit."""
    if ctx.size_limit_bytes is None:
        return None
    int8 = ctx.int8_size_bytes
    if int8 is None:
        int8 = _static_size(StaticInt8Recipe(), SizeBasis.of(ctx.info))
    return max(ctx.size_limit_bytes - int8, 0.0)


def budgeted_selection(ctx: GridContext, bytes_per_param: float) -> Selection | None:
    """The layers a 0/1 knapsack gives more precision (``bytes_per_param`` more than int8 each) under the goal's
    size budget (:mod:`optimizer.techniques.knapsack`); None without a size limit or a profile."""
    budget = size_budget(ctx)
    if budget is None or ctx.sensitivity is None or not ctx.sensitivity.layers:
        return None
    from optimizer.techniques.knapsack import select_layers

    return select_layers(
        ctx.sensitivity,
        SizeBasis.of(ctx.info).layer_params,
        bytes_per_param=bytes_per_param,
        budget_bytes=budget,
    )


#: bytes a layer adds over int8 per parameter: kept in float32, or with 16-bit weights
FP32_EXTRA_BYTES = 3.0
INT16_EXTRA_BYTES = 1.0


def _int16_proposals(ctx: GridContext) -> list[Proposal]:
    """All activations 16-bit, and (with a sensitivity profile) those of the noisiest layers, whose weights are
    16-bit too where the goal's size budget affords it (a knapsack; without a size limit the greedy noise-share
    rule alone); run by the sweep only when full int8 misses the accuracy limit (like every recovery)."""
    if not (ctx.has_calib and _quantizable(ctx)):
        return []
    out = [Proposal(Int16ActivationsRecipe(), "recovery")]
    layers = noisiest_layers(ctx)
    n_profiled = len(ctx.sensitivity.layers if ctx.sensitivity else ())
    chosen = budgeted_selection(ctx, INT16_EXTRA_BYTES)
    if chosen is not None and chosen.names:
        # 16-bit activations cost no size (their latency is measured); the budget buys 16-bit weights
        acts = tuple(dict.fromkeys((*layers, *chosen.names)))
        out.append(
            Proposal(
                Int16ActivationsRecipe(
                    int16_layers=acts if len(acts) < n_profiled else None, int16_weight_layers=chosen.names
                ),
                "recovery",
                len(acts),
                why=f"16-bit activations for the {len(layers)} noisiest layers (greedy, they cost no size) and "
                + chosen.describe("16-bit weights"),
                budgeted=True,
            )
        )
    elif layers and len(layers) < n_profiled:
        budget = size_budget(ctx)
        rule = (
            "the goal sets no size limit, so no knapsack: the fewest layers carrying "
            f"{100 * INT16_NOISE_SHARE:.0f}% of the profiled noise (greedy)"
            if budget is None
            else f"the goal's size budget ({budget / 1e3:.1f} KB above full int8) affords no 16-bit weights: "
            f"the fewest layers carrying {100 * INT16_NOISE_SHARE:.0f}% of the profiled noise (greedy)"
        )
        out.append(
            Proposal(
                Int16ActivationsRecipe(int16_layers=layers),
                "recovery",
                len(layers),
                why=f"16-bit activations for {len(layers)} layers: {rule}",
                budgeted=budget is not None,
            )
        )
    return out


def _budgeted_fp32_proposals(ctx: GridContext) -> list[Proposal]:
    """Static int8 with the layers a knapsack affords under the goal's size budget kept in float32 (selective
    fp32 chosen by size, not by rank): a recovery, run when full int8 misses the accuracy limit."""
    if not (ctx.has_calib and _quantizable(ctx)):
        return []
    chosen = budgeted_selection(ctx, FP32_EXTRA_BYTES)
    if chosen is None or not chosen.names:
        return []
    from optimizer.models.graph import layer_blocks

    keep = layer_blocks(ctx.graph, list(chosen.names)) if ctx.graph is not None else chosen.names
    return [
        Proposal(
            StaticInt8Recipe(keep_fp32=keep),
            "recovery",
            len(chosen.names),
            why=chosen.describe("float32"),
            budgeted=True,
        )
    ]


def _dynamic_proposals(ctx: GridContext) -> list[Proposal]:
    out = []
    if ctx.ops & {"MatMul", "Gemm"}:
        out.append(
            Proposal(DynamicInt8Recipe(op_types=tuple(o for o in DYNAMIC_OPS if o in ctx.ops)), "anchor")
        )
    if "Conv" in ctx.ops:
        ops = tuple(o for o in ("Conv", *DYNAMIC_OPS) if o in ctx.ops)
        out.append(Proposal(DynamicInt8Recipe(op_types=ops), "dynamic_conv"))
    matmuls = tuple(o for o in ("MatMul", "Gemm") if o in ctx.ops)
    if matmuls and "Gather" in ctx.ops:
        # MatMul/Gemm only: the embedding tables stay float (larger, often more accurate, as fast)
        out.append(Proposal(DynamicInt8Recipe(op_types=matmuls), "speed"))
    if matmuls and ctx.sensitivity and ctx.sensitivity.layers:
        # dynamic int8 with the k most sensitive MatMul/Gemm layers kept in float: between full dynamic int8
        # (fast, may lose too much) and float
        ranked = [la.name for la in ctx.sensitivity.layers if la.op_type in ("MatMul", "Gemm")]
        ops = tuple(o for o in DYNAMIC_OPS if o in ctx.ops)
        for k in (k for k in DYNAMIC_SELECTIVE_KS if k < len(ranked)):
            out.append(Proposal(DynamicInt8Recipe(op_types=ops, keep_fp32=tuple(ranked[:k])), "speed", k))
    return out


def _one_liner_proposals(ctx: GridContext) -> list[Proposal]:
    # always candidates (never skipped): no answer may be worse than what onnxruntime's defaults give by hand
    if ctx.info.quantized:
        return []
    out = [Proposal(OrtDynamicDefaultRecipe(), "anchor")]
    if ctx.has_calib:
        out.append(Proposal(OrtStaticDefaultRecipe(), "anchor"))
    return out


def _fp16_proposals(ctx: GridContext) -> list[Proposal]:
    return [Proposal(Fp16Recipe(), "anchor")]


def _ort_optimized_proposals(ctx: GridContext) -> list[Proposal]:
    return [Proposal(OrtOptimizedRecipe(), "speed")]


def _int4_proposals(ctx: GridContext) -> list[Proposal]:
    if "MatMul" in ctx.ops and SizeBasis.of(ctx.info).weight_params(("MatMul",)) > 0:
        return [Proposal(Int4WeightOnlyRecipe(), "anchor")]
    return []


def _pruning_steps(ctx: GridContext) -> tuple[RecipeBase, RecipeBase, RecipeBase]:
    ft = ctx.finetune
    return (
        PruneChannelsRecipe(amount=0.3, finetune_epochs=ft),
        PruneChannelsRecipe(amount=0.5, finetune_epochs=ft),
        PruneMagnitudeRecipe(sparsity=0.5, finetune_epochs=ft),
    )


def _channels_proposals(ctx: GridContext) -> list[Proposal]:
    if ctx.torch_source is not None:
        prune30, prune50, _ = _pruning_steps(ctx)
        # the same amount with the channels allocated by each layer's parameters per unit of sensitivity
        allocated = prune50.model_copy(update={"allocation": "sensitivity"})
        return [Proposal(prune30, "prune"), Proposal(prune50, "prune"), Proposal(allocated, "prune")]
    if ctx.asks_pruning and _quantizable(ctx):
        # never run: states in the report what needs the PyTorch model
        return [Proposal(PruneChannelsRecipe(amount=0.3), "needs_torch")]
    return []


def _magnitude_proposals(ctx: GridContext) -> list[Proposal]:
    if ctx.torch_source is not None:
        return [Proposal(_pruning_steps(ctx)[2], "prune")]
    if ctx.asks_pruning and _quantizable(ctx):
        return [
            Proposal(PruneMagnitudeRecipe(sparsity=0.5), "prune_onnx"),
            Proposal(PruneMagnitudeRecipe(sparsity=0.75), "prune_onnx"),
        ]
    return []


def _qat_proposals(ctx: GridContext) -> list[Proposal]:
    if ctx.torch_source is not None and ctx.torch_source.train_path is not None:
        return [Proposal(QatInt8Recipe(), "qat")]
    return []


def _inc_proposals(ctx: GridContext) -> list[Proposal]:
    if ctx.torch_source is not None and ctx.has_calib:
        return [Proposal(IncAutotuneRecipe(), "inc")]
    return []


def _chain_proposals(ctx: GridContext) -> list[Proposal]:
    out = []
    if ctx.torch_source is not None:
        if ctx.has_calib and _quantizable(ctx):
            for first in _pruning_steps(ctx):
                out.append(Proposal(ChainRecipe(steps=(first, StaticInt8Recipe())), "chain"))
        if ctx.torch_source.train_path is not None:
            out.append(Proposal(ChainRecipe(steps=(_pruning_steps(ctx)[0], QatInt8Recipe())), "chain"))
    elif ctx.asks_pruning and _quantizable(ctx) and ctx.has_calib:
        out.append(
            Proposal(ChainRecipe(steps=(PruneMagnitudeRecipe(sparsity=0.5), StaticInt8Recipe())), "chain")
        )
    return out


# --------------------------------------------------------------------------- the records

QUANTIZE = frozenset({"quantize"})
PRUNE = frozenset({"prune"})
#: QAT is quantization that trains: a goal's "no QAT, post-training only" forbids it, "only quantization" allows it
QAT = frozenset({"quantize", "qat"})

register(
    Technique(
        recipe_type=StaticInt8Recipe,
        description="static int8 (QDQ) calibrated on data: weights and activations int8; the CNN default",
        predict_size=_static_size,
        methods=QUANTIZE,
        precision="int8",
        apply=ONNXRUNTIME_STEP,
        needs=frozenset({"calibration"}),
        aliases=("static-int8",),
        propose=_static_proposals,
        cli_flags=(
            CliFlag("--per-tensor", "per_channel", False, "one scale per tensor instead of per channel"),
        ),
    )
)
register(
    Technique(
        recipe_type=EqualizedInt8Recipe,
        description="static int8 after cross-layer equalization (and optionally bias correction): recovers "
        "accuracy int8 loses, no training, same size",
        predict_size=_recovered_size,
        methods=QUANTIZE,
        precision="int8",
        apply="optimizer.techniques.recovery:apply_equalized_step",
        needs=frozenset({"calibration"}),
        aliases=("equalized-int8", "cle-int8"),
        propose=_recovery_proposals,
        cli_flags=(
            CliFlag("--per-tensor", "per_channel", False, "one scale per tensor instead of per channel"),
        ),
    )
)
register(
    Technique(
        recipe_type=Int16ActivationsRecipe,
        description="int8 weights with 16-bit activations (all, or the noisiest layers'): int8 size, near-float "
        "accuracy, but slower than float on CPU",
        predict_size=_recovered_size,
        methods=QUANTIZE,
        precision="int8",
        apply=ONNXRUNTIME_STEP,
        needs=frozenset({"calibration"}),
        aliases=("int16-activations", "a16w8"),
        propose=_int16_proposals,
        cli_flags=(
            CliFlag("--per-tensor", "per_channel", False, "one scale per tensor instead of per channel"),
        ),
    )
)
register(
    Technique(
        recipe_type=AdaRoundInt8Recipe,
        description="static int8 with weight rounding learned on the calibration data (AdaRound), bounded in time",
        predict_size=_recovered_size,
        methods=QUANTIZE,
        precision="int8",
        apply="optimizer.techniques.recovery:apply_adaround_step",
        needs=frozenset({"calibration"}),
        aliases=("adaround-int8",),
        propose=None,
        cli_flags=(
            CliFlag("--per-tensor", "per_channel", False, "one scale per tensor instead of per channel"),
        ),
    )
)
register(
    Technique(
        recipe_type=DynamicInt8Recipe,
        description="dynamic int8: int8 weights, activations quantized at run time; the transformer default",
        predict_size=_dynamic_size,
        methods=QUANTIZE,
        precision="int8",
        apply=ONNXRUNTIME_STEP,
        aliases=("dynamic-int8",),
        propose=_dynamic_proposals,
    )
)
register(
    Technique(
        recipe_type=OrtDynamicDefaultRecipe,
        description="onnxruntime's quantize_dynamic(model, out) with every default, on the original file: the "
        "one-liner baseline, always a candidate",
        predict_size=_one_liner_size,
        methods=QUANTIZE,
        precision="int8",
        apply=ONE_LINER_STEP,
        aliases=("ort-dynamic-default",),
        propose=_one_liner_proposals,
    )
)
register(
    Technique(
        recipe_type=OrtStaticDefaultRecipe,
        description="onnxruntime's quantize_static(model, out, reader) with every default (QDQ, per-tensor, "
        "min-max), on the original file: the one-liner baseline, always a candidate",
        predict_size=_one_liner_size,
        methods=QUANTIZE,
        precision="int8",
        apply=ONE_LINER_STEP,
        needs=frozenset({"calibration"}),
        aliases=("ort-static-default",),
        propose=None,  # proposed with the dynamic one-liner (one proposal function for both)
    )
)
register(
    Technique(
        recipe_type=Fp16Recipe,
        description="float16 weights and arithmetic (inputs and outputs stay float32): half the size",
        predict_size=_fp16_size,
        methods=QUANTIZE,
        precision="fp16",
        apply=ONNXRUNTIME_STEP,
        aliases=("fp16",),
        propose=_fp16_proposals,
    )
)
register(
    Technique(
        recipe_type=Int4WeightOnlyRecipe,
        description="4-bit block-wise weight-only quantization of MatMul layers (MatMulNBits)",
        predict_size=_int4_size,
        methods=QUANTIZE,
        precision="int4",
        apply=ONNXRUNTIME_STEP,
        aliases=("int4", "int4-weight-only"),
        propose=_int4_proposals,
    )
)
register(
    Technique(
        recipe_type=OrtOptimizedRecipe,
        description="onnxruntime's graph optimizations applied offline and saved (fused ops; same numbers): "
        "faster session start, tied to onnxruntime's CPU provider",
        predict_size=_ort_optimized_size,
        methods=frozenset(),
        apply="optimizer.techniques.quantize:apply_ort_optimized_step",
        aliases=("ort-optimized",),
        propose=_ort_optimized_proposals,
    )
)
register(
    Technique(
        recipe_type=PruneMagnitudeRecipe,
        description="magnitude pruning: the smallest weights set to zero (the gzip size shrinks, not the file)",
        predict_size=_dense_size,
        methods=PRUNE,
        apply="optimizer.techniques.prune:apply_magnitude_step",
        aliases=("prune-magnitude",),
        propose=_magnitude_proposals,
        cli_defaults={"sparsity": 0.5},
    )
)
register(
    Technique(
        recipe_type=PruneChannelsRecipe,
        description="structured pruning of whole channels (torch-pruning): a smaller and faster file",
        predict_size=_channels_size,
        methods=PRUNE,
        apply="optimizer.techniques.prune:apply_channels_step",
        needs=frozenset({"torch_source"}),
        aliases=("prune-channels",),
        propose=_channels_proposals,
        cli_defaults={"amount": 0.3},
    )
)
register(
    Technique(
        recipe_type=QatInt8Recipe,
        description="quantization-aware training for static int8 (torchao PT2E), exported as ONNX QDQ",
        predict_size=_trained_int8_size,
        methods=QAT,
        precision="int8",
        apply="optimizer.techniques.qat:apply_qat_step",
        needs=frozenset({"torch_source", "training_data"}),
        aliases=("qat-int8",),
        propose=_qat_proposals,
        cli_flags=(
            CliFlag("--per-tensor", "per_channel", False, "one scale per tensor instead of per channel"),
        ),
    )
)
register(
    Technique(
        recipe_type=IncAutotuneRecipe,
        description="Intel Neural Compressor's accuracy-aware autotune over static int8 configurations",
        predict_size=_trained_int8_size,
        methods=QUANTIZE,
        precision="int8",
        apply="optimizer.techniques.qat:apply_inc_step",
        needs=frozenset({"torch_source", "calibration"}),
        aliases=("inc-autotune",),
        propose=_inc_proposals,
    )
)
register(
    Technique(
        recipe_type=ChainRecipe,
        description="steps in order, e.g. prune 30% of the channels (fine-tuned) then static int8; each measured",
        predict_size=_chain_size,
        methods=frozenset(),
        apply=None,
        aliases=("chain",),
        propose=_chain_proposals,
    )
)
