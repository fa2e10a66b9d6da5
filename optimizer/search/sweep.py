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
4. latency measured inside trials (which share the machine) is re-measured for the finalists, side by side and
   alone, before the recommendation is made.

With ``SweepOptions.front_points`` (the chat page asks for it), a size, accuracy or balanced goal also gets that
many quantization candidates measured across the front (the one-liners first, then the other int8 variants and a
few selective points spread over k), so the user sees what each megabyte buys, while the sweep has run less than
``time_budget_s``; a candidate left out for the budget says so in its reason.

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

import numpy as np
import onnx
from pydantic import Field

from optimizer.errors import GoalError
from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import CUDA, evaluate_model, make_session, measure_latency
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.executors import Executor, TrialFn, make_executor
from optimizer.search.pareto import ParetoReport, allowed, build_report, check_goal, size_limit_bytes
from optimizer.search.profile import profile_layers
from optimizer.search.trial import TrialInputs, TrialSpec, run_trial
from optimizer.techniques import registry
from optimizer.techniques.prune import compressed_size_bytes
from optimizer.techniques.registry import GridContext, SizeBasis
from optimizer.types import (
    Candidate,
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
    threads: int = 1  # onnxruntime threads per trial (and for the re-measurement)
    latency_runs: int = 30
    remeasure_runs: int = 60
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
    {"anchor", "calibration", "per_tensor", "selective", "dynamic_conv"}
)

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

    def run(self, items: Sequence[GridItem]) -> None:
        """Build and measure the items not yet measured or skipped; each result is stored as it arrives."""
        todo = [i for i in items if i.id not in self.results and i.id not in self.skipped]
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

    gpus, provider = _placement(goal, opts)

    base_metrics, reference = evaluate_model(
        model_path,
        data,
        keep_outputs=True,
        as_reference=True,
        threads=opts.threads,
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
            threads=opts.threads,
            latency_runs=opts.latency_runs,
            provider=provider,
            torch_source=torch_source,
        )

    inputs = TrialInputs.for_sweep(prepared.read_bytes(), data, calib, reference, torch_source)
    executor = make_executor(opts.executor, inputs, cancelled, opts.workers, gpus, trial_fn)
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
    if not allowed_items:
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

    candidates = [search.results[i.id] for i in grid if i.id in search.results]
    candidates += [c for c in extra_candidates if c.id not in {x.id for x in candidates}]
    evaluations = len(candidates)
    report = build_report(
        model_name or str(model_path),
        base_metrics,
        candidates,
        goal,
        evaluations=evaluations,
        grid_size=len(grid),
        skipped=list(search.skipped),
        skipped_reasons=search.skipped,
        sensitivity=sensitivity,
    )
    if not cancelled.is_set():
        report = _remeasure_finalists(report, model_path, data, goal, opts, provider, emit)
    report = report.model_copy(
        update={"wall_seconds": round(time.perf_counter() - t0, 3), "execution": executor.describe()}
    )
    emit(SweepEvent("finished", evaluations, evaluations, message=report.reason))
    return report


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
    for it in others:
        if objective == "latency" or not has_limits:
            if not too_big(it):
                run([it])
        else:
            skip(
                it,
                "per-tensor and dynamic-Conv int8 are rarely more accurate or smaller than per-channel "
                "static int8, which was measured; not needed for this goal",
            )

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


def _remeasure_finalists(
    report: ParetoReport,
    model_path: Path,
    data: Dataset,
    goal: Goal | None,
    opts: SweepOptions,
    provider: str | None,
    emit: ProgressFn,
) -> ParetoReport:
    """Re-measure latency of the baseline, the front and the recommendation alone, side by side (interleaved
    rounds), replace the trial numbers (kept in ``detail``), and recommend again."""
    ids = list(dict.fromkeys([*report.front, *([report.recommended] if report.recommended else [])]))
    finalists = [c for c in report.candidates if c.id in ids and c.ok and c.model_path]
    if not finalists:
        return report
    paths = {"__baseline__": str(model_path), **{c.id: str(c.model_path) for c in finalists}}
    sessions = {k: make_session(p, threads=opts.threads, provider=provider) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in paths}
    rounds = 5
    per_round = max(3, opts.remeasure_runs // rounds)
    for _ in range(rounds):
        for k, sess in sessions.items():
            times[k] += measure_latency(sess, data, runs=per_round, warmup=2)

    def stat(k: str) -> dict[str, float]:
        return {
            "latency_ms_p50": float(np.percentile(times[k], 50)),
            "latency_ms_p95": float(np.percentile(times[k], 95)),
        }

    baseline = report.baseline.model_copy(update=stat("__baseline__"))
    updated = []
    for c in report.candidates:
        if c.id in sessions and c.metrics:
            detail = {
                **c.detail,
                "trial_latency_ms_p50": c.metrics.latency_ms_p50,
                "latency_remeasured": True,
            }
            c = c.model_copy(update={"metrics": c.metrics.model_copy(update=stat(c.id)), "detail": detail})
        updated.append(c)
    emit(
        SweepEvent(
            "remeasured",
            report.evaluations,
            report.evaluations,
            message=f"re-measured latency of {len(finalists)} finalists and the original side by side",
        )
    )
    return build_report(
        report.model,
        baseline,
        updated,
        goal,
        evaluations=report.evaluations,
        grid_size=report.grid_size,
        skipped=report.skipped,
        skipped_reasons=report.skipped_reasons,
        sensitivity=report.sensitivity,
    )
