"""Driver programs the cluster tests run INSIDE the local cluster's namespace (see :mod:`tests.cluster`).

Run from the project's root as ``python -m tests.cluster_drivers COMMAND ...``: this module is then ``__main__``,
so the trial function and the actor defined here travel to the worker nodes by value (cloudpickle), and the nodes
never need to import the tests (and the root, not tests/ with its ``optimizer`` folder, is first on sys.path). Each command prints JSON lines on stdout; the last one is its result.

- ``lost-node``: a sweep on digits-cnn whose trials last a few seconds; once a trial that ran on the victim node
  has come back to the driver while another trial is in flight there, it prints ``{"event": "kill", ...}`` and
  the test kills that node; the result holds the report and a ledger of where every attempt started and ended.
- ``serve``: starts ``quanttaas serve`` (trials on the cluster ``RAY_ADDRESS`` names), submits a sweep over HTTP,
  and while the job runs asks ``/health`` and ``/jobs`` (list_jobs) every quarter second, timing each answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

GOAL = "under 40 KB with less than 1% accuracy loss"


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


# --------------------------------------------------------------------------- lost-node


class Ledger:
    """Where each trial attempt started and ended (an actor on the head node, which the test never kills)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, trial: str, node: str, what: str) -> None:
        self.events.append({"trial": trial, "node": node, "event": what, "t": time.time()})

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.events)


def make_slow_trial(ledger: Any, seconds: float, names: dict[str, str]) -> Any:
    """A trial that records its start, holds its slot for ``seconds`` (so it is in flight when a node dies),
    then runs the real trial and records where it ran in the candidate's detail."""

    def slow_trial(spec: Any, inputs: Any) -> Any:
        import ray

        from optimizer.search.trial import run_trial

        node = names.get(ray.get_runtime_context().get_node_id(), "?")
        ray.get(ledger.record.remote(spec.id, node, "start"))
        time.sleep(seconds)
        cand, blob = run_trial(spec, inputs)
        ray.get(ledger.record.remote(spec.id, node, "end"))
        return cand.model_copy(update={"detail": {**cand.detail, "node": node}}), blob

    return slow_trial


def lost_node(args: argparse.Namespace) -> int:
    from optimizer import zoo
    from optimizer.goals.parse import parse_goal
    from optimizer.measure.data import load_data
    from optimizer.models.inspect import inspect_model
    from optimizer.search.runtime import ensure_ray
    from optimizer.search.sweep import SweepEvent, SweepOptions, run_sweep

    ray = ensure_ray()
    known = args.nodes.split(",")
    names = {
        n["NodeID"]: next((k for k in n["Resources"] if k in known), "head")
        for n in ray.nodes()
        if n["Alive"]
    }
    # on the head (no CPUs, never killed): the ledger outlives the victim
    ledger = ray.remote(Ledger).options(num_cpus=0, resources={"node:__internal_head__": 0.001}).remote()
    ray.get(ledger.snapshot.remote())
    received: list[dict[str, Any]] = []
    kill_sent = threading.Event()

    def on_event(e: SweepEvent) -> None:
        if e.kind == "trial" and e.candidate is not None:
            received.append({"id": e.candidate.id, "node": e.candidate.detail.get("node"), "t": time.time()})

    def watch() -> None:
        """Ask for the kill once a trial from the victim came back AND another is in flight there."""
        while not kill_sent.is_set():
            time.sleep(0.25)
            done = [r["id"] for r in received if r["node"] == args.victim]
            events = ray.get(ledger.snapshot.remote())
            # in flight and started lately: seconds of its wait are left when the node dies
            fresh = {
                e["trial"]
                for e in events
                if e["event"] == "start"
                and e["node"] == args.victim
                and time.time() - e["t"] < args.seconds / 2
            }
            ended = {e["trial"] for e in events if e["event"] == "end" and e["node"] == args.victim}
            in_flight = sorted(fresh - ended)
            if done and in_flight:
                emit({"event": "kill", "victim": args.victim, "finished": done, "in_flight": in_flight})
                kill_sent.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    case = zoo.get_zoo_case("digits-cnn")
    inputs = inspect_model(case.model_path).inputs
    report = run_sweep(
        case.model_path,
        load_data(case.eval_path, inputs),
        calib=load_data(case.calib_path, inputs, metric="agreement"),
        goal=parse_goal("under 40 KB"),
        out_dir=args.out,
        options=SweepOptions(
            executor="ray", exhaustive=True, profile=False, latency_runs=3, remeasure_runs=6
        ),
        progress=on_event,
        trial_fn=make_slow_trial(ledger, args.seconds, names),
    )
    kill_sent.set()
    emit(
        {
            "event": "result",
            "report": json.loads(report.model_dump_json()),
            "ledger": ray.get(ledger.snapshot.remote()),
            "received": received,
            "nodes": sorted(names.values()),
        }
    )
    return 0


# --------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(args: argparse.Namespace) -> int:
    import httpx

    port = _free_port()
    exe = Path(sys.executable).with_name("quanttaas")
    env = {
        **os.environ,
        "QUANTTAAS_HOME": args.home,
        "QUANTTAAS_ZOO_DIR": args.zoo_dir,
        "QUANTTAAS_SWEEP_EXECUTOR": "ray",
    }
    log = open(Path(args.home) / "serve.log", "w")  # noqa: SIM115 (closed below, after the server)
    server = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    try:
        # a new connection per request: a kept-alive one that the server closes after 5 idle seconds (uvicorn's
        # keep-alive) while a starved client is about to reuse it is reset, a race of the client's, not an answer
        no_keep_alive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=args.timeout, limits=no_keep_alive) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
            started = c.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": GOAL})
            started.raise_for_status()
            job_id = started.json()["result"]["job_id"]
            deadline = time.monotonic() + args.limit
            job: dict[str, Any] = {}
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                health = c.get("/health")
                t1 = time.perf_counter()
                listed = c.get("/jobs", params={"limit": 5})
                t2 = time.perf_counter()
                job = c.get(f"/jobs/{job_id}", params={"include_trials": "false"}).json()
                samples.append(
                    {
                        "state": job["state"],
                        "phase": job.get("progress", {}).get("phase"),
                        "health_ms": (t1 - t0) * 1000,
                        "health_ok": health.status_code == 200,
                        "jobs_running": health.json().get("jobs_running"),
                        "list_jobs_ms": (t2 - t1) * 1000,
                        "list_jobs_ok": listed.status_code == 200
                        and any(j["job_id"] == job_id for j in listed.json()["jobs"]),
                    }
                )
                if job["state"] not in ("queued", "running"):
                    break
                time.sleep(0.25)
            report = c.get(f"/jobs/{job_id}/report").json() if job.get("state") == "succeeded" else None
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    emit({"event": "result", "job": job, "samples": samples, "report": report})
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="cluster_drivers")
    sub = ap.add_subparsers(dest="command", required=True)
    ln = sub.add_parser("lost-node")
    ln.add_argument("--out", required=True)
    ln.add_argument("--victim", required=True)
    ln.add_argument("--nodes", required=True, help="the worker nodes' names, comma-separated")
    ln.add_argument("--seconds", type=float, default=5.0)
    ln.set_defaults(func=lost_node)
    sv = sub.add_parser("serve")
    sv.add_argument("--home", required=True)
    sv.add_argument("--zoo-dir", required=True)
    sv.add_argument("--timeout", type=float, default=10.0, help="HTTP client timeout (s)")
    sv.add_argument("--limit", type=float, default=400.0, help="give up on the job after this many seconds")
    sv.set_defaults(func=serve)
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
