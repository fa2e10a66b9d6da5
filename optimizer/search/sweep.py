"""A goal-directed sweep of candidate recipes, run as parallel trials on Ray (or serially in-process).

The search space (the *grid*) holds the base recipes (static int8 per-channel/per-tensor with three calibration
methods, dynamic int8, fp16, int4 weight-only) and *selective* variants that keep the k most sensitive layers in
fp32. The sweep does not walk the whole grid:

1. a candidate whose predicted size already breaks the size limit, or that the goal's precision/methods exclude,
   is skipped before it is built (sizes are predictable from the parameter counts, and the prediction is
   re-scaled by the first measured int8 size);
2. the anchors (the cheapest recipe of each kind) run first;
3. only when the smallest static int8 misses the accuracy limit are the accuracy repairs run: the other
   calibration methods, and a parallel bisection over k for the smallest selective candidate that meets it
   (keeping more layers in fp32 makes a candidate larger by construction, so a larger k than a feasible one
   cannot win on size);
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

Pruning, quantization-aware training and chains join the grid when the model has a PyTorch source (a
:class:`~optimizer.types.TorchSource`; the zoo's digits-cnn has one): channel pruning (30% and 50% of the
parameters), magnitude pruning (50%), QAT, neural-compressor's autotune, and chains of pruning then int8 (when
the goal allows both methods; ``methods_forbidden`` drops them like any recipe). Each costs seconds of training
and export, so the directed search runs them only when they can answer the goal:

5. QAT and INC autotune run when post-training int8 misses the accuracy limit (the case they exist for), or when
   no candidate is feasible yet;
6. pruning and chains run when the goal asks for pruning (:meth:`Goal.asks_for`), or when quantization
   alone meets no goal with limits; a candidate predicted to break the size limit is skipped as usual.

An ONNX-only model gets magnitude pruning of its initializers only, and only when the goal asks for pruning; the
report states the limits (the dense file and its latency do not shrink, only the compressed size; structured
pruning and QAT need the PyTorch model).

Every skipped candidate is kept in the report with the reason; ``evaluations`` counts what was really built.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx
from pydantic import Field

from optimizer.errors import GoalError, QuantTaaSError
from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import CPU, CUDA, evaluate_model
from optimizer.measure.hardware import cpu_int8_summary, int8_saturates
from optimizer.measure.memory import MEMORY_METHOD
from optimizer.measure.speed import SPEEDUP_METHOD, block_counts, measure_side_by_side, speedups
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.executors import Executor, Shared, TrialFn, make_executor
from optimizer.search.pareto import (
    MeasurementInfo,
    ParetoReport,
    allowed,
    build_report,
    check_goal,
    is_speed_goal,
    size_limit_bytes,
)
from optimizer.search.profile import profile_layers
from optimizer.search.trial import TrialSpec, run_trial
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
    Recipe,
    SensitivityReport,
    StaticInt8Recipe,
    TorchSource,
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
    """
    ctx = GridContext(
        info=info,
        sensitivity=sensitivity,
        has_calib=has_calib,
        torch_source=torch_source,
        asks_pruning=onnx_pruning,
        finetune_epochs=finetune_epochs,
        max_selective=max_selective,
        graph=graph,
    )
    basis = SizeBasis.of(info)
    items: list[GridItem] = []
    for p in registry.propose_all(ctx):
        rid = candidate_id(len(items), p.recipe)
        items.append(GridItem(rid, p.recipe, p.family, registry.predict_size(p.recipe, basis), p.k))
    return items


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
        self.limit = size_limit_bytes(goal, baseline)

    # ------------------------------------------------------------------ facts about the goal and the results

    @property
    def objective(self) -> str:
        return self.goal.objective if self.goal else "balanced"

    @property
    def has_limits(self) -> bool:
        return bool(self.goal and self.goal.has_constraints)

    @property
    def drop_limit(self) -> float | None:
        return self.goal.max_accuracy_drop_pct if self.goal else None

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
            self.tried.setdefault(i.id, why or FAMILY_WHY.get(i.family, i.family))
        for cand, blob in self.executor.run([self._spec(i) for i in todo]):
            if blob is not None:
                path = self.out_dir / "candidates" / f"{cand.id}.onnx"
                path.write_bytes(blob)
                cand = cand.model_copy(update={"model_path": str(path)})
            self.results[cand.id] = cand
            self.emit(SweepEvent("trial", len(self.results), self.planned(), cand))

    def skip(self, item: GridItem, reason: str) -> None:
        if item.id not in self.results and item.id not in self.skipped:
            self.skipped[item.id] = reason
            self.emit(
                SweepEvent("skipped", len(self.results), self.planned(), message=f"{item.id}: {reason}")
            )

    def too_big(self, item: GridItem) -> bool:
        if self.limit is not None and self.predicted(item) > self.limit * SIZE_MARGIN:
            self.skip(
                item,
                f"predicted size {self.predicted(item) / 1e6:.3f} MB exceeds the {self.limit / 1e6:.3f} MB limit",
            )
            return True
        return False

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
    """
    t0 = time.perf_counter()
    opts = options or SweepOptions()
    cancelled = cancel or threading.Event()
    emit = progress or (lambda e: None)
    out = Path(out_dir)
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    model_path = Path(model_path)
    info = inspect_model(model_path)

    # one pre-processed copy serves every trial (and the profile)
    prepared = out / "prepared.onnx"
    try:
        prepare_model(model_path, prepared, min_opset=QDQ_MIN_OPSET)
    except Exception:
        log.warning("opset upgrade failed; per-channel static candidates may fail", exc_info=True)
        prepare_model(model_path, prepared)

    gpus = 0.0
    if opts.executor == "ray" and (goal is None or goal.device != "cpu"):
        from optimizer.search.runtime import cluster_gpus

        gpus = cluster_gpus()
    provider = CUDA if gpus else None
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

    if sensitivity is None and opts.profile and calib is not None:
        try:
            sensitivity = profile_layers(prepared, calib, prepared=True)
            emit(SweepEvent("profiled", 0, 0, message=f"profiled {len(sensitivity.layers)} layers"))
        except Exception as e:  # the sweep still has the base recipes without a ranking
            log.warning("profiling failed: %s", e)

    if not opts.torch_recipes:
        torch_source = None
    grid = build_grid(
        info,
        sensitivity,
        has_calib=calib is not None,
        max_selective=opts.max_selective,
        torch_source=torch_source,
        onnx_pruning=goal is not None and goal.asks_for("prune"),
        finetune_epochs=opts.finetune_epochs,
        graph=onnx.load(str(prepared), load_external_data=False),
    )

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
        )

    executor = make_executor(
        opts.executor,
        Shared(prepared.read_bytes(), data, calib, reference),
        cancelled,
        opts.workers,
        gpus,
        trial_fn,
    )
    search = Search(
        grid, goal=goal, baseline=base_metrics, executor=executor, spec=spec, out_dir=out, emit=emit
    )
    for c in extra_candidates:
        search.results[c.id] = c
    allowed_items = []
    for item in grid:
        if item.family == "needs_torch":
            search.skipped[item.id] = NEEDS_TORCH_REASON
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
    search.measure_smallest_when_none_succeeded(allowed_items, cancelled)
    if cancelled.is_set():
        for item in allowed_items:
            search.skip(item, "the sweep was cancelled before this candidate ran")

    setup = setup.model_copy(
        update={"trial_latency_runs": opts.latency_runs, "notes": _speed_notes(grid, goal)}
    )
    final = _Finalists(search, grid, model_name or str(model_path), base_metrics, sensitivity, setup)
    for c in extra_candidates:
        final.extra.setdefault(c.id, c)
    report = final.report()
    if not cancelled.is_set():
        report = final.remeasure(model_path, data, opts, provider, emit, cancelled)
    report = report.model_copy(update={"wall_seconds": round(time.perf_counter() - t0, 3)})
    emit(SweepEvent("finished", report.evaluations, report.evaluations, message=report.reason))
    return report


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
            "only when the recommendation would otherwise be measured slower than the original"
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


def _directed_search(search: Search, items: list[GridItem]) -> None:
    """Steps 2-3 of the search: anchors first, then only the accuracy repairs the results call for."""
    state, run, skip, too_big, predicted = search, search.run, search.skip, search.too_big, search.predicted
    goal = search.goal
    fam: dict[str, list[GridItem]] = {}
    for it in items:
        fam.setdefault(it.family, []).append(it)
    anchors = [i for i in fam.get("anchor", []) if not too_big(i)]
    run(anchors)

    full = next((i for i in fam.get("anchor", []) if isinstance(i.recipe, StaticInt8Recipe)), None)
    full_c = state.results.get(full.id) if full else None
    if full and full_c and full_c.ok and full_c.metrics:
        search.scale = full_c.metrics.size_bytes / max(full.predicted_size, 1.0)

    objective = goal.objective if goal else "balanced"
    has_limits = bool(goal and goal.has_constraints)
    feasible = [c for c in state.results.values() if state.feasible(c)]
    drop_limit = goal.max_accuracy_drop_pct if goal else None
    full_drop = full_c.metrics.accuracy_drop_pct if full_c and full_c.ok and full_c.metrics else None
    full_misses_accuracy = full_drop is not None and drop_limit is not None and full_drop > drop_limit

    # the other calibration methods: same size as the full int8, possibly more accurate
    calib_items = fam.get("calibration", [])
    selective = sorted(fam.get("selective", []), key=lambda i: i.k)
    others = fam.get("per_tensor", []) + fam.get("dynamic_conv", [])
    speed_goal = is_speed_goal(goal)
    for it in others:
        if speed_goal or not has_limits:
            if not too_big(it):
                run([it])
        else:
            skip(
                it,
                "per-tensor and dynamic-Conv int8 are rarely more accurate or smaller than per-channel "
                "static int8, which was measured; not needed for this goal",
            )
    _speed_search(search, fam.get("speed", []), fam.get("anchor", []))

    needs_repair = full_c is not None and (full_misses_accuracy or (not feasible and has_limits))
    if feasible and objective == "size" and not needs_repair:
        smallest = min(c.metrics.size_bytes for c in feasible if c.metrics)
        for it in calib_items + selective:
            skip(
                it,
                f"cannot be smaller than the feasible {smallest / 1e6:.3f} MB candidate (same size or larger "
                "by construction)",
            )
        return
    if full_c is not None and not needs_repair and has_limits:
        # one selective point within the size limit shows what a little more size buys in accuracy
        fitting = [
            it
            for it in selective
            if predicted(it) <= (size_limit_bytes(goal, state.baseline) or float("inf"))
        ]
        probe = fitting[len(fitting) // 2] if fitting and objective in ("accuracy", "balanced") else None
        for it in calib_items:
            skip(
                it, "full int8 (min-max) already meets the limits; another calibration only changes accuracy"
            )
        for it in selective:
            if it is not probe:
                skip(
                    it, "full int8 already meets the limits; keeping more layers in fp32 only makes it larger"
                )
        if probe is not None:
            run([probe])
        return

    # accuracy repair: other calibrations, and a bisection over k for the smallest selective that meets the limit
    run([i for i in calib_items if not too_big(i)])
    cands = [i for i in selective if not too_big(i)]
    if not has_limits or drop_limit is None:
        # no accuracy limit to search for: sample the curve at a few points
        picks = cands[:: max(1, len(cands) // 3)][:4]
        for it in cands:
            if it not in picks:
                skip(it, "sampled the selective curve at a few k; this k lies between measured ones")
        run(picks)
        return
    lo, hi = 0, len(cands) - 1
    best: int | None = None
    width = max(1, getattr(search.executor, "slots", 1))
    while lo <= hi and cands:
        span = hi - lo + 1
        probes = sorted({lo + (span * (j + 1)) // (width + 1) for j in range(min(width, span))})
        run([cands[p] for p in probes])
        ok = [
            p
            for p in probes
            if (c := state.results.get(cands[p].id)) is not None
            and c.ok
            and c.metrics
            and c.metrics.accuracy_drop_pct is not None
            and c.metrics.accuracy_drop_pct <= drop_limit
        ]
        if ok:
            best = min(ok) if best is None else min(best, min(ok))
            hi = min(ok) - 1
            lo = max([p for p in probes if p < min(ok)], default=lo - 1) + 1
        else:
            lo = max(probes) + 1
    for i, it in enumerate(cands):
        if best is not None and i > best:
            skip(
                it,
                f"keeps more layers in fp32 than {cands[best].id}, which meets the accuracy limit: larger by "
                "construction",
            )
        else:
            skip(it, "bisection over k showed a smaller k misses the accuracy limit (monotone in k)")


def _speed_search(search: Search, items: list[GridItem], anchors: list[GridItem]) -> None:
    """For a goal about speed: the formats that are fast on CPU (QOperator static int8, dynamic MatMul-only,
    offline graph optimization), then, when dynamic int8 loses more than the accuracy limit allows, dynamic int8
    with its most sensitive MatMul layers kept in float (smallest k first, up to the first that meets it).
    Other goals skip them (a slower recommendation gets its QOperator sibling at the end instead)."""
    if not items:
        return
    plain = [i for i in items if i.k == 0]
    keep_k = sorted((i for i in items if i.k > 0), key=lambda i: i.k)
    if not is_speed_goal(search.goal):
        for it in items:
            search.skip(
                it,
                "built for goals about speed (a latency limit, a speed-up, 'as fast as possible'); this goal "
                "does not mention speed",
            )
        return
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
    if limit is None or dyn_drop is None or dyn_drop <= limit:
        reason = (
            "dynamic int8 already meets the accuracy limit"
            if dyn_drop is not None and limit is not None
            else "no accuracy limit for dynamic int8 to miss"
        )
        for it in keep_k:
            search.skip(it, f"{reason}; keeping MatMul layers in float only makes it larger and slower")
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


def _training_search(search: Search, items: list[GridItem]) -> None:
    """Steps 5 and 6 of the search: QAT/INC as accuracy repairs, pruning and chains when asked for or needed."""
    if not items:
        return
    state, run, skip, too_big, goal = search, search.run, search.skip, search.too_big, search.goal
    has_limits = bool(goal and goal.has_constraints)
    drop_limit = goal.max_accuracy_drop_pct if goal else None
    asks_prune = goal is not None and goal.asks_for("prune")

    def none_feasible() -> bool:
        return has_limits and not any(state.feasible(c) for c in state.results.values())

    full = next((c for c in state.results.values() if c.recipe == StaticInt8Recipe() and c.ok), None)
    full_drop = full.metrics.accuracy_drop_pct if full is not None and full.metrics is not None else None
    int8_misses = drop_limit is not None and full_drop is not None and full_drop > drop_limit

    repairs = [i for i in items if i.family in ("qat", "inc")]
    if int8_misses or none_feasible():
        run([i for i in repairs if not too_big(i)])
    else:
        reason = (
            "post-training int8 meets the accuracy limit"
            if drop_limit is not None and full_drop is not None
            else "the goal sets no accuracy limit for post-training int8 to miss"
            if drop_limit is None
            else "a candidate already meets the goal"
        )
        for it in repairs:
            skip(it, f"{reason}; QAT and INC autotune run when post-training int8 loses too much")

    pruning = [i for i in items if i.family in ("prune", "prune_onnx", "chain")]
    if asks_prune or none_feasible():
        run([i for i in pruning if not too_big(i)])
    else:
        reason = (
            "quantization alone meets the goal"
            if has_limits
            else "the goal sets no limit and does not ask for pruning"
        )
        for it in pruning:
            skip(
                it,
                f"{reason}; pruning trades accuracy for size and runs when the goal asks for it or "
                "quantization cannot meet the goal",
            )


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
            data.inputs,
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
