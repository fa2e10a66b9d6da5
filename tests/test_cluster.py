"""Sweeps on a REAL multi-node Ray cluster on this machine: a head (no CPUs) and two worker nodes, each its own
``ray start`` with its own temp dir and resources, in a private loopback-only network namespace; the worker
nodes cannot see the driver's files (the zoo cache, the tests' tmp dirs). See :mod:`tests.cluster`.

What is proven here, each through the product's own surfaces:

- a sweep through ``RAY_ADDRESS`` with PyTorch-source trials (pruning, chains, QAT) runs on nodes that do not
  share the driver's file system, and every result comes back (report, candidate files, the execution line);
- with a cluster that ``ray start`` left on the machine and no ``RAY_ADDRESS``, ``quanttaas optimize`` runs on a
  private runtime and says so; with ``RAY_ADDRESS=auto`` it joins; with nothing to join it refuses with a hint;
- ``quanttaas serve`` submits its sweep to the cluster and answers ``/health`` and ``list_jobs`` while it runs;
- a worker node killed mid-sweep loses no finished trial, and its in-flight trials run again on the other node.

The cluster is started once for the module (about a minute on 2 busy cores); the lost-node test kills a node and
so runs last. Skipped, with the reason, where Linux namespaces are not permitted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import LocalCluster, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[1]
#: run from the project's root as ``python -m``: the module is ``__main__`` (its trial function and actor travel to
#: the nodes by value) and the root, not tests/ (whose ``optimizer`` folder would shadow the package), is on sys.path
DRIVERS = ("-m", "tests.cluster_drivers")
QUANTTAAS = str(Path(sys.executable).with_name("quanttaas"))
WORKERS = ("w1", "w2")
PRUNING_GOAL = "under 40 KB, less than 2% accuracy loss, use pruning"
QUICK_GOAL = "under 40 KB"


def _require_namespaces() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"no local multi-node Ray cluster here: {reason}")


@pytest.fixture(scope="module")
def zoo_dir() -> Path:
    from optimizer import zoo

    return Path(zoo.get_zoo_case("digits-cnn").model_path).parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Iterator[LocalCluster]:
    """Head + w1 + w2 (1 CPU each); the zoo cache, QUANTTAAS_HOME and every test's tmp dir are hidden from the
    worker nodes."""
    _require_namespaces()
    from optimizer.settings import get_settings

    hidden = {zoo_dir, get_settings().home, tmp_path_factory.getbasetemp()}
    with LocalCluster(hidden=sorted(p for p in hidden if p.is_dir())) as c:
        c.start_head()
        c.add_workers(WORKERS, num_cpus=1)
        yield c


def _optimize(
    cluster: LocalCluster, out: Path, goal: str, env: dict[str, str], timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    return cluster.run(
        [QUANTTAAS, "optimize", "digits-cnn", "--goal", goal, "--out", str(out)], env=env, timeout=timeout
    )


def _last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_unreachable_ray_address_is_refused_with_a_hint_not_a_traceback(tmp_path: Path) -> None:
    _require_namespaces()
    with LocalCluster() as empty:  # the namespace, and no `ray start` in it: nothing to join
        proc = _optimize(empty, tmp_path / "out", QUICK_GOAL, empty.driver_env({"RAY_ADDRESS": "auto"}))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error [input_invalid]: RAY_ADDRESS=auto names no Ray cluster" in proc.stderr
    assert "unset RAY_ADDRESS to run the trials on a private runtime" in proc.stderr
    assert "internal_error" not in proc.stderr and "Traceback" not in proc.stderr


def test_worker_nodes_do_not_see_the_drivers_files(
    cluster: LocalCluster, zoo_dir: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "driver-only.txt"
    mine.write_text("only the driver has this")
    for path in (mine, zoo_dir / "digits-cnn"):
        assert cluster.run(["test", "-e", str(path)]).returncode == 0, path  # the driver's view
        for node in WORKERS:
            assert not cluster.node_sees(node, path), f"{node} sees {path}"
    # a worker node still has its own files (the check is not blind)
    assert cluster.node_sees("w1", cluster.nodes["w1"].temp_dir)


def test_optimize_through_ray_address_runs_torch_source_trials_on_nodes_without_the_drivers_files(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = _optimize(cluster, out, PRUNING_GOAL, cluster.driver_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # the head has no CPUs: the 2 CPUs that ran the trials are the worker nodes'
    line = "trials: joined the Ray cluster at 127.0.0.1:6379 (RAY_ADDRESS); 3 node(s), 2 CPUs"
    assert line in proc.stdout, proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["execution"].startswith("joined the Ray cluster at 127.0.0.1:6379")
    cands = report["candidates"]
    assert cands and all(c["error"] is None for c in cands), [c["error"] for c in cands]
    # trials that need the PyTorch source's files (state_dict, training data) ran on the worker nodes
    torch_trials = [c for c in cands if c["recipe"]["kind"] == "chain"]
    assert torch_trials, [c["id"] for c in cands]
    kinds = {s["kind"] for c in torch_trials for s in c["recipe"]["steps"]}
    assert "prune_channels" in kinds and "static_int8" in kinds, kinds
    assert all(s.get("finetuned") for c in torch_trials for s in c["detail"]["steps"][:1])
    for c in cands:  # every candidate's file came back to the driver, with the size the report states
        path = Path(c["model_path"])
        assert path.parent == out / "candidates" and path.stat().st_size == c["metrics"]["size_bytes"]
    assert report["recommended"] and (out / "best.onnx").is_file()


def test_optimize_beside_a_ray_start_cluster_runs_privately_unless_ray_address_says_join(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    # no RAY_ADDRESS: the cluster `ray start` left (its address file is in this namespace's /tmp/ray) is left
    # alone, and the run says so; never Ray's "num_cpus must not be provided" crash
    private = _optimize(cluster, tmp_path / "private", QUICK_GOAL, cluster.driver_env(join=False))
    assert private.returncode == 0, private.stdout[-2000:] + private.stderr[-3000:]
    assert "internal_error" not in private.stderr and "num_cpus" not in private.stderr
    said = "a cluster started with `ray start` is running at 127.0.0.1:6379 and was left alone"
    assert "trials: started a private Ray runtime on this machine (RAY_ADDRESS is not set)" in private.stdout
    assert said in private.stdout, private.stdout  # the command's own line, from the report
    execution = json.loads((tmp_path / "private" / "report.json").read_text())["execution"]
    assert execution.startswith("started a private Ray runtime") and said in execution

    joined = _optimize(cluster, tmp_path / "joined", QUICK_GOAL, cluster.driver_env({"RAY_ADDRESS": "auto"}))
    assert joined.returncode == 0, joined.stdout[-2000:] + joined.stderr[-3000:]
    assert "trials: joined the Ray cluster at 127.0.0.1:6379 (RAY_ADDRESS=auto); 3 node(s)" in joined.stdout


def test_serve_runs_its_sweep_on_the_cluster_and_answers_while_it_runs(
    cluster: LocalCluster, zoo_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "server-home"
    home.mkdir()
    proc = cluster.run(
        [sys.executable, *DRIVERS, "serve", "--home", str(home), "--zoo-dir", str(zoo_dir)],
        cwd=ROOT,
        timeout=480,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + (home / "serve.log").read_text()[-2000:]
    result = _last_json(proc.stdout)
    assert result["job"]["state"] == "succeeded", result["job"]
    assert result["report"]["report"]["execution"].startswith("joined the Ray cluster at 127.0.0.1:6379")
    running = [s for s in result["samples"] if s["state"] == "running"]
    # asked every quarter second while the sweep ran: each /health and list_jobs answered (10 s client timeout),
    # and saw the job; how fast is measured in evals/bench_cluster.py
    assert len(running) >= 3, result["samples"]
    assert all(s["health_ok"] and s["jobs_running"] == 1 and s["list_jobs_ok"] for s in running), running


def test_a_worker_node_lost_mid_sweep_loses_no_finished_trial_and_its_trials_run_again(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    victim, survivor = WORKERS
    driver = cluster.popen(
        [
            sys.executable,
            *DRIVERS,
            "lost-node",
            "--out",
            str(tmp_path / "run"),
            "--victim",
            victim,
            "--nodes",
            ",".join(WORKERS),
            "--seconds",
            "5",
        ],
        cwd=ROOT,
    )
    assert driver.stdout is not None
    kill: dict[str, Any] | None = None
    killed_at = 0.0
    lines = []
    try:
        for raw in driver.stdout:
            lines.append(raw)
            if raw.startswith('{"event": "kill"'):
                kill = json.loads(raw)
                assert cluster.kill_node(victim) > 0
                killed_at = time.time()
        rc = driver.wait(timeout=420)
    finally:
        if driver.poll() is None:
            driver.kill()
    stderr = driver.stderr.read() if driver.stderr else ""
    assert rc == 0, stderr[-3000:]
    assert kill is not None, "the victim never had a finished trial and another in flight: " + "".join(lines)
    result = json.loads(next(x for x in reversed(lines) if x.startswith('{"event": "result"')))
    report, ledger = result["report"], result["ledger"]
    by_id = {c["id"]: c for c in report["candidates"]}
    assert all(c["error"] is None for c in by_id.values()), [c["error"] for c in by_id.values()]
    assert report["evaluations"] == report["grid_size"] == len(by_id)  # the whole (exhaustive) grid came back

    def starts(trial: str) -> list[str]:
        return [e["node"] for e in ledger if e["trial"] == trial and e["event"] == "start"]

    for trial in kill["finished"]:  # came back from the victim before it died: kept, never run again
        assert by_id[trial]["detail"]["node"] == victim and starts(trial) == [victim], (trial, ledger)
        assert Path(by_id[trial]["model_path"]).is_file()
    for trial in kill["in_flight"]:  # lost with the node: run again on the survivor, and finished there
        assert starts(trial) == [victim, survivor], (trial, ledger)
        assert by_id[trial]["detail"]["node"] == survivor
    # the sweep went on without the victim: nothing started there after it died, and trials did after
    assert not [e for e in ledger if e["node"] == victim and e["t"] > killed_at], ledger
    assert [e for e in ledger if e["node"] == survivor and e["event"] == "end" and e["t"] > killed_at]
