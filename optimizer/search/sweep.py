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
4. latency measured inside trials (which share the machine) is re-measured for the finalists, side by side and
   alone, before the recommendation is made.

Calibration and profiling are sized from the model's activations and the machine's free memory
(:mod:`optimizer.search.memory`); a trial killed for memory is retried alone with half the calibration samples.
What the sweep did beyond the usual (the memory plan, retries, upstream workarounds, the metric chosen for data
without labels, pre-processing fallbacks) is listed in ``ParetoReport.notes``.

Pruning, quantization-aware training and chains join the grid when the model has a PyTorch source (a
:class:`~optimizer.types.TorchSource`; the zoo's digits-cnn has one): channel pruning (30% and 50% of the
parameters), magnitude pruning (50%), QAT, neural-compressor's autotune, and chains of pruning then int8 (when
the goal allows both methods; ``methods_forbidden`` drops them like any recipe). Each costs seconds of training
and export, so beyond the measurement rules above they wait while a measured candidate already meets the goal:

5. QAT and INC autotune run when post-training int8 misses the accuracy limit, or when no candidate is feasible;
6. pruning and chains run when the goal asks for pruning (:meth:`Goal.asks_for`), or when no measured candidate
   meets the goal.

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

from optimizer.errors import GoalError
from optimizer.measure.data import Dataset
from optimizer.measure.evaluate import CUDA, evaluate_model, make_session, measure_latency
from optimizer.models.files import pack_model, unpack_model
from optimizer.models.graph import edge_layers, layer_blocks
from optimizer.models.inspect import inspect_model
from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
from optimizer.search.executors import Executor, TrialFn, make_executor
from optimizer.search.pareto import (
    ParetoReport,
    allowed,
    build_report,
    check_goal,
    drop_limit_pct,
    size_limit_bytes,
)
from optimizer.search.profile import PROFILE_SAMPLES, profile_layers
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
    TrainingRecipeBase,
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
    blocked: str = ""  # why the goal does not let this item run (e.g. it cannot keep layers in float)


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
    model) is marked ``blocked``.
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
        recipe, blocked = _keeping_float(p.recipe, keep_float)
        rid = candidate_id(len(items), recipe)
        items.append(GridItem(rid, recipe, p.family, registry.predict_size(recipe, basis), p.k, blocked))
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
        self.scale = 1.0  # measured / predicted size of the full int8 candidate, once known
        self.scale_basis: str | None = None  # the candidate whose measured size set the scale
        self.notes: list[str] = []  # what the search itself says in the report
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

    def run(self, items: Sequence[GridItem]) -> None:
        """Build and measure the items not yet measured or skipped; each result is stored as it arrives."""
        todo = [i for i in items if i.id not in self.results and i.id not in self.skipped]
        for cand, blob in self.executor.run([self._spec(i) for i in todo]):
            if blob is not None:
                path = unpack_model(blob, self.out_dir / "candidates" / f"{cand.id}.onnx")
                cand = cand.model_copy(update={"model_path": str(path)})
            self.results[cand.id] = cand
            self.emit(SweepEvent("trial", len(self.results), self.planned(), cand))

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
    """
    t0 = time.perf_counter()
    opts = options or SweepOptions()
    cancelled = cancel or threading.Event()
    emit = progress or (lambda e: None)
    out = Path(out_dir)
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    model_path = Path(model_path)
    info = inspect_model(model_path)

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
    grid = build_grid(
        info,
        sensitivity,
        has_calib=calib is not None,
        max_selective=opts.max_selective,
        torch_source=torch_source,
        onnx_pruning=goal is not None and goal.asks_for("prune"),
        finetune_epochs=finetune_epochs(goal, opts),
        graph=graph,
        keep_float=keep_float,
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
    search.measure_smallest_when_none_succeeded(allowed_items, cancelled)
    if cancelled.is_set():
        for item in allowed_items:
            search.skip(item, "the sweep was cancelled before this candidate ran")

    notes += search.notes
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
    emit(SweepEvent("finished", evaluations, evaluations, message=report.reason))
    return report


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

    repairs = [i for i in items if i.family in ("qat", "inc")]
    fit = feasible_one()
    if int8_misses or fit is None:
        run([i for i in repairs if not state.ruled_out(i)])
    elif asks_qat:
        # asked for by name: QAT runs; INC autotune stays an accuracy repair
        run([i for i in repairs if i.family == "qat" and not state.ruled_out(i)])
        for it in repairs:
            if it.family != "qat" and not state.ruled_out(it):
                skip(
                    it,
                    f"{cited(fit)}; INC autotune (seconds of training) runs when post-training int8 "
                    "loses too much",
                )
    else:
        for it in repairs:
            if not state.ruled_out(it):
                skip(it, f"{cited(fit)}; QAT and INC autotune (seconds of training) run when it does not")

    pruning = [i for i in items if i.family in ("prune", "prune_onnx", "chain")]
    fit = feasible_one()
    if asks_prune or fit is None:
        run([i for i in pruning if not state.ruled_out(i)])
    else:
        for it in pruning:
            if not state.ruled_out(it):
                skip(
                    it,
                    f"{cited(fit)}; pruning (seconds of training) runs when the goal asks for it or no measured "
                    "candidate meets the goal",
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
