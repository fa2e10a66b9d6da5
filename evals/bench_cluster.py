"""Benchmark: the same sweep trials on 1 and on 2 worker nodes of a real local Ray cluster, side by side.

Starts the namespaced local cluster of :mod:`tests.cluster` (a head with no CPUs, then one worker node with
1 CPU; each its own ``ray start``; the worker nodes cannot see the driver's files), and runs, through
``RAY_ADDRESS``:

1. the trials of digits-cnn that need its PyTorch source (channel and magnitude pruning, alone and chained with
   int8), fine-tuned long enough that each lasts at least 5 s (60 epochs by default: 9-14 s a trial on an idle
   2-core machine; 20 epochs gave 3.5-8 s), on 1 worker node (the per-trial times are reported, and the shortest
   is checked against 5 s);
2. a second worker node joins, and the same trials run again on 2 worker nodes;
3. both again, the 1-node run now pinned to the first node by its custom resource (the second idles): on a machine
   shared with other work the load drifts, and a second pair shows how far the ratio moves with it;
4. ``quanttaas serve`` submits a sweep to the cluster while /health and list_jobs are asked every quarter second:
   how fast the server answers while its sweep runs.

Each run is its own driver (a Ray job) that first warms every worker up (imports torch and onnxruntime) before
its clock starts. Wall time of the trials, side by side; the ratio is the figure. Writes ``out/bench/cluster.md``.

Run with ``make bench`` or ``python -m evals.bench_cluster [--trials N] [--finetune-epochs E]``; needs Linux
namespaces (root): it says so and exits 0 where they are not permitted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

OUT = Path("out/bench")
ROOT = Path(__file__).resolve().parents[1]
#: pruning with fine-tuning, alone and chained: trials of like length (QAT's are two to three times longer), so the
#: ratio shows the nodes, not how one long trial happened to be scheduled
TORCH_FAMILIES = ("prune", "chain")
MIN_TRIAL_S = 5.0


# --------------------------------------------------------------------------- inside the cluster: one driver


def _warm_up(ray: Any, cpus: int) -> None:
    """One task per CPU, each holding its CPU a moment so they spread over every node, importing what trials
    import: the trials' clock then measures trials, not interpreter start-up."""

    def warm() -> str:
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401

        import optimizer.techniques.chain  # noqa: F401

        time.sleep(2.0)
        return str(ray.get_runtime_context().get_node_id())

    task = ray.remote(num_cpus=1)(warm)
    ray.get([task.remote() for _ in range(cpus)])


def drive(args: argparse.Namespace) -> int:
    """Run the PyTorch-source trials of digits-cnn on the cluster RAY_ADDRESS names; print one JSON line."""
    from optimizer import zoo
    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.models.inspect import inspect_model
    from optimizer.models.preprocess import QDQ_MIN_OPSET, prepare_model
    from optimizer.search.executors import RayExecutor, make_executor
    from optimizer.search.runtime import ensure_ray
    from optimizer.search.sweep import build_grid
    from optimizer.search.trial import TrialInputs, TrialSpec, run_trial

    ray = ensure_ray()
    cpus = int(ray.cluster_resources().get("CPU", 0))
    nodes = sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU"))
    _warm_up(ray, cpus)

    case = zoo.get_zoo_case("digits-cnn")
    source = zoo.zoo_torch_source("digits-cnn")
    info = inspect_model(case.model_path)
    data = load_data(case.eval_path, info.inputs)
    calib = load_data(case.calib_path, info.inputs, metric="agreement")
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    prepared = prepare_model(case.model_path, work / "prepared.onnx", min_opset=QDQ_MIN_OPSET)
    baseline, _ = evaluate_model(case.model_path, data, latency_runs=3)
    grid = build_grid(info, None, has_calib=True, torch_source=source, finetune_epochs=args.finetune_epochs)
    items = [i for i in grid if i.family in TORCH_FAMILIES][: args.trials]
    specs = [
        TrialSpec(
            id=i.id,
            recipe=i.recipe,
            baseline_metric=float(baseline.metric or 0.0),
            latency_runs=10,
            torch_source=source,
        )
        for i in items
    ]
    inputs = TrialInputs.for_sweep(prepared.read_bytes(), data, calib, None, source)
    executor = make_executor("ray", inputs, threading.Event(), None, 0.0)
    if args.only:  # every trial on that node (its custom resource): the other node idles
        assert isinstance(executor, RayExecutor)
        executor._task = ray.remote(num_cpus=1, resources={args.only: 0.001})(run_trial)
        nodes = 1
    t0 = time.perf_counter()
    results = [cand for cand, _ in executor.run(specs)]
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "nodes": nodes,
                "cpus": cpus,
                "wall_s": wall,
                "trial_s": [c.seconds for c in results],
                "failed": [c.id for c in results if not c.ok],
                "execution": executor.describe(),
                "only": args.only,
                "load": os.getloadavg()[0],
            }
        ),
        flush=True,
    )
    return 0


# --------------------------------------------------------------------------- outside: the cluster and the table


def _driver(cluster: Any, args: argparse.Namespace, only: str | None = None) -> dict[str, Any]:
    proc = cluster.run(
        [
            sys.executable,
            "-m",
            "evals.bench_cluster",
            "--driver",
            "--trials",
            str(args.trials),
            "--finetune-epochs",
            str(args.finetune_epochs),
            *(["--only", only] if only else []),
        ],
        cwd=ROOT,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the driver failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _serve(cluster: Any, zoo_dir: Path) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    proc = cluster.run(
        [
            sys.executable,
            "-m",
            "tests.cluster_drivers",
            "serve",
            "--home",
            str(home),
            "--zoo-dir",
            str(zoo_dir),
        ],
        cwd=ROOT,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the serve driver failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.median(values):.0f} / {p95:.0f} / {values[-1]:.0f}"


def _scaling(
    args: argparse.Namespace, runs: tuple[dict[str, Any], ...], setup_s: float, load: tuple[float, ...]
) -> list[str]:
    """The scaling table: pairs of (1 node, 2 nodes) runs, each pair's ratio."""
    one, two, one_again, two_again = runs
    shortest = min(t for r in runs for t in r["trial_s"])
    failed = [i for r in runs for i in r["failed"]]
    ratios = [one["wall_s"] / two["wall_s"], one_again["wall_s"] / two_again["wall_s"]]

    def row(pair: int, r: dict[str, Any], ref: dict[str, Any]) -> str:
        t = r["trial_s"]
        how = f"{r['nodes']}" + (f" (pinned to {r['only']})" if r["only"] else "")
        return (
            f"| {pair} | {how} | {len(t)} | {r['wall_s']:.1f} | {min(t):.1f} / {statistics.median(t):.1f} / "
            f"{max(t):.1f} | {ref['wall_s'] / r['wall_s']:.2f}x | {r['load']:.1f} |"
        )

    return [
        f"### sweep trials on a local multi-node Ray cluster ({args.trials} PyTorch-source trials of digits-cnn, "
        f"fine-tuning {args.finetune_epochs} epochs; head with no CPUs, worker nodes of 1 CPU each)",
        "",
        "| pair | worker nodes | trials | wall s | trial s (min / median / max) | speed-up over 1 node "
        "| load avg after |",
        "|---|---|---|---|---|---|---|",
        row(1, one, one),
        row(1, two, one),
        row(2, one_again, one_again),
        row(2, two_again, one_again),
        "",
        f"speed-up of 2 worker nodes over 1 (wall time, ideal 2x): {ratios[0]:.2f}x, then {ratios[1]:.2f}x",
        f"failed trials: {failed or 'none'}; cluster start (head + 1 node): {setup_s:.0f} s",
        f"where (2 nodes): {two['execution']}",
        f"shortest trial: {shortest:.1f} s ("
        + ("at least" if shortest >= MIN_TRIAL_S else "UNDER")
        + f" {MIN_TRIAL_S:g} s); machine load average (1 min) before / after: {load[0]:.1f} / {os.getloadavg()[0]:.1f}",
    ]


def _write(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cluster.md").write_text(text)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_cluster")
    ap.add_argument("--trials", type=int, default=6, help="PyTorch-source trials per run")
    ap.add_argument("--finetune-epochs", type=int, default=60, help="fine-tuning epochs after pruning")
    ap.add_argument("--no-serve", action="store_true", help="skip the server's responsiveness run")
    ap.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.driver:
        return drive(args)

    sys.path.insert(0, str(ROOT))
    from optimizer import zoo
    from optimizer.settings import get_settings
    from tests.cluster import LocalCluster, unavailable

    reason = unavailable()
    if reason:
        print(f"bench_cluster: skipped, no local multi-node Ray cluster here: {reason}")
        return 0
    zoo_dir = Path(zoo.get_zoo_case("digits-cnn").model_path).parent.parent
    zoo.zoo_torch_source("digits-cnn")  # built (if needed) before the clock, on the driver's side
    hidden = [p for p in {zoo_dir, get_settings().home} if p.is_dir()]
    load = os.getloadavg()
    t0 = time.perf_counter()
    with LocalCluster(hidden=hidden) as cluster:
        cluster.start_head()
        cluster.add_worker("w1", num_cpus=1)
        setup_s = time.perf_counter() - t0
        one = _driver(cluster, args)
        cluster.add_worker("w2", num_cpus=1)
        two = _driver(cluster, args)
        one_again = _driver(cluster, args, only="w1")
        two_again = _driver(cluster, args)
        _write(_scaling(args, (one, two, one_again, two_again), setup_s, load))
        served = None if args.no_serve else _serve(cluster, zoo_dir)
    lines = _scaling(args, (one, two, one_again, two_again), setup_s, load)
    if served is not None:
        running = [s for s in served["samples"] if s["state"] == "running"]
        lines += [
            "",
            f"`quanttaas serve` with its sweep on the cluster (job {served['job']['state']}): "
            f"{len(running)} probes while it ran",
            "",
            "| request during the sweep | p50 / p95 / max ms |",
            "|---|---|",
            f"| GET /health | {_ms([s['health_ms'] for s in running])} |",
            f"| GET /jobs (list_jobs) | {_ms([s['list_jobs_ms'] for s in running])} |",
        ]
        _write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
