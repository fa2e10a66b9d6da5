"""A goal-directed sweep of candidate recipes, run as parallel trials on Ray (or serially in-process).

The search space (the *grid*) holds onnxruntime's one-liners (``quantize_dynamic`` and ``quantize_static`` with
every default, on the original file), the base recipes (static int8 per-channel/per-tensor with three calibration
methods, dynamic int8, fp16, int4 weight-only) and *selective* variants that keep the k most sensitive layers in
fp32. The sweep does not walk the whole grid, but it skips a candidate only on a measurement:

1. the anchors run first: the two one-liners always (so no goal the one-liner meets is answered "infeasible", and
   the recommendation, chosen among every measured candidate, is at least as good on the goal's terms), the
   cheapest recipe of each kind unless its predicted size breaks the size limit;
2. every other candidate runs unless a measurement rules it out (:meth:`Search.ruled_out`), and the reason cites
   it: a size prediction over the limit (with its basis: parameter counts, scaled by the measured size of full
   int8); a measured candidate with the same graph (another calibration of the same static int8) that misses a
   size or speed limit; or a measured candidate that meets every limit and dominates it on every dimension the
   goal ranks (size from the prediction, speed only for the same graph, accuracy never assumed). A candidate
   that failed justifies nothing: what it would have ruled out runs;
3. when full int8 misses the accuracy limit, a parallel bisection over k finds the smallest selective candidate
   that meets it (a kept layer reads float inputs, so keeping more in float is monotone; if the measurements
   show otherwise beyond noise, nothing is inferred from the bisection and the report says so);
4. for a goal about speed (a latency limit, a minimum speed-up, "as fast as possible") the formats that are fast
   on the target are built too: static int8 as QOperator (QLinearConv) as well as QDQ, per channel and per
   tensor, dynamic int8 including Conv and of MatMul/Gemm only, onnxruntime's graph optimizations saved offline,
   and, when dynamic int8 loses too much, dynamic int8 with its most sensitive MatMul layers kept in float;
   fp16 (an anchor) counts only where it measures faster. ``reduce_range`` follows the CPU (7-bit weights
   without VNNI, :mod:`optimizer.measure.hardware`). Why each candidate was built is in ``tried_reasons``;
5. latency measured inside trials (which share the machine) is re-measured for the finalists, alone (after the
   executor is idle) and side by side with the original, interleaved in blocks, giving each finalist p50, p95
   and a confidence interval for its speed-up (:mod:`optimizer.measure.speed`); speed claims and speed limits
   use the interval. When a goal that does not mention speed would get a static int8 QDQ model measured slower
   than the original, its QOperator sibling is built and compared too.

Threads and batch size of every latency measurement come from the options (``--threads``/``--batch``), else
from the goal ("on 4 threads", "batch 32"), else 1 and 1; the report states them (``measurement``).

Calibration and profiling are sized from the model's activations and the machine's free memory
(:mod:`optimizer.search.memory`); a trial killed for memory is retried alone with half the calibration samples.
What the sweep did beyond the usual (the memory plan, retries, upstream workarounds, the metric chosen for data
without labels, pre-processing fallbacks) is listed in ``ParetoReport.notes``.

With ``SweepOptions.front_points`` (the chat page asks for it), a size, accuracy or balanced goal also gets that
many quantization candidates measured across the front (the one-liners first, then the other int8 variants and a
few selective points spread over k), so the user sees what each megabyte buys, while the sweep has run less than
``time_budget_s``; a candidate left out for the budget says so in its reason.

Pruning, quantization-aware training and chains join the grid when the model has a PyTorch source (a
:class:`~optimizer.types.TorchSource`; the zoo's digits-cnn has one): channel pruning (30% and 50% of the
parameters), magnitude pruning (50%), QAT, neural-compressor's autotune, and chains of pruning then int8 (when
the goal allows both methods; ``methods_forbidden`` drops them like any recipe). Each costs seconds of training
and export, so beyond the measurement rules above they wait while a measured candidate already meets the goal:

5. the accuracy recoveries run when post-training int8 misses the accuracy limit, or when no candidate is
   feasible: first those without training (static int8 after cross-layer equalization, with bias correction,
   with learned rounding, with 16-bit activations; family ``recovery``), then QAT and INC autotune;
6. pruning and chains run when the goal asks for pruning (:meth:`Goal.asks_for`), or when no measured candidate
   meets the goal; when the grid's pruning amounts leave no candidate meeting the goal, the amount and the
   fine-tune budget are searched toward the limits (:func:`_pruning_search`).

An ONNX-only model gets magnitude pruning of its initializers only, and only when the goal asks for pruning; the
report states the limits (the dense file and its latency do not shrink, only the compressed size; structured
pruning and QAT need the PyTorch model).

Every skipped candidate is kept in the report with the reason; ``evaluations`` counts what was really built.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import onnx
from pydantic import Field

from optimizer.errors import GoalError, QuantTaaSError, RecipeError
from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import CPU, CUDA, evaluate_model
from optimizer.measure.hardware import cpu_int8_summary, int8_saturates
from optimizer.measure.memory import MEMORY_METHOD
from optimizer.measure.speed import SPEEDUP_METHOD, block_counts, measure_side_by_side, speedups
from optimizer.models.files import pack_model, unpack_model
from optimizer.models.graph import edge_layers, layer_blocks
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.executors import Executor, TrialFn, make_executor
from optimizer.search.pareto import (
    MeasurementInfo,
    ParetoReport,
    allowed,
    build_report,
    check_goal,
    drop_limit_pct,
    is_speed_goal,
    size_limit_bytes,
)
from optimizer.search.profile import PROFILE_SAMPLES, profile_layers
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.techniques import registry
from optimizer.techniques.prune import compressed_size_bytes
from optimizer.techniques.registry import GridContext, SizeBasis
from optimizer.types import (
    Candidate,
    DynamicInt8Recipe,
    Frozen,
    Goal,
    Metrics,
    ModelInspection,
    PruneChannelsRecipe,
    Recipe,
    SensitivityReport,
    StaticInt8Recipe,
    TorchSource,
    TrainingRecipeBase,
)

log = logging.getLogger(__name__)

SIZE_MARGIN = (
    1.05  # a predicted size this much over the limit is skipped; predictions are within a few percent
)


class SweepOptions(Frozen):
    executor: Literal["ray", "serial"] = "ray"
    workers: int | None = None  # parallel trials; default: the CPUs Ray sees
    # onnxruntime threads and batch size of every latency measurement (trials and the re-measurement);
    # None: the goal's ("on 4 threads", "batch 32"), else 1
    threads: int | None = Field(default=None, ge=1, le=256)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    latency_runs: int = 30
    remeasure_runs: int = 60  # timed runs of each finalist (and the original) side by side, in blocks
    remeasure_blocks: int = Field(default=8, ge=2, le=100)
    remeasure_budget_s: float = 90.0  # fewer runs per block (never under 3 blocks of 2) for slow models
    exhaustive: bool = False  # evaluate the whole grid (for benchmarks and comparisons)
    profile: bool = True  # rank layers by sensitivity to build selective candidates
    max_selective: int = 12
    torch_recipes: bool = (
        True  # use the model's PyTorch source (given, or the zoo case's) for pruning and QAT
    )
    finetune_epochs: int = 1  # fine-tune after pruning (when the PyTorch source has training data)
    # for size, accuracy and balanced goals: measure at least this many quantization candidates across the front
    # (the one-liners, fp16, int8 variants, a few selective points), so a chart shows what each megabyte buys;
    # 0 measures only what the goal needs
    front_points: int = Field(default=0, ge=0, le=64)
    # the sweep adds those points only while it has run less than this (seconds from its start); None: no limit
    time_budget_s: float | None = Field(default=None, gt=0)


@dataclass
class SweepEvent:
    kind: Literal["baseline", "profiled", "trial", "skipped", "remeasured", "finished"]
    done: int
    planned: int
    candidate: Candidate | None = None
    message: str = ""


ProgressFn = Callable[[SweepEvent], None]


#: the families of the quantization grid (the others need training or a PyTorch model)
QUANT_FAMILIES: frozenset[str] = frozenset(
    {"anchor", "calibration", "per_tensor", "selective", "dynamic_conv", "speed"}
)

#: why a candidate of each family is built (``ParetoReport.tried_reasons``), unless a move says more
FAMILY_WHY: dict[str, str] = {
    "anchor": "the plainest recipe of its kind, measured first",
    "calibration": "another calibration method: static int8 missed the accuracy limit or the goal had no limit",
    "per_tensor": "per-tensor scales: a different int8 kernel, sometimes faster than per-channel",
    "selective": "static int8 with the most sensitive layers kept in float, to recover accuracy",
    "dynamic_conv": "dynamic int8 including Conv (ConvInteger): no calibration; on CPU often slower, so measured",
    "speed": "a format that is often fast on CPU, built for a goal about speed",
    "prune": "pruning on the PyTorch model",
    "prune_onnx": "magnitude pruning of the initializers (the goal asks for pruning)",
    "qat": "quantization-aware training: post-training int8 lost too much or nothing met the goal",
    "inc": "neural-compressor's autotune: post-training int8 lost too much or nothing met the goal",
    "chain": "pruning then int8",
}
#: at most this many finalists are re-measured side by side in one round
MAX_FINALISTS = 10

NEEDS_TORCH_REASON = (
    "structured channel pruning and QAT need the PyTorch model (a TorchSource); this model is ONNX-only, so only "
    "magnitude pruning of its initializers is offered: it shrinks the compressed (gzip) size, not the dense file "
    "or its latency"
)


@dataclass
class GridItem:
    id: str
    recipe: Recipe
    family: str
    predicted_size: float
    k: int = 0
    blocked: str = ""  # why the goal does not let this item run (e.g. it cannot keep layers in float)
    why: str = ""  # how it was chosen (e.g. the knapsack's budget and layers), for tried_reasons
    budgeted: bool = False  # chosen under the goal's size budget: re-planned once full int8 is measured


# --------------------------------------------------------------------------- the grid


def predict_size(recipe: Recipe, info: ModelInspection) -> float:
    """Bytes the recipe's file should take on this model (its technique's prediction, see the registry)."""
    return registry.predict_size(recipe, SizeBasis.of(info))


def candidate_id(index: int, recipe: Recipe) -> str:
    """``c07-static_int8-pc-entropy``: the index and the recipe's label, safe as a file name and artifact id."""
    rid = f"c{index:02d}-{recipe.label}".replace("[", "-").replace("]", "").replace(",", "-")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", rid)[:150]


def build_grid(
    info: ModelInspection,
    sensitivity: SensitivityReport | None,
    *,
    has_calib: bool,
    max_selective: int = 12,
    torch_source: TorchSource | None = None,
    onnx_pruning: bool = False,
    finetune_epochs: int = 1,
    graph: onnx.ModelProto | None = None,
    keep_float: Sequence[str] = (),
    size_limit: float | None = None,
) -> list[GridItem]:
    """Every candidate the sweep could try on this model (before the goal prunes it): what each registered
    technique proposes (:func:`optimizer.techniques.registry.propose_all`), in grid order, with its predicted
    size.

    With ``torch_source``, the techniques that need the PyTorch model propose theirs (pruning fine-tuned for
    ``finetune_epochs`` when the source has training data, QAT with training data, INC with calibration data,
    chains of pruning then int8). Without one, ``onnx_pruning`` (the goal asks for pruning) adds magnitude pruning
    of the initializers (and a chain of it with int8), plus a ``needs_torch`` item that is never run: it states
    what needs the PyTorch model. With ``graph`` (the pre-processed model), a selective candidate keeps each of its
    k layers in fp32 together with the activation chain the layer feeds (:func:`optimizer.models.graph.layer_blocks`).
    With ``keep_float`` (node names the goal keeps in float, :attr:`Goal.keep_float_layers`), every quantizing
    recipe keeps them in fp32 as well; one that cannot (QAT, INC autotune, chains: they quantize a re-exported
    model) is marked ``blocked``. With ``size_limit`` (the goal's, in bytes), the recoveries that spend a size
    budget choose their layers by a knapsack under what the limit leaves above full int8
    (:mod:`optimizer.techniques.knapsack`).
    """
    return grid_items(
        grid_context(
            info,
            sensitivity,
            has_calib=has_calib,
            max_selective=max_selective,
            torch_source=torch_source,
            onnx_pruning=onnx_pruning,
            finetune_epochs=finetune_epochs,
            graph=graph,
            size_limit=size_limit,
        ),
        keep_float,
    )


def grid_context(
    info: ModelInspection,
    sensitivity: SensitivityReport | None,
    *,
    has_calib: bool,
    max_selective: int = 12,
    torch_source: TorchSource | None = None,
    onnx_pruning: bool = False,
    finetune_epochs: int = 1,
    graph: onnx.ModelProto | None = None,
    size_limit: float | None = None,
) -> GridContext:
    """What the registered techniques propose from (see :func:`build_grid`)."""
    return GridContext(
        info=info,
        sensitivity=sensitivity,
        has_calib=has_calib,
        torch_source=torch_source,
        asks_pruning=onnx_pruning,
        finetune_epochs=finetune_epochs,
        max_selective=max_selective,
        graph=graph,
        size_limit_bytes=size_limit,
    )


def grid_items(ctx: GridContext, keep_float: Sequence[str] = (), start: int = 0) -> list[GridItem]:
    """The grid items of every registered technique's proposals for ``ctx``, numbered from ``start``."""
    basis = SizeBasis.of(ctx.info)
    items: list[GridItem] = []
    for p in registry.propose_all(ctx):
        recipe, blocked = _keeping_float(p.recipe, keep_float)
        rid = candidate_id(start + len(items), recipe)
        items.append(
            GridItem(
                rid,
                recipe,
                p.family,
                registry.predict_size(recipe, basis),
                p.k,
                blocked,
                why=p.why,
                budgeted=p.budgeted,
            )
        )
    return items


def _keeping_float(recipe: Recipe, names: Sequence[str]) -> tuple[Recipe, str]:
    """``recipe`` keeping ``names`` in fp32 too, and why it cannot (empty when it can or need not)."""
    if not names or "quantize" not in registry.recipe_methods(recipe):
        return recipe, ""
    if isinstance(recipe, TrainingRecipeBase):
        return recipe, (
            f"the goal keeps layers in float ({', '.join(names[:4])}), and {recipe.kind} quantizes a re-exported "
            "model whose every layer it converts"
        )
    keep = tuple(dict.fromkeys((*recipe.keep_fp32, *names)))
    try:
        return type(recipe).model_validate({**recipe.model_dump(), "keep_fp32": keep}), ""
    except ValueError as e:  # onnxruntime's one-liners take no options: they quantize every layer
        errors = getattr(e, "errors", None)
        msg = str(errors()[0].get("msg", e)) if callable(errors) and errors() else str(e)
        why = msg.removeprefix("Value error, ")
        return recipe, f"the goal keeps layers in float ({', '.join(names[:4])}), and {why}"


# --------------------------------------------------------------------------- the sweep


class Search:
    """One sweep's state and the moves of the directed search (see the module docstring).

    It owns what was measured (``results``), what was skipped and why (``skipped``), the grid, and the scale
    that corrects size predictions once the full int8 candidate has been measured. ``run`` builds and measures
    items on the executor; ``skip`` records why an item is not built; ``too_big`` skips an item whose predicted
    size breaks the size limit.
    """

    def __init__(
        self,
        grid: list[GridItem],
        *,
        goal: Goal | None,
        baseline: Metrics,
        executor: Executor,
        spec: Callable[[GridItem], TrialSpec],
        out_dir: Path,
        emit: ProgressFn,
    ):
        self.grid = grid
        self.goal = goal
        self.baseline = baseline
        self.executor = executor
        self._spec = spec
        self.out_dir = out_dir
        self.emit = emit
        self.results: dict[str, Candidate] = {}
        self.skipped: dict[str, str] = {}
        self.tried: dict[str, str] = {}  # built id -> why
        self.scale = 1.0  # measured / predicted size of the full int8 candidate, once known
        self.scale_basis: str | None = None  # the candidate whose measured size set the scale
        self.notes: list[str] = []  # what the search itself says in the report
        self.limit = size_limit_bytes(goal, baseline)
        #: what size predictions of candidates added during the search are made from (set by run_sweep)
        self.basis: SizeBasis | None = None
        #: what the grid was proposed from, and the layers the goal keeps in float (set by run_sweep): budgeted
        #: proposals are re-planned from them once full int8 is measured
        self.grid_ctx: GridContext | None = None
        self.keep_float: tuple[str, ...] = ()

    # ------------------------------------------------------------------ facts about the goal and the results

    @property
    def objective(self) -> str:
        return self.goal.objective if self.goal else "balanced"

    @property
    def has_limits(self) -> bool:
        return bool(self.goal and self.goal.has_constraints)

    @property
    def drop_limit(self) -> float | None:
        """The accuracy limit in points lost (drop, metric floor or ratio, whichever is tightest)."""
        return drop_limit_pct(self.goal, self.baseline)

    def feasible(self, c: Candidate) -> bool:
        return c.ok and (self.goal is None or not check_goal(c, self.goal, self.baseline))

    def any_feasible(self) -> bool:
        return any(self.feasible(c) for c in self.results.values())

    def predicted(self, item: GridItem) -> float:
        return item.predicted_size * self.scale

    def planned(self) -> int:
        return len(self.grid) - len(self.skipped)

    # ------------------------------------------------------------------ moves

    def run(self, items: Sequence[GridItem], why: str = "") -> None:
        """Build and measure the items not yet measured or skipped; each result is stored as it arrives.
        ``why`` says why they are built (default: their family's reason)."""
        todo = [i for i in items if i.id not in self.results and i.id not in self.skipped]
        for i in todo:
            self.tried.setdefault(i.id, why or i.why or FAMILY_WHY.get(i.family, i.family))
        for cand, blob in self.executor.run([self._spec(i) for i in todo]):
            if blob is not None:
                path = unpack_model(blob, self.out_dir / "candidates" / f"{cand.id}.onnx")
                cand = cand.model_copy(update={"model_path": str(path)})
            self.results[cand.id] = cand
            self.emit(SweepEvent("trial", len(self.results), self.planned(), cand))

    def add(self, recipe: Recipe, family: str) -> GridItem:
        """A candidate the search derives from what it measured (e.g. a pruning amount between two measured
        ones), appended to the grid so the report counts it like any other.

        Raises:
            RuntimeError: the search has no size basis to predict the candidate's size from.
        """
        if self.basis is None:
            raise RuntimeError("Search.basis must be set before candidates are added")
        item = GridItem(
            candidate_id(len(self.grid), recipe), recipe, family, registry.predict_size(recipe, self.basis)
        )
        self.grid.append(item)
        return item

    def skip(self, item: GridItem, reason: str) -> None:
        if item.id not in self.results and item.id not in self.skipped:
            self.skipped[item.id] = reason
            self.emit(
                SweepEvent("skipped", len(self.results), self.planned(), message=f"{item.id}: {reason}")
            )

    def basis_text(self) -> str:
        """What size predictions rest on (said with every skip that uses one)."""
        scaled = (
            f", scaled by {self.scale:.3f} (measured / predicted size of {self.scale_basis})"
            if self.scale_basis
            else " (not yet scaled by a measured size)"
        )
        return f"from the parameter counts of the layers it quantizes or keeps in float{scaled}"

    def too_big(self, item: GridItem) -> bool:
        if self.limit is not None and self.predicted(item) > self.limit * SIZE_MARGIN:
            self.skip(
                item,
                f"predicted size {self.predicted(item) / 1e6:.3f} MB exceeds the {self.limit / 1e6:.3f} MB limit "
                f"({self.basis_text()})",
            )
            return True
        return False

    # ------------------------------------------------------------------ skips from measurements only

    def ranked_dims(self) -> set[str]:
        """The dimensions the goal's objective ranks feasible candidates by."""
        objective = self.objective
        if objective == "size":
            return {"size"}
        if objective == "latency":
            return {"speed"}
        if objective == "accuracy":
            return {"accuracy"}
        dims = {"size", "accuracy"}
        if self.baseline.latency_ms_p50 is not None:
            dims.add("speed")
        return dims

    def _same_graph(self, item: GridItem) -> Candidate | None:
        """The measured candidate with the same graph (another calibration of the same static int8): same size
        and the same operators, so the same speed; only accuracy differs."""
        r = item.recipe
        if not isinstance(r, StaticInt8Recipe) or r.calibration == "minmax":
            return None
        base = r.model_copy(update={"calibration": "minmax"})
        return next((c for c in self.results.values() if c.recipe == base and c.ok and c.metrics), None)

    def ruled_out(self, item: GridItem) -> bool:
        """Skip ``item`` when (and only when) a measurement rules it out, citing it: a size prediction over the
        limit; a measured candidate with the same graph that misses a size or speed limit (its calibration
        cannot change either); or a measured feasible candidate that dominates it on every dimension the goal
        ranks (size known from the prediction, speed only when the graph is the same; accuracy is never assumed,
        so a goal that ranks accuracy skips nothing on it)."""
        if item.id in self.results or item.id in self.skipped:
            return True
        if self.too_big(item):
            return True
        same = self._same_graph(item)
        if same is not None and self.goal is not None:
            misses = [
                x
                for x in check_goal(same, self.goal, self.baseline)
                if x.constraint
                in ("max_size_mb", "max_size_ratio", "max_latency_ms", "min_speedup", "faster_than_original")
            ]
            if misses:
                self.skip(
                    item,
                    f"same graph as the measured {same.id} (only the calibration differs: same size and "
                    f"operators), which misses: {'; '.join(x.text for x in misses)}",
                )
                return True
        for c in sorted(self.results.values(), key=lambda c: c.metrics.size_bytes if c.metrics else 0):
            if not (c.ok and c.metrics and self.feasible(c)):
                continue
            why = self._dominates(c, item, same)
            if why is not None:
                self.skip(item, f"the measured {c.id} meets every limit and {why}")
                return True
        return False

    def _dominates(self, c: Candidate, item: GridItem, same: Candidate | None) -> str | None:
        assert c.metrics is not None
        parts = []
        for dim in sorted(self.ranked_dims()):
            if dim == "size":
                if same is not None and same.metrics is not None:
                    size, basis = (
                        float(same.metrics.size_bytes),
                        f"the measured size of {same.id}, same graph",
                    )
                else:
                    size, basis = self.predicted(item), f"predicted {self.basis_text()}"
                # a selective candidate keeps more in float than its base: strictly larger by construction
                margin = 1.0 if item.family == "selective" or same is not None else 0.98
                if c.metrics.size_bytes <= size * margin:
                    parts.append(
                        f"is {c.metrics.size_bytes / 1e6:.3f} MB against {item.id}'s {size / 1e6:.3f} MB ({basis})"
                    )
                    continue
                return None
            if dim == "speed" and same is not None and same.id == c.id:
                parts.append(f"runs the same operators as {item.id}")
                continue
            return None  # accuracy, or a speed that cannot be known without measuring
        return ", ".join(parts) if parts else None

    def measure_smallest_when_none_succeeded(
        self, items: Sequence[GridItem], cancelled: threading.Event
    ) -> None:
        """Every candidate was predicted to miss (or failed): measure the smallest anyway, so "nearest" has
        real numbers."""
        if cancelled.is_set() or any(c.ok for c in self.results.values()):
            return
        for item in sorted(items, key=self.predicted):
            if item.id not in self.results:
                self.skipped.pop(item.id, None)
                self.run([item])
            if any(c.ok for c in self.results.values()):
                break


def _placement(goal: Goal | None, opts: SweepOptions) -> tuple[float, str | None]:
    """Where trials run: the cluster's GPUs (CUDA provider) unless the goal says CPU; CPU otherwise.

    Raises:
        GoalError: the goal names a GPU and there is none to measure on (never CPU numbers in its place).
    """
    from optimizer.measure.evaluate import available_providers

    wants_gpu = goal is not None and goal.device == "gpu"
    gpus = 0.0
    if opts.executor == "ray" and not (goal is not None and goal.device == "cpu"):
        from optimizer.search.runtime import cluster_gpus

        gpus = cluster_gpus()
    elif opts.executor == "serial" and wants_gpu and CUDA in available_providers():
        gpus = 1.0
    if wants_gpu and not gpus:
        where = "the Ray cluster" if opts.executor == "ray" else "this machine's onnxruntime"
        raise GoalError(
            f"the goal asks for a GPU, and {where} has none to measure on; CPU numbers would not answer it",
            hint="run where a GPU and onnxruntime-gpu are (pip install 'quanttaas[gpu]', or RAY_ADDRESS=<a cluster "
            "with GPU nodes>), or drop the GPU from the goal",
        )
    return gpus, (CUDA if gpus else None)


def finetune_epochs(goal: Goal | None, opts: SweepOptions) -> int:
    """Epochs of fine-tuning after pruning: none when the goal forbids training ("post-training only", "no QAT",
    "no retraining" forbid the method ``qat``), else the options'."""
    if goal is not None and "qat" in (goal.methods_forbidden or []):
        return 0
    return opts.finetune_epochs


def _cpu_slots(executor: str) -> int:
    if executor != "ray":
        return 1
    from optimizer.search.runtime import ensure_ray

    return max(1, int(ensure_ray().cluster_resources().get("CPU", 1.0)))


def _allowed_recipe(recipe: Recipe, goal: Goal | None) -> bool:
    return allowed(Candidate(id="probe", recipe=recipe), goal)


def run_sweep(
    model_path: str | Path,
    data: Dataset,
    *,
    calib: Dataset | None,
    goal: Goal | None,
    out_dir: str | Path,
    options: SweepOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    sensitivity: SensitivityReport | None = None,
    model_name: str | None = None,
    extra_candidates: Sequence[Candidate] = (),
    trial_fn: TrialFn = run_trial,
    torch_source: TorchSource | None = None,
) -> ParetoReport:
    """Search for the candidates that best meet ``goal`` and write them to ``out_dir/candidates``.

    ``extra_candidates`` are finished trials from an earlier, interrupted run: they are kept and not run again.
    ``trial_fn`` replaces the trial function (tests use it to crash a worker on purpose).
    ``torch_source`` is the PyTorch model the ONNX file was exported from; it enables pruning, QAT, INC and
    chains (the pipeline, :func:`optimizer.optimize.optimize`, finds a zoo case's own);
    ``options.torch_recipes=False`` turns them off.

    Raises:
        ModelLoadError / DataError: the model or data is invalid (nothing is run).
        GoalError: the goal excludes every recipe this model allows.
        RecipeError: the model is already quantized (see :func:`refuse_quantized`).
    """
    t0 = time.perf_counter()
    opts = options or SweepOptions()
    cancelled = cancel or threading.Event()
    emit = progress or (lambda e: None)
    out = Path(out_dir)
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    model_path = Path(model_path)
    info = inspect_model(model_path)
    refuse_quantized(model_path, info)

    notes: list[str] = []  # what the report says about how the sweep ran (memory plan, fallbacks, metric)

    # one pre-processed copy serves every trial (and the profile)
    prepared = out / "prepared.onnx"
    try:
        prepare_model(model_path, prepared, min_opset=QDQ_MIN_OPSET, notes=notes)
    except Exception as e:
        log.warning("opset upgrade failed; per-channel static candidates may fail", exc_info=True)
        notes.append(
            f"the model could not be converted to opset {QDQ_MIN_OPSET} ({str(e)[:120]}); per-channel "
            "static candidates retry with per-tensor weights"
        )
        prepare_model(model_path, prepared, notes=notes)

    gpus, provider = _placement(goal, opts)
    setup = measurement_setup(opts, goal, provider)

    base_metrics, reference = evaluate_model(
        model_path,
        data,
        keep_outputs=True,
        as_reference=True,
        threads=setup.threads,
        batch_size=setup.batch_size,
        latency_runs=opts.latency_runs,
        provider=provider,
    )
    base_metrics = base_metrics.model_copy(
        update={"accuracy_drop_pct": 0.0, "compressed_size_bytes": compressed_size_bytes(model_path)}
    )
    emit(
        SweepEvent("baseline", 0, 0, message=f"baseline {base_metrics.metric_name} {base_metrics.metric:.4f}")
    )
    if base_metrics.metric_note:
        notes.append(f"metric {base_metrics.metric_name}: {base_metrics.metric_note}")

    plan = None
    if calib is not None:
        from optimizer.search.memory import activation_bytes_per_sample, plan_memory

        wanted = opts.workers or _cpu_slots(opts.executor)
        plan = plan_memory(
            activation_bytes_per_sample(prepared, calib),
            info.size_bytes,
            calib_samples=min(calib.samples, max(StaticInt8Recipe().calib_samples, calib.samples)),
            workers=wanted,
        )
        notes.append(plan.reason)

    if sensitivity is None and opts.profile and calib is not None:
        try:
            sensitivity = profile_layers(
                prepared, calib, prepared=True, samples=plan.profile_samples if plan else PROFILE_SAMPLES
            )
            emit(SweepEvent("profiled", 0, 0, message=f"profiled {len(sensitivity.layers)} layers"))
        except Exception as e:  # the sweep still has the base recipes without a ranking
            log.warning("profiling failed: %s", e)

    if not opts.torch_recipes:
        torch_source = None
    graph = onnx.load(str(prepared), load_external_data=False)
    keep_float: tuple[str, ...] = ()
    if goal is not None and goal.keep_float_layers:
        keep_float = layer_blocks(graph, edge_layers(graph, goal.keep_float_layers))
    grid_ctx = grid_context(
        info,
        sensitivity,
        has_calib=calib is not None,
        max_selective=opts.max_selective,
        torch_source=torch_source,
        onnx_pruning=goal is not None and goal.asks_for("prune"),
        finetune_epochs=finetune_epochs(goal, opts),
        graph=graph,
        size_limit=size_limit_bytes(goal, base_metrics),
    )
    grid = grid_items(grid_ctx, keep_float)

    def spec(item: GridItem) -> TrialSpec:
        return TrialSpec(
            id=item.id,
            recipe=item.recipe,
            baseline_metric=float(base_metrics.metric or 0.0),
            threads=setup.threads,
            batch_size=setup.batch_size,
            latency_runs=opts.latency_runs,
            provider=provider,
            torch_source=torch_source,
            on_original=item.recipe.kind in ONE_LINER_KINDS,
            calib_cap=plan.calib_samples if plan else None,
        )

    inputs = TrialInputs.for_sweep(
        pack_model(prepared), data, calib, reference, torch_source, original_bytes=pack_model(model_path)
    )
    executor = make_executor(
        opts.executor, inputs, cancelled, plan.workers if plan else opts.workers, gpus, trial_fn
    )
    search = Search(
        grid, goal=goal, baseline=base_metrics, executor=executor, spec=spec, out_dir=out, emit=emit
    )
    search.basis = SizeBasis.of(info)
    search.grid_ctx, search.keep_float = grid_ctx, keep_float
    for c in extra_candidates:
        search.results[c.id] = c
    allowed_items = []
    for item in grid:
        if item.family == "needs_torch":
            search.skipped[item.id] = NEEDS_TORCH_REASON
        elif item.blocked:
            search.skipped[item.id] = item.blocked
        elif not _allowed_recipe(item.recipe, goal):
            search.skipped[item.id] = "excluded by the goal's precision or methods"
        else:
            allowed_items.append(item)
    # a graph rewrite alone (onnxruntime's offline optimization) compresses nothing: it cannot answer a goal
    if not any(registry.recipe_methods(i.recipe) for i in allowed_items):
        raise GoalError(
            "the goal excludes every recipe this model allows",
            hint="allow quantization (int8 fits most models) or drop the precision requirement",
        )

    if opts.exhaustive:
        search.run(allowed_items)
    else:
        _directed_search(search, [i for i in allowed_items if i.family in QUANT_FAMILIES])
        _training_search(search, [i for i in allowed_items if i.family not in QUANT_FAMILIES])
    _fill_front(search, [i for i in allowed_items if i.family in QUANT_FAMILIES], opts, t0, cancelled)
    search.measure_smallest_when_none_succeeded(allowed_items, cancelled)
    if cancelled.is_set():
        for item in allowed_items:
            search.skip(item, "the sweep was cancelled before this candidate ran")

    notes += search.notes
    setup = setup.model_copy(
        update={"trial_latency_runs": opts.latency_runs, "notes": _speed_notes(grid, goal)}
    )
    final = _Finalists(search, grid, model_name or str(model_path), base_metrics, sensitivity, setup)
    for c in extra_candidates:
        final.extra.setdefault(c.id, c)
    report = final.report()
    if not cancelled.is_set():
        report = final.remeasure(model_path, data, opts, provider, emit, cancelled)
    retried = [c.id for c in report.candidates if c.detail.get("memory_retries")]
    if retried:
        notes.append(
            f"{len(retried)} trial(s) were killed for memory and retried alone with fewer calibration samples: "
            + ", ".join(retried)
        )
    fixed = [c.id for c in report.candidates if c.detail.get("workarounds")]
    if fixed:
        notes.append(
            f"{len(fixed)} candidate(s) needed an upstream workaround (see their detail): {', '.join(fixed)}"
        )
    report = report.model_copy(
        update={
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "notes": notes,
            "execution": executor.describe(),
        }
    )
    emit(SweepEvent("finished", report.evaluations, report.evaluations, message=report.reason))
    return report


def refuse_quantized(model_path: Path, info: ModelInspection) -> None:
    """Refuse a model that is already quantized, before anything runs.

    Every technique of the grid compresses a float model: re-quantizing an int8 graph is refused by each of them
    (it would compound the error), pruning reads float weights, and a graph rewrite alone compresses nothing.
    A sweep would only fill its report with failed candidates, so it says why at once.

    Raises:
        RecipeError: ``info`` has quantized operators (``details``: the markers found).
    """
    if not info.quantized:
        return
    markers = ", ".join(f"{op} x{n}" for op, n in info.quantization_markers.items())
    raise RecipeError(
        f"{model_path.name} is already quantized ({markers}): every technique here compresses a float model, "
        "and quantizing it again would compound the error",
        hint="optimize the float model it was made from; `quanttaas evaluate` measures this one as it is",
        details={"quantization_markers": dict(info.quantization_markers)},
    )


def measurement_setup(opts: SweepOptions, goal: Goal | None, provider: str | None = None) -> MeasurementInfo:
    """Threads and batch size every latency of a sweep is measured with: the options', else the goal's, else 1;
    and where each came from."""
    threads, threads_from = 1, "default"
    if opts.threads is not None:
        threads, threads_from = opts.threads, "option"
    elif goal is not None and goal.threads is not None:
        threads, threads_from = goal.threads, "goal"
    batch, batch_from = 1, "default"
    if opts.batch_size is not None:
        batch, batch_from = opts.batch_size, "option"
    elif goal is not None and goal.batch_size is not None:
        batch, batch_from = goal.batch_size, "goal"
    return MeasurementInfo(
        threads=threads,
        batch_size=batch,
        threads_from=threads_from,  # type: ignore[arg-type]
        batch_from=batch_from,  # type: ignore[arg-type]
        provider=provider or CPU,
        speedup_method=SPEEDUP_METHOD,
        memory_method=MEMORY_METHOD,
        cpu=cpu_int8_summary(),
    )


def _speed_notes(grid: Sequence[GridItem], goal: Goal | None) -> list[str]:
    """What the search does about speed on this model and CPU, for the report."""
    notes = []
    if is_speed_goal(goal):
        notes.append(
            "the goal is about speed: static int8 is built as QOperator (QLinearConv/QLinearMatMul) as well as "
            "QDQ, per channel and per tensor; dynamic int8 including Conv, and of MatMul/Gemm only; onnxruntime's "
            "graph optimizations saved offline (each where the model has the ops and the goal's precision and "
            "methods allow it: tried_reasons lists what was built); a candidate counts as faster only when its "
            "side-by-side speed-up interval is above 1.0x"
        )
    else:
        notes.append(
            "the goal does not mention speed: the speed formats (QOperator, offline graph optimization) are built "
            "unless a measured candidate rules them out; among equals the one not slower than the original is "
            "preferred"
        )
    notes.append(
        "reduce_range (7-bit weights) is on for static int8: this CPU lacks VNNI"
        if int8_saturates()
        else "reduce_range is off: this CPU has VNNI (or is not x86), so full 8-bit weights cannot saturate"
    )
    if any(i.recipe.kind == "fp16" for i in grid):
        notes.append(
            "fp16 is measured like any candidate; on CPU it runs through casts on most kernels, and it counts "
            "as faster only where its interval says so"
        )
    return notes


ONE_LINER_KINDS = frozenset({"ort_dynamic_default", "ort_static_default"})


def _directed_search(search: Search, items: list[GridItem]) -> None:
    """Steps 2-3 of the search: the anchors (the one-liners always), then every other candidate unless a
    measurement rules it out (:meth:`Search.ruled_out`): a measured candidate that dominates it on every
    dimension the goal has, a measured candidate with the same graph that misses a size or speed limit, or a
    size prediction over the limit. When full int8 misses the accuracy limit, selective candidates are searched
    by a bisection over k (keeping more layers in float is monotone: :mod:`optimizer.techniques.quantize` keeps
    a kept layer's inputs and outputs in float, so k+1 is never worse than k beyond noise)."""
    run, skip = search.run, search.skip
    fam: dict[str, list[GridItem]] = {}
    for it in items:
        fam.setdefault(it.family, []).append(it)
    anchors = fam.get("anchor", [])
    one_liners = [i for i in anchors if i.recipe.kind in ONE_LINER_KINDS]
    # the one-liners are never skipped: no answer may be worse than what onnxruntime's defaults give by hand
    run(one_liners + [i for i in anchors if i not in one_liners and not search.too_big(i)])

    full = next((i for i in anchors if i.recipe == StaticInt8Recipe()), None)
    full_c = search.results.get(full.id) if full else None
    if full and full_c and full_c.ok and full_c.metrics:
        search.scale = full_c.metrics.size_bytes / max(full.predicted_size, 1.0)
        search.scale_basis = full_c.id

    # other calibrations, per-tensor and dynamic Conv: run unless a measurement rules them out
    stage = fam.get("calibration", []) + fam.get("per_tensor", []) + fam.get("dynamic_conv", [])
    run([it for it in stage if not search.ruled_out(it)])

    selective = sorted(fam.get("selective", []), key=lambda i: i.k)
    # the formats that are fast on the target, for goals about speed
    _speed_search(search, fam.get("speed", []), anchors)

    drop_limit = search.drop_limit
    full_drop = full_c.metrics.accuracy_drop_pct if full_c and full_c.ok and full_c.metrics else None
    # full int8 (measured, or failed) misses the accuracy limit: search the selective curve by bisection; other
    # feasible candidates still rule out what they dominate
    needs_repair = (
        drop_limit is not None and full is not None and (full_drop is None or full_drop > drop_limit)
    )
    cands = [i for i in selective if not search.ruled_out(i)]
    if not needs_repair or drop_limit is None or not cands:
        run(cands)
        return
    # accuracy repair: a bisection over k for the smallest selective candidate that meets the drop limit
    lo, hi = 0, len(cands) - 1
    best: int | None = None
    misses: list[int] = []
    width = max(1, getattr(search.executor, "slots", 1))
    while lo <= hi:
        span = hi - lo + 1
        probes = sorted({lo + (span * (j + 1)) // (width + 1) for j in range(min(width, span))})
        run([cands[p] for p in probes])
        ok = [p for p in probes if _meets_drop(search.results.get(cands[p].id), drop_limit)]
        misses += [p for p in probes if p not in ok and _measured(search.results.get(cands[p].id))]
        if ok:
            best = min(ok) if best is None else min(best, min(ok))
            hi = min(ok) - 1
            lo = max([p for p in probes if p < min(ok)], default=lo - 1) + 1
        else:
            lo = max(probes) + 1
    violation = _monotone_violation(search, cands)
    if violation:
        search.notes.append(violation)
    for i, it in enumerate(cands):
        if it.id in search.results or search.ruled_out(it):
            continue
        below = [m for m in misses if m > i]
        if below and (best is None or i < best) and not violation:
            m = min(below)
            c = search.results[cands[m].id]
            drop = c.metrics.accuracy_drop_pct if c.metrics else None
            skip(
                it,
                f"keeps fewer layers in float than the measured {c.id}, whose drop {drop:.2f} pt already "
                f"misses the {drop_limit:g} pt limit (keeping more in float is monotone: see the module doc)",
            )
    # what remains above the smallest feasible k runs unless a measured candidate rules it out
    run([it for it in cands if it.id not in search.results and it.id not in search.skipped])


def noise_points(samples: int) -> float:
    """What two samples of a 0-1 metric are worth in points: differences within this are noise."""
    return 200.0 / max(samples, 1)


def _monotone_violation(search: Search, cands: list[GridItem]) -> str | None:
    """A note when a measured selective candidate that keeps more layers in float lost more than one that keeps
    fewer, beyond noise: the bisection's conclusions would be wrong, so nothing is skipped on them."""
    measured = [(i, search.results[c.id]) for i, c in enumerate(cands) if _measured(search.results.get(c.id))]
    noise = noise_points(search.baseline.samples)
    for a, ca in measured:
        for b, cb in measured:
            da = ca.metrics.accuracy_drop_pct if ca.metrics else None
            db = cb.metrics.accuracy_drop_pct if cb.metrics else None
            if a < b and da is not None and db is not None and db > da + noise:
                return (
                    f"keeping more layers in float was worse: {cb.id} lost {db:.2f} pt, {ca.id} {da:.2f} pt "
                    f"(noise {noise:.2f} pt); the selective candidates between them were run, not inferred"
                )
    return None


def _measured(c: Candidate | None) -> bool:
    return c is not None and c.ok and c.metrics is not None and c.metrics.accuracy_drop_pct is not None


def _meets_drop(c: Candidate | None, limit: float) -> bool:
    return (
        _measured(c)
        and c is not None
        and c.metrics is not None
        and (c.metrics.accuracy_drop_pct or 0) <= limit
    )


def _speed_search(search: Search, items: list[GridItem], anchors: list[GridItem]) -> None:
    """For a goal about speed: the formats that are fast on CPU (QOperator static int8, dynamic MatMul-only,
    offline graph optimization), then, when dynamic int8 loses more than the accuracy limit allows, dynamic int8
    with its most sensitive MatMul layers kept in float (smallest k first, up to the first that meets it).
    A goal that does not rank speed gets them too unless a measurement rules them out (:meth:`Search.ruled_out`):
    another file format of the same int8 differs in size and, slightly, in accuracy."""
    if not items:
        return
    plain = [i for i in items if i.k == 0]
    keep_k = sorted((i for i in items if i.k > 0), key=lambda i: i.k)
    speed_goal = is_speed_goal(search.goal)
    if not speed_goal:
        # a goal that does not rank speed still gets them unless a measurement rules them out (skips only from
        # measurements): another file format of the same int8 can differ in size and accuracy
        plain = [i for i in plain if not search.ruled_out(i)]
    why = {
        "static_int8": "static int8 written as QOperator (QLinearConv/QLinearMatMul): on CPU often much faster "
        "than the same calibration as QDQ",
        "dynamic_int8": "dynamic int8 of MatMul/Gemm only: the embedding tables stay float",
        "ort_optimized": "onnxruntime's graph optimizations saved offline (fused ops, same numbers): the session "
        "options that go with it are in the candidate's steps",
    }
    for it in plain:
        if not search.too_big(it):
            search.run([it], why=why.get(it.recipe.kind, FAMILY_WHY["speed"]))
    dyn = next((i for i in anchors if isinstance(i.recipe, DynamicInt8Recipe)), None)
    dyn_c = search.results.get(dyn.id) if dyn else None
    limit = search.drop_limit
    dyn_drop = dyn_c.metrics.accuracy_drop_pct if dyn_c and dyn_c.ok and dyn_c.metrics else None
    if dyn_c is not None and limit is not None and dyn_drop is not None and dyn_drop <= limit:
        for it in keep_k:
            if not search.ruled_out(it):
                search.skip(
                    it,
                    f"the measured {dyn_c.id} (dynamic int8, every MatMul) already meets the accuracy limit with "
                    f"{dyn_drop:.2f} pt; keeping MatMul layers in float only makes it larger and slower",
                )
        return
    if limit is None or dyn_drop is None:
        # nothing measured says dynamic int8 loses too much: these run unless a measurement rules them out
        search.run([it for it in keep_k if not search.ruled_out(it)])
        return
    for n, it in enumerate(keep_k):
        if search.too_big(it):
            continue
        search.run(
            [it],
            why=f"dynamic int8 lost {dyn_drop:.2f} pt, over the {limit:g} pt limit: the {it.k} most sensitive "
            "MatMul/Gemm layers kept in float",
        )
        c = search.results.get(it.id)
        drop = c.metrics.accuracy_drop_pct if c and c.ok and c.metrics else None
        if drop is not None and drop <= limit:
            for rest in keep_k[n + 1 :]:
                search.skip(
                    rest,
                    f"{it.id} keeps fewer layers in float and meets the accuracy limit: larger by construction",
                )
            return


#: the order in which extra points across the front are measured: the one-liners, then the int8 variants
_FRONT_ORDER = {"anchor": 0, "per_tensor": 1, "dynamic_conv": 1, "selective": 2, "calibration": 3}


def _spread(items: list[GridItem], n: int) -> list[GridItem]:
    """``n`` items spread evenly over ``items`` (first and last included)."""
    if n >= len(items):
        return list(items)
    if n <= 1:
        return items[:n]
    return [items[round(j * (len(items) - 1) / (n - 1))] for j in range(n)]


def _fill_front(
    search: Search, items: list[GridItem], opts: SweepOptions, t0: float, cancelled: threading.Event
) -> None:
    """Measure quantization candidates the directed search left out until ``opts.front_points`` are measured
    (size, accuracy and balanced goals only; a latency goal keeps its own search), while the sweep has run less
    than ``opts.time_budget_s``. The one-liners come first, then per-tensor and dynamic int8, a few selective
    points spread over k, and the other calibrations. What the budget leaves out says so in its reason."""
    if opts.front_points <= 0 or search.objective == "latency" or cancelled.is_set():
        return
    left = [i for i in items if i.id not in search.results]
    selective = sorted((i for i in left if i.family == "selective"), key=lambda i: i.k)
    picks = [i for i in left if i.family != "selective"] + _spread(selective, 3)
    picks.sort(key=lambda i: _FRONT_ORDER.get(i.family, 9))
    width = max(1, getattr(search.executor, "slots", 1))
    budget = opts.time_budget_s
    while picks and not cancelled.is_set():
        measured = sum(1 for c in search.results.values() if c.ok)
        if measured >= opts.front_points:
            return
        if budget is not None and time.perf_counter() - t0 >= budget:
            for it in picks:
                old = search.skipped.get(it.id, "")
                search.skipped[it.id] = f"left out by the sweep's {budget:g} s time budget" + (
                    f" ({old})" if old else ""
                )
            return
        n = min(width, opts.front_points - measured)
        batch, picks = picks[:n], picks[n:]
        for it in batch:
            search.skipped.pop(it.id, None)
        search.run(batch)


def _training_search(search: Search, items: list[GridItem]) -> None:
    """Steps 5 and 6 of the search: QAT/INC as accuracy repairs, pruning and chains when asked for or needed.

    A measured candidate that rules an item out (:meth:`Search.ruled_out`) skips it as everywhere else. Beyond
    that, these recipes cost seconds of training each, so they also wait while a measured candidate already
    meets every limit: the reason names that candidate and its numbers."""
    if not items:
        return
    state, run, skip, goal = search, search.run, search.skip, search.goal
    has_limits = bool(goal and goal.has_constraints)
    drop_limit = search.drop_limit
    asks_prune = goal is not None and goal.asks_for("prune")
    asks_qat = goal is not None and goal.asks_for("qat")

    def feasible_one() -> Candidate | None:
        # a goal without limits: every measured candidate meets it
        ok = [c for c in state.results.values() if state.feasible(c) and c.metrics]
        return min(ok, key=lambda c: c.metrics.size_bytes if c.metrics else 0) if ok else None

    def cited(c: Candidate) -> str:
        m = c.metrics
        assert m is not None
        drop = f", drop {m.accuracy_drop_pct:.2f} pt" if m.accuracy_drop_pct is not None else ""
        what = "every limit" if has_limits else "the goal, which sets no limit"
        return f"the measured {c.id} already meets {what} ({m.size_bytes / 1e6:.3f} MB{drop})"

    anchors = {i.id for i in state.grid if i.family == "anchor" and isinstance(i.recipe, StaticInt8Recipe)}
    full = next((c for c in state.results.values() if c.id in anchors and c.ok), None)
    full_drop = full.metrics.accuracy_drop_pct if full is not None and full.metrics is not None else None
    int8_misses = drop_limit is not None and (full_drop is None or full_drop > drop_limit)

    # post-training recovery (equalization, bias correction, learned rounding, 16-bit activations, layers a
    # size budget affords in higher precision) first: no training, about the int8 size
    recovery = _replan_budgeted(search, [i for i in items if i.family == "recovery"], full)
    repairs = recovery + [i for i in items if i.family in ("qat", "inc")]
    fit = feasible_one()
    # a goal that ranks accuracy: a measured candidate that meets the limits but loses points does not dominate a
    # recovery that may lose fewer at the int8 size, so the post-training recoveries run (training ones wait)
    best = _most_accurate_feasible(state) if goal is not None and goal.objective == "accuracy" else None
    # (not a noise band: for a continuous metric such as cosine fidelity over a few samples, a count-based band
    # would swallow drops of several points that a recovery removes)
    best_drop = best.metrics.accuracy_drop_pct if best is not None and best.metrics is not None else None
    if int8_misses or fit is None:
        run([i for i in repairs if not state.ruled_out(i)])
    elif best is not None and best_drop is not None and best_drop <= 0.0:
        for it in repairs:
            if not state.ruled_out(it):
                skip(
                    it,
                    f"the measured {best.id} meets every limit and loses nothing ({best_drop:+.2f} pt): "
                    "no recovery can be more accurate",
                )
    elif best is not None:
        run([i for i in recovery if not state.ruled_out(i)])
        for it in repairs:
            if it.family != "recovery" and not state.ruled_out(it):
                skip(
                    it,
                    f"{cited(fit)}; training repairs (QAT, INC autotune) run when post-training int8 loses "
                    "too much",
                )
    elif asks_qat:
        # asked for by name: QAT runs; INC autotune stays an accuracy repair
        run([i for i in repairs if i.family == "qat" and not state.ruled_out(i)])
        for it in repairs:
            if it.family != "qat" and not state.ruled_out(it):
                what = (
                    "INC autotune (seconds of training)" if it.family == "inc" else "this accuracy recovery"
                )
                skip(it, f"{cited(fit)}; {what} runs when post-training int8 loses too much")
    else:
        for it in repairs:
            if not state.ruled_out(it):
                skip(
                    it,
                    f"{cited(fit)}; the accuracy recoveries (equalization, bias correction, learned rounding, "
                    "16-bit activations, QAT, INC autotune) run when it does not",
                )

    pruning = [i for i in items if i.family in ("prune", "prune_onnx", "chain")]
    fit = feasible_one()
    if asks_prune or fit is None:
        run([i for i in pruning if not state.ruled_out(i)])
        _pruning_search(search, pruning)
    else:
        for it in pruning:
            if not state.ruled_out(it):
                skip(
                    it,
                    f"{cited(fit)}; pruning (seconds of training) runs when the goal asks for it or no measured "
                    "candidate meets the goal",
                )


def _most_accurate_feasible(search: Search) -> Candidate | None:
    """The most accurate measured candidate that meets the goal (the one a recovery has to beat)."""
    ok = [
        c
        for c in search.results.values()
        if search.feasible(c) and c.metrics is not None and c.metrics.accuracy_drop_pct is not None
    ]
    return min(ok, key=lambda c: (c.metrics.accuracy_drop_pct or 0.0) if c.metrics else 0.0) if ok else None


def _replan_budgeted(search: Search, items: list[GridItem], full: Candidate | None) -> list[GridItem]:
    """The recovery items with those chosen under the goal's size budget re-planned from the measured size of
    full int8 (the grid planned them from its prediction, which misses the file's quantization parameters): an
    item whose choice changes is skipped, saying why, and the new choice is added in its place."""
    ctx = search.grid_ctx
    if (
        ctx is None
        or ctx.size_limit_bytes is None
        or full is None
        or full.metrics is None
        or not any(i.budgeted for i in items)
    ):
        return items
    measured = float(full.metrics.size_bytes)
    fresh = [
        i
        for i in grid_items(replace(ctx, int8_size_bytes=measured), search.keep_float, len(search.grid))
        if i.budgeted and i.family == "recovery" and not i.blocked and _allowed_recipe(i.recipe, search.goal)
    ]
    out = [i for i in items if not i.budgeted]
    for new in fresh:
        same = next((i for i in items if i.budgeted and i.recipe == new.recipe), None)
        if same is not None:
            same.why = new.why  # the same layers, now said with the budget from the measured size
            out.append(same)
            continue
        item = search.add(new.recipe, new.family)
        item.why, item.budgeted, item.k = new.why, True, new.k
        out.append(item)
    for old in items:
        if old.budgeted and old not in out:
            search.skip(
                old,
                f"planned from the predicted full int8 size; re-planned from the measured {full.id} "
                f"({measured / 1e6:.3f} MB), which chose other layers",
            )
    return out


#: the step of the pruning amounts the search tries (fractions of the parameters)
PRUNE_AMOUNT_STEP = 0.05
#: the most fine-tune epochs the pruning search gives one candidate
MAX_FINETUNE_EPOCHS = 8
#: the most trials the pruning search adds to the grid
PRUNE_SEARCH_TRIALS = 5


def _pruning_search(search: Search, items: list[GridItem]) -> None:
    """Search channel pruning toward the goal's limits, like the bisection over the selective k, when the grid's
    pruning amounts left no candidate meeting the goal.

    It starts at the least pruning predicted to fit the size limit (a 5% grid of amounts, below any amount that
    already lost too much accuracy; sizes interpolated between the original and the measured pruned files, since
    channel rounding makes size far from linear in the amount). A candidate that misses the size limit moves to
    the next amount; one that misses the accuracy limit gets twice, then four times the fine-tune epochs (when the
    PyTorch source has training data, at most MAX_FINETUNE_EPOCHS). Stops at the first candidate that meets the
    goal, at a miss it cannot repair, or after PRUNE_SEARCH_TRIALS trials."""
    drop_limit = search.drop_limit
    if drop_limit is None or search.any_feasible():
        return
    measured = [
        (it.recipe, c.metrics)
        for it in items
        # sizes are interpolated along one allocation (an allocated amount lands at another size)
        if isinstance(it.recipe, PruneChannelsRecipe)
        and it.recipe.allocation == "uniform"
        and (c := search.results.get(it.id)) is not None
        and c.ok
        and c.metrics is not None
        and c.metrics.accuracy_drop_pct is not None
    ]
    if not measured:
        return
    template = measured[0][0]
    points = sorted(
        {
            0.0: float(search.baseline.size_bytes),
            **{r.amount: float(m.size_bytes) for r, m in measured},
        }.items()
    )

    def predicted(amount: float) -> float:
        # piecewise linear between the measured points, flat beyond the last
        for (a0, s0), (a1, s1) in itertools.pairwise(points):
            if amount <= a1:
                return s0 + (s1 - s0) * (amount - a0) / max(a1 - a0, 1e-12)
        return points[-1][1]

    too_lossy = [r.amount for r, m in measured if (m.accuracy_drop_pct or 0.0) > drop_limit]
    upper = min(too_lossy, default=1.0)
    steps = round(1.0 / PRUNE_AMOUNT_STEP)
    amounts = [
        round(i * PRUNE_AMOUNT_STEP, 2) for i in range(1, steps) if i * PRUNE_AMOUNT_STEP < upper - 1e-9
    ]
    fitting = [a for a in amounts if search.limit is None or predicted(a) <= search.limit]
    if not fitting:
        return
    epochs = [template.finetune_epochs]
    if template.finetune_epochs > 0:  # the source has training data: more fine-tuning is in reach
        epochs += [
            e
            for e in (2 * template.finetune_epochs, 4 * template.finetune_epochs)
            if e <= MAX_FINETUNE_EPOCHS
        ]
    a_i, e_i = amounts.index(fitting[0]), 0
    for _ in range(PRUNE_SEARCH_TRIALS):
        recipe = PruneChannelsRecipe(
            **{**template.model_dump(), "amount": amounts[a_i], "finetune_epochs": epochs[e_i]}
        )
        if recipe in [c.recipe for c in search.results.values()]:
            return
        item = search.add(recipe, "prune")
        search.run([item])
        c = search.results.get(item.id)
        if c is None or not c.ok or c.metrics is None or search.feasible(c):
            return
        if search.limit is not None and c.metrics.size_bytes > search.limit:
            a_i += 1  # more pruning, same fine-tune
            if a_i >= len(amounts):
                return
        elif (c.metrics.accuracy_drop_pct or 0.0) > drop_limit:
            e_i += 1  # same amount, longer fine-tune
            if e_i >= len(epochs):
                return
        else:
            return  # it misses another limit (latency): pruning more or training longer does not answer that


#: the goal checks the side-by-side re-measurement decides
SPEED_CONSTRAINTS = frozenset({"faster_than_original", "min_speedup", "max_latency_ms"})
ORIGINAL = "__original__"


class _Finalists:
    """The end of a sweep: the report from what was measured, and the finalists re-measured side by side.

    Finalists are the front and the recommendation, and for a goal about speed every candidate that meets the
    goal's other limits (the side-by-side interval decides its speed). They are re-measured alone (after the
    executor is idle) and interleaved with the original (:mod:`optimizer.measure.speed`); their p50/p95 are
    replaced (the trial's p50 is kept in ``detail``) and each gets its :class:`~optimizer.types.SpeedComparison`.
    A new recommendation that was not re-measured is measured in a further round (at most three in all).
    """

    def __init__(
        self,
        search: Search,
        grid: list[GridItem],
        model: str,
        baseline: Metrics,
        sensitivity: SensitivityReport | None,
        setup: MeasurementInfo,
    ):
        self.search = search
        self.grid = grid
        self.model = model
        self.baseline = baseline
        self.sensitivity = sensitivity
        self.setup = setup
        self.extra: dict[str, Candidate] = {}
        self.added: list[GridItem] = []  # built after the search (a format repair)
        self.measured: list[str] = []
        self.blocks = 0
        self.runs_per_block = 0

    def candidates(self) -> list[Candidate]:
        results = self.search.results
        ids = [i.id for i in [*self.grid, *self.added]]
        out = [results[i] for i in ids if i in results]
        return out + [results.get(k, c) for k, c in self.extra.items() if k not in ids]

    def report(self) -> ParetoReport:
        cands = self.candidates()
        setup = self.setup.model_copy(
            update={
                "remeasured": list(self.measured),
                "blocks": self.blocks,
                "runs_per_block": self.runs_per_block,
            }
        )
        return build_report(
            self.model,
            self.baseline,
            cands,
            self.search.goal,
            evaluations=len(cands),
            grid_size=len(self.grid) + len(self.added),
            skipped=list(self.search.skipped),
            skipped_reasons=self.search.skipped,
            sensitivity=self.sensitivity,
            measurement=setup,
            tried_reasons=self.search.tried,
        )

    def wanted(self, report: ParetoReport) -> list[str]:
        """The candidates to re-measure next: successful, with a file, not yet re-measured."""
        ok = {
            c.id: c
            for c in report.candidates
            if c.ok and c.model_path and c.metrics is not None and Path(c.model_path).is_file()
        }
        ids = [report.recommended] if report.recommended else []
        goal = self.search.goal
        if is_speed_goal(goal):
            # what misses nothing but speed: only the side-by-side interval can decide it
            near = [
                c
                for c in ok.values()
                if all(m.constraint in SPEED_CONSTRAINTS for m in report.misses.get(c.id, []))
            ]
            near.sort(key=lambda c: (c.metrics.latency_ms_p50 or float("inf")) if c.metrics else float("inf"))
            ids += [c.id for c in near]
        elif report.recommended:
            best = ok.get(report.recommended)
            if best is not None and best.metrics is not None:
                size = best.metrics.size_bytes
                ids += [
                    c.id
                    for c in ok.values()
                    if c.metrics is not None and abs(c.metrics.size_bytes - size) <= 0.02 * max(size, 1)
                ]
        ids += report.front
        ids += [n.candidate_id for n in report.nearest]
        return [i for i in dict.fromkeys(ids) if i in ok and i not in self.measured][:MAX_FINALISTS]

    def remeasure(
        self,
        model_path: Path,
        data: Dataset,
        opts: SweepOptions,
        provider: str | None,
        emit: ProgressFn,
        cancelled: threading.Event,
    ) -> ParetoReport:
        report = self.report()
        repaired = False
        for _ in range(4):
            todo = self.wanted(report)
            if not todo:
                if repaired or not self.repair(report):
                    break
                repaired = True
                report = self.report()
                continue
            if cancelled.is_set():
                break
            self.search.executor.wait_idle()
            try:
                self.measure(todo, report, model_path, data, opts, provider)
            except QuantTaaSError as e:  # the trial numbers stand; the report lists what was re-measured
                log.warning("re-measuring the finalists side by side failed: %s", e)
                break
            emit(
                SweepEvent(
                    "remeasured",
                    report.evaluations,
                    report.evaluations,
                    message=f"re-measured {len(todo)} finalists side by side with the original "
                    f"({self.blocks} interleaved blocks of {self.runs_per_block} runs)",
                )
            )
            report = self.report()
        return report

    def measure(
        self,
        ids: list[str],
        report: ParetoReport,
        model_path: Path,
        data: Dataset,
        opts: SweepOptions,
        provider: str | None,
    ) -> None:
        by_id = {c.id: c for c in report.candidates}
        paths = {ORIGINAL: str(model_path), **{i: str(by_id[i].model_path) for i in ids}}
        # a slow model gets fewer runs per block (never fewer than 3 blocks of 2), so a round stays in budget
        trial_ms = [m.latency_ms_p50 or 1.0 if (m := by_id[i].metrics) is not None else 1.0 for i in ids]
        per_run_ms = sum(trial_ms) + (self.baseline.latency_ms_p50 or 1.0)
        affordable = int(opts.remeasure_budget_s * 1000.0 / max(per_run_ms, 1e-3))
        blocks, per_block = block_counts(max(6, min(opts.remeasure_runs, affordable)), opts.remeasure_blocks)
        times = measure_side_by_side(
            paths,
            data,
            threads=self.setup.threads,
            batch_size=self.setup.batch_size,
            provider=provider,
            blocks=blocks,
            runs_per_block=per_block,
            warmup=2,
        )
        speed = speedups(times, ORIGINAL)
        if not self.measured:  # the report's original: its numbers from the first side-by-side round
            self.baseline = self.baseline.model_copy(
                update={"latency_ms_p50": times[ORIGINAL].p50, "latency_ms_p95": times[ORIGINAL].p95}
            )
            self.blocks, self.runs_per_block = blocks, per_block
        for i in ids:
            c = self.search.results.get(i) or self.extra[i]
            if c.metrics is None:
                continue
            detail = {
                **c.detail,
                "trial_latency_ms_p50": c.metrics.latency_ms_p50,
                "latency_remeasured": True,
            }
            metrics = c.metrics.model_copy(
                update={
                    "latency_ms_p50": times[i].p50,
                    "latency_ms_p95": times[i].p95,
                    "latency_runs": len(times[i].all),
                }
            )
            updated = c.model_copy(update={"metrics": metrics, "detail": detail, "speed": speed[i]})
            if i in self.search.results:
                self.search.results[i] = updated
            else:
                self.extra[i] = updated
        self.measured += ids

    def repair(self, report: ParetoReport) -> bool:
        """A goal that does not mention speed got a static int8 QDQ model measured slower than the original:
        build its QOperator sibling (same calibration, same layers in float) so the recommendation can prefer it
        among equals. True when something new was built."""
        if is_speed_goal(self.search.goal) or not report.recommended:
            return False
        c = report.candidate(report.recommended)
        if c.speed is None or c.speed.verdict != "slower" or c.metrics is None:
            return False
        if not isinstance(c.recipe, StaticInt8Recipe) or c.recipe.quant_format != "qdq":
            return False
        sibling = c.recipe.model_copy(update={"quant_format": "qoperator"})
        item = next((i for i in [*self.grid, *self.added] if i.recipe == sibling), None)
        if item is None:
            item = GridItem(
                candidate_id(len(self.grid) + len(self.added), sibling),
                sibling,
                "speed",
                float(c.metrics.size_bytes),
            )
            self.added.append(item)
        if item.id in self.search.results:
            return False
        self.search.skipped.pop(item.id, None)
        self.search.run(
            [item],
            why=f"{c.id} (static int8 QDQ) measured slower than the original: its QOperator sibling, same "
            "calibration, was built to compare",
        )
        return item.id in self.search.results
