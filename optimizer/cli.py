"""`quanttaas`: a thin command line over the optimizer library.

Every command prints a short human summary, or JSON with ``--json``. Errors print ``error [code]: message`` and a
hint on stderr and exit non-zero, without a traceback (``QUANTTAAS_DEBUG=1`` shows one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optimizer.errors import QuantTaaSError
from optimizer.units import format_bytes

EXIT_ERROR = 2
EXIT_INTERNAL = 1
EXIT_GOAL_UNMET = 3


def _print_json(obj: Any) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (threads, batch size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


# --------------------------------------------------------------------------- commands


def cmd_zoo(args: argparse.Namespace) -> int:
    from optimizer import zoo

    if args.zoo_cmd == "list":
        entries = zoo.list_zoo()
        if args.json:
            _print_json([e.model_dump(mode="json") for e in entries])
        else:
            for e in entries:
                print(f"{e.name:<12} {e.metric:<16} {e.description}")
        return 0
    case = zoo.export_zoo_case(args.name, args.output)
    if args.json:
        _print_json(case)
    else:
        print(f"wrote {case.model_path}, {case.calib_path}, {case.eval_path} (metric: {case.metric})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from optimizer.models.inspect import inspect_model
    from optimizer.optimize import resolve_model

    info = inspect_model(resolve_model(args.model))
    if args.json:
        _print_json(info)
        return 0
    print(f"{info.path}: ONNX opset {info.opset}, IR {info.ir_version}, producer {info.producer or '?'}")
    print(
        f"  size {format_bytes(info.size_bytes)}, {info.param_count:,} parameters"
        + (f" ({info.constant_param_count:,} in Constant nodes)" if info.constant_param_count else "")
    )
    for t in info.inputs:
        print(f"  input  {t.name}: {t.dtype} {t.shape}")
    for t in info.outputs:
        print(f"  output {t.name}: {t.dtype} {t.shape}")
    print("  ops: " + ", ".join(f"{k} x{v}" for k, v in info.op_counts.items()))
    print(f"  {len(info.layers)} layers carry weights; largest:")
    for layer in sorted(info.layers, key=lambda x: -x.param_count)[:5]:
        print(f"    {layer.name} ({layer.op_type}): {layer.param_count:,}")
    print(f"  already quantized: {'yes ' + str(info.quantization_markers) if info.quantized else 'no'}")
    return 0


_SKIP_FIELDS = ("kind", "version", "steps")


def _flag_kwargs(annotation: Any) -> dict[str, Any] | None:
    """argparse keywords for a recipe field's type (None: not settable from the command line)."""
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _flag_kwargs(args[0])
    if origin is typing.Literal:
        return {"choices": list(args), "type": type(args[0])}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float, str):
        return {"type": annotation}
    if origin is tuple and args and args[0] is str:
        return {"nargs": "*", "metavar": "NAME"}
    return None


def recipe_fields() -> dict[str, tuple[Any, list[str]]]:
    """Every settable recipe field across the registered techniques: name -> (field info, techniques using it)."""
    from optimizer.techniques.registry import techniques

    fields: dict[str, tuple[Any, list[str]]] = {}
    for t in techniques():
        for name, info in t.recipe_type.model_fields.items():
            if name not in _SKIP_FIELDS and _flag_kwargs(info.annotation) is not None:
                fields.setdefault(name, (info, []))[1].append(t.cli_name)
    return fields


def add_recipe_flags(parser: argparse.ArgumentParser) -> None:
    """The recipe flags of ``quanttaas quantize``, generated from the registered techniques: one flag per recipe
    field (its type gives the flag's type, its description the help) and each technique's own flags."""
    from optimizer.techniques.registry import techniques

    group = parser.add_argument_group("recipe settings (from the registered techniques; [which use each])")
    for name, (info, users) in recipe_fields().items():
        kwargs = _flag_kwargs(info.annotation) or {}
        if not {"action", "choices", "metavar"} & set(kwargs):
            kwargs["metavar"] = name.upper()
        text = (info.description or name.replace("_", " ")).replace("%", "%%")
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"recipe__{name}",
            default=None,
            help=f"{text} [{', '.join(users)}]",
            **kwargs,
        )
    seen: dict[str, list[str]] = {}
    for t in techniques():
        for flag in t.cli_flags:
            seen.setdefault(flag.flag, []).append(t.cli_name)
    for t in techniques():
        for flag in t.cli_flags:
            if flag.flag in seen:
                group.add_argument(
                    flag.flag,
                    dest=_flag_dest(flag.flag),
                    action="store_true",
                    help=f"{flag.help} [{', '.join(seen.pop(flag.flag))}]",
                )


def build_recipe(args: argparse.Namespace) -> Any:
    """The recipe the quantize flags describe.

    Raises:
        RecipeError: no recipe named, invalid JSON or fields, or a flag that does not apply to the recipe.
    """
    from pydantic import TypeAdapter, ValidationError

    from optimizer.errors import RecipeError
    from optimizer.techniques.registry import resolve_name, technique_of
    from optimizer.types import Recipe

    if getattr(args, "recipe_json", None):
        try:
            fields: dict[str, Any] = json.loads(args.recipe_json)
        except ValueError as e:
            raise RecipeError(f"--recipe-json is not JSON: {e}") from None
    elif not args.recipe:
        raise RecipeError("give --recipe NAME or --recipe-json JSON")
    else:
        technique = technique_of(resolve_name(args.recipe))
        own = technique.recipe_type.model_fields
        fields = {"kind": technique.kind, **technique.cli_defaults}
        for name in recipe_fields():
            value = getattr(args, f"recipe__{name}", None)
            if value is None:
                continue
            if name not in own:
                raise RecipeError(
                    f"--{name.replace('_', '-')} does not apply to {technique.cli_name}",
                    hint=f"{technique.cli_name} takes: "
                    + ", ".join("--" + n.replace("_", "-") for n in own if n not in _SKIP_FIELDS),
                )
            fields[name] = tuple(value) if isinstance(value, list) else value
        own_flags = {f.flag for f in technique.cli_flags}
        for flag in _all_flags():
            if getattr(args, _flag_dest(flag.flag), False):
                if flag.flag not in own_flags:
                    raise RecipeError(f"{flag.flag} does not apply to {technique.cli_name}")
                if flag in technique.cli_flags:
                    fields[flag.field] = flag.value
    try:
        return TypeAdapter(Recipe).validate_python(fields)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(map(str, err["loc"])) or "recipe"
        raise RecipeError(f"invalid recipe: {loc}: {err['msg']}") from None


def _all_flags() -> list[Any]:
    from optimizer.techniques.registry import techniques

    return [f for t in techniques() for f in t.cli_flags]


def _flag_dest(flag: str) -> str:
    return "recipe_flag__" + flag.lstrip("-").replace("-", "_")


def _torch_source(args: argparse.Namespace) -> Any:
    """The PyTorch source of ``--torch-source FILE.json``, or the zoo case's when the model is a zoo name."""
    from optimizer.errors import RecipeError
    from optimizer.types import TorchSource
    from optimizer.zoo import zoo_torch_source

    if args.torch_source:
        try:
            return TorchSource.model_validate_json(Path(args.torch_source).read_text())
        except (OSError, ValueError) as e:
            raise RecipeError(
                f"--torch-source {args.torch_source}: {str(e)[:300]}",
                hint='a JSON TorchSource: {"module": "pkg.mod:Class", "state_dict_path": ..., "input_names": [...], '
                '"input_shapes": [[...]], "output_names": [...], "train_path": ...}',
            ) from None
    return zoo_torch_source(args.model)


def cmd_quantize(args: argparse.Namespace) -> int:
    """Apply one recipe (any registered technique, or a chain) and write the file; each step's size is printed."""
    from optimizer.errors import RecipeError
    from optimizer.measure.data import load_data
    from optimizer.models.inspect import inspect_model
    from optimizer.optimize import resolve_model
    from optimizer.techniques.chain import apply_recipe, needs_torch
    from optimizer.techniques.registry import recipe_needs

    recipe = build_recipe(args)
    model = resolve_model(args.model)
    calib = load_data(args.calib, inspect_model(model).inputs, metric="agreement") if args.calib else None
    if calib is None and "calibration" in recipe_needs(recipe):
        from optimizer import zoo

        if zoo.is_zoo_name(args.model):
            case = zoo.get_zoo_case(args.model)
            calib = load_data(case.calib_path, inspect_model(model).inputs, metric="agreement")
    src = _torch_source(args)
    if src is None and needs_torch(recipe):
        raise RecipeError(
            f"{recipe.kind} needs the PyTorch model this ONNX model was exported from",
            hint="pass --torch-source SOURCE.json (or use a zoo model built from PyTorch, e.g. digits-cnn)",
        )
    applied = apply_recipe(model, recipe, args.output, calib=calib, torch_source=src)
    before, after = inspect_model(model).size_bytes, inspect_model(applied.path).size_bytes
    if args.json:
        _print_json(
            {
                "output": str(applied.path),
                "recipe": recipe.model_dump(mode="json"),
                "size_bytes_before": before,
                "size_bytes_after": after,
                "steps": applied.steps,
                "finetuned": applied.detail["finetuned"],
            }
        )
        return 0
    print(
        f"{recipe.label}: wrote {applied.path} ({format_bytes(before)} -> {format_bytes(after)}, "
        f"{before / after:.2f}x smaller)"
    )
    if (
        len(applied.steps) > 1
        or applied.detail["finetuned"]
        or applied.steps[0].get("backend") != "onnxruntime"
    ):
        for step in applied.steps:
            print(
                f"  step {step['step']} {step['label']}: {format_bytes(step['size_bytes'])} "
                f"(gzip {format_bytes(step['compressed_size_bytes'])}); fine-tune: {step.get('finetune', 'none')}"
            )
    for key in ("note", "limits", "workarounds"):
        if key in applied.detail:
            print(f"  {key}: {applied.detail[key]}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    """Write a deployable folder for one sweep candidate (model, run.py, contract, metrics, recipe)."""
    from optimizer.package import package_candidate, resolve_candidate

    report_path, candidate_id = resolve_candidate(args.candidate)
    result = package_candidate(
        report_path, candidate_id, args.output, sample_data=args.sample_data, overwrite=args.force
    )
    if args.json:
        _print_json(result)
    else:
        print(
            f"packaged {result.candidate_id} ({result.recipe}) into {result.out_dir}: {', '.join(result.files)}"
        )
        print(f"  try it: python {Path(result.out_dir) / 'run.py'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from optimizer.measure.evaluate import evaluate_path
    from optimizer.optimize import resolve_model

    model = resolve_model(args.model)
    baseline = resolve_model(args.baseline) if args.baseline else None
    metrics, base = evaluate_path(
        model,
        args.data,
        baseline_path=baseline,
        metric=args.metric,
        threads=args.threads,
        batch_size=args.batch_size,
        latency_runs=args.runs,
    )
    if args.json:
        _print_json(
            {
                "model": str(model),
                "metrics": metrics.model_dump(mode="json"),
                "baseline": base.model_dump(mode="json") if base else None,
            }
        )
        return 0
    print(
        f"{model}: {metrics.metric_name} {_fmt(metrics.metric)} on {metrics.samples} samples"
        + (f", drop {metrics.accuracy_drop_pct:+.2f} pt vs baseline {_fmt(base.metric)}" if base else "")
    )
    print(
        f"  size {format_bytes(metrics.size_bytes)}; latency p50 {_fmt(metrics.latency_ms_p50, '.3f')} ms, "
        f"p95 {_fmt(metrics.latency_ms_p95, '.3f')} ms (batch {metrics.batch_size}, {metrics.threads} thread(s), "
        f"{metrics.backend}); peak memory +{format_bytes(metrics.peak_memory_bytes)}"
    )
    return 0


def cmd_goal(args: argparse.Namespace) -> int:
    from optimizer.goals.parse import parse_goal

    goal = parse_goal(args.text)
    if args.json:
        _print_json(goal)
    else:
        print(goal.describe())
        if goal.unparsed_words:
            print("  not understood: " + ", ".join(goal.unparsed_words))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from optimizer.measure.data import load_data
    from optimizer.models.inspect import inspect_model
    from optimizer.optimize import resolve_model
    from optimizer.search.profile import profile_layers, profile_layers_exact

    model = resolve_model(args.model)
    calib = load_data(args.data, inspect_model(model).inputs, metric="agreement")
    if args.exact:
        if not args.eval:
            from optimizer.errors import DataError

            raise DataError("--exact measures the task metric and needs --eval EVAL.npz (with labels)")
        data = load_data(args.eval, inspect_model(model).inputs)
        report = profile_layers_exact(model, calib, data, top_k=args.top_k)
    else:
        report = profile_layers(model, calib)
    if args.json:
        _print_json(report)
        return 0
    print(
        f"{len(report.layers)} layers, {report.method} mode, {report.model_passes} passes over "
        f"{report.calib_samples} samples, {report.seconds:.1f} s (most sensitive first):"
    )
    for la in report.layers[: args.top_k if args.exact else 20]:
        extra = (
            f", keeping it fp32 recovers {la.exact_drop_pct:+.2f} pt" if la.exact_drop_pct is not None else ""
        )
        print(
            f"  {la.rank:>3}. {la.name} ({la.op_type}): {_fmt(la.sqnr_db, '.1f')} dB added noise SQNR{extra}"
        )
    return 0


class _ProgressBar:
    """A tqdm bar on stderr fed by sweep events (stdout stays clean for --json)."""

    def __init__(self, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="trial", file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    def __call__(self, event: Any) -> None:
        self.bar.total = max(event.planned, event.done)
        self.bar.n = event.done
        if event.candidate is not None:
            c = event.candidate
            state = (
                "failed"
                if c.error
                else f"{c.metrics.metric:.4f}"
                if c.metrics and c.metrics.metric is not None
                else ""
            )
            self.bar.set_postfix_str(f"{c.id}: {state}"[:60])
        elif event.message:
            self.bar.set_postfix_str(event.message[:60])
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def print_report(report: Any) -> None:
    b = report.baseline
    print(
        f"original: {format_bytes(b.size_bytes)}, {b.metric_name} {_fmt(b.metric)}, p50 {_fmt(b.latency_ms_p50, '.3f')} ms"
    )
    print(
        f"{report.evaluations} of {report.grid_size} candidates evaluated ({len(report.skipped)} skipped as unable "
        f"to win, {len(report.failed)} failed); front: {len(report.front)}"
    )
    if report.execution:
        print(
            f"trials ran {report.execution}"
            if report.execution.startswith("in ")
            else f"trials: {report.execution}"
        )
    print(
        f"  {'candidate':<44} {'size':>10} {'metric':>8} {'drop pt':>8} {'p50 ms':>8} {'speed-up (95% CI)':>22}"
    )
    for c in report.candidates:
        mark = "*" if c.id == report.recommended else ("f" if c.id in report.front else " ")
        if c.metrics:
            m = c.metrics
            sp = c.speed
            speed = f"{sp.speedup:.2f}x ({sp.low:.2f}-{sp.high:.2f}) {sp.verdict}" if sp else "-"
            print(
                f"{mark} {c.id:<44} {format_bytes(m.size_bytes):>10} {_fmt(m.metric):>8} "
                f"{_fmt(m.accuracy_drop_pct, '+.2f'):>8} {_fmt(m.latency_ms_p50, '.3f'):>8} {speed:>22}"
            )
        else:
            print(f"{mark} {c.id:<44} failed: [{c.error.code}] {c.error.message[:60]}")
    print(("recommended: " if report.recommended else "no candidate meets the goal: ") + report.reason)
    if report.measurement is not None:
        me = report.measurement
        print(
            f"measured with {me.threads} thread(s) ({me.threads_from}), batch {me.batch_size} ({me.batch_from}) on "
            f"{me.provider}; {len(me.remeasured)} finalists re-measured side by side with the original "
            f"({me.blocks} interleaved blocks of {me.runs_per_block} runs)"
        )
    for n in report.nearest:
        print(f"  nearest {n.candidate_id}: " + "; ".join(m.text for m in n.misses))
    for note in report.notes:
        print(f"  note: {note}")


def cmd_optimize(args: argparse.Namespace) -> int:
    from optimizer.optimize import optimize
    from optimizer.search.sweep import SweepOptions

    opts = SweepOptions(
        executor="serial" if args.serial else "ray",
        workers=args.workers,
        exhaustive=args.exhaustive,
        threads=args.threads,
        batch_size=getattr(args, "batch", None),
    )
    bar = _ProgressBar(enabled=not args.json and sys.stderr.isatty())
    try:
        report = optimize(
            args.model,
            args.data,
            goal=args.goal,
            out_dir=args.out,
            calib_path=args.calib,
            options=opts,
            progress=bar,
            chart_writer=getattr(args, "chart_writer", None),
        )
    finally:
        bar.close()
    out = Path(args.out)
    if args.json:
        _print_json(report)
    else:
        print_report(report)
        print(
            f"wrote {out / 'report.json'}"
            + (f", {out / 'best.onnx'}" if report.recommended else "")
            + (f", {out / 'pareto.html'}" if (out / "pareto.html").exists() else "")
        )
    return 0 if report.recommended else EXIT_GOAL_UNMET


def cmd_demo(args: argparse.Namespace) -> int:
    """The headless demo: the zoo's digits CNN, a realistic goal, the whole sweep."""
    ns = argparse.Namespace(
        model="digits-cnn",
        data=None,
        calib=None,
        out=args.out,
        json=args.json,
        serial=False,
        workers=None,
        exhaustive=False,
        threads=None,
        batch=None,
        goal="make it under 40 KB with less than 1% accuracy loss",
        chart_writer=getattr(args, "chart_writer", None),
    )
    print(f"QuantTaaS demo: optimizing the built-in digits-cnn for: {ns.goal!r}", file=sys.stderr)
    rc = cmd_optimize(ns)
    return 0 if rc in (0, EXIT_GOAL_UNMET) else rc


# --------------------------------------------------------------------------- parser


def add_commands(sub: Any, *, chart_writer: Any = None) -> None:
    """Register the library's commands on ``sub`` (an argparse sub-parser action). ``chart_writer(report, path)``
    writes ``pareto.html`` for optimize/demo (the product's entry passes the page's charts; none here)."""

    z = sub.add_parser("zoo", help="built-in demo models with their data")
    zsub = z.add_subparsers(dest="zoo_cmd", required=True)
    zl = zsub.add_parser("list", help="list the zoo")
    zl.add_argument("--json", action="store_true")
    zg = zsub.add_parser("get", help="build (first time) and write model.onnx, calib.npz, eval.npz")
    zg.add_argument("name")
    zg.add_argument("-o", "--output", required=True)
    zg.add_argument("--json", action="store_true")
    z.set_defaults(func=cmd_zoo)

    i = sub.add_parser("inspect", help="describe a model (ONNX, .pt2, or a zoo name)")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    from optimizer.techniques.registry import describe_techniques, techniques

    q = sub.add_parser(
        "quantize",
        help="apply one recipe",
        description="Apply one recipe. The techniques:\n" + describe_techniques(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("model")
    q.add_argument(
        "--recipe",
        choices=[name for t in techniques() for name in dict.fromkeys((t.cli_name, *t.aliases))],
        help="the recipe (or --recipe-json for any recipe, chains included)",
    )
    q.add_argument(
        "--recipe-json",
        metavar="JSON",
        help='any recipe as JSON, e.g. \'{"kind": "chain", "steps": [{"kind": "prune_channels", "amount": 0.3}, '
        '{"kind": "static_int8"}]}\'',
    )
    q.add_argument("--calib", help="calibration .npz (static int8; default for zoo models: their own)")
    q.add_argument(
        "--torch-source",
        metavar="JSON_FILE",
        help="the PyTorch model (TorchSource JSON) for pruning, QAT and INC; zoo models built in PyTorch have one",
    )
    add_recipe_flags(q)
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_quantize)

    pk = sub.add_parser("package", help="write a deployable folder for one sweep candidate")
    pk.add_argument(
        "candidate",
        help="RUN_DIR#CANDIDATE_ID, RUN_DIR/candidates/ID.onnx, or RUN_DIR (the recommended candidate)",
    )
    pk.add_argument("-o", "--output", required=True, help="the folder to write (new, or empty)")
    pk.add_argument(
        "--sample-data", metavar="DATA.npz", help="bundle its first samples as sample.npz for run.py"
    )
    pk.add_argument("--force", action="store_true", help="replace the output folder when it exists")
    pk.add_argument("--json", action="store_true")
    pk.set_defaults(func=cmd_package)

    e = sub.add_parser("evaluate", help="measure size, metric, latency and memory")
    e.add_argument("model")
    e.add_argument("--data", required=True)
    e.add_argument("--baseline", help="the original model, for accuracy_drop_pct and agreement")
    e.add_argument("--metric", help="override the metric the data file names")
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--batch-size", type=int, default=1, help="batch size of the latency runs")
    e.add_argument("--runs", type=int, default=None, help="timed latency runs (default 50)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    g = sub.add_parser("goal", help="read a goal in plain words (no LLM)")
    g.add_argument("text")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_goal)

    pr = sub.add_parser("profile", help="rank layers by sensitivity to int8 quantization")
    pr.add_argument("model")
    pr.add_argument("--data", required=True, help="calibration .npz")
    pr.add_argument(
        "--exact", action="store_true", help="also measure the metric with each top-k layer kept fp32"
    )
    pr.add_argument("--eval", help="evaluation .npz with labels (for --exact)")
    pr.add_argument("--top-k", type=int, default=8)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_profile)

    o = sub.add_parser(
        "optimize", help="sweep recipes for a goal; write report, candidates, best model, chart"
    )
    o.add_argument("model", help="an .onnx/.pt2 file or a zoo name")
    o.add_argument("--data", help="evaluation .npz (default for zoo models: their own)")
    o.add_argument("--calib", help="calibration .npz (default: the first evaluation samples)")
    o.add_argument("--goal", required=True, help='e.g. "under 5 MB, <1%% accuracy loss"')
    o.add_argument("--out", required=True, help="output folder")
    o.add_argument("--serial", action="store_true", help="run trials in this process instead of on Ray")
    o.add_argument("--workers", type=int, default=None, help="parallel trials (default: CPUs Ray sees)")
    o.add_argument(
        "--exhaustive", action="store_true", help="evaluate the whole grid instead of a directed search"
    )
    o.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="onnxruntime threads the model will run with, for every latency measurement (default: the goal's "
        '"on 4 threads", else 1)',
    )
    o.add_argument(
        "--batch",
        "--batch-size",
        dest="batch",
        type=_positive_int,
        default=None,
        help='batch size the model will run with (default: the goal\'s "batch 32", else 1)',
    )
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_optimize)

    d = sub.add_parser("demo", help="the headless demo on the built-in digits-cnn model")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)
    for parser in (o, d):
        parser.set_defaults(chart_writer=chart_writer)


def build_parser() -> argparse.ArgumentParser:
    """The library's own command line (``python -m optimizer.cli``); ``quanttaas`` adds the other floors'."""
    p = argparse.ArgumentParser(
        prog="quanttaas", description="Compress neural networks and measure the trade-off."
    )
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def _quiet_libraries() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse ``argv`` with ``parser`` (the library's by default) and run the command: errors print
    ``error [code]: message`` and a hint and exit non-zero, never a traceback (``QUANTTAAS_DEBUG=1`` shows one)."""
    _quiet_libraries()
    args = (parser or build_parser()).parse_args(argv)
    try:
        return int(args.func(args))
    except QuantTaaSError as e:
        print(f"error [{e.code}]: {e.message}\n  hint: {e.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("QUANTTAAS_DEBUG"):
            traceback.print_exc()
        print(
            f"error [internal_error]: {e.__class__.__name__}: {str(e)[:300]}\n"
            "  hint: this is a bug in QuantTaaS; rerun with QUANTTAAS_DEBUG=1 and report the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
