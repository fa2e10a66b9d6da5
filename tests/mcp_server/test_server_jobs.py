"""Jobs: SQLite records, concurrent sweeps, cancel that touches one job only, resume that keeps trials."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mcp_server.http_app import create_app
from mcp_server.jobs import JobManager, JobStore

QUICK = {"model": "digits-cnn", "goal": "under 40 KB with less than 1% accuracy loss"}


class Gate:
    """A job listener that holds the first job to finish a trial there until released; counts trials per job."""

    def __init__(self) -> None:
        self.held: str | None = None
        self.reached = threading.Event()
        self.release = threading.Event()
        self.trials: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, job_id: str, event: str, payload: dict[str, Any]) -> None:
        if event != "trial":
            return
        with self._lock:
            self.trials[job_id] = self.trials.get(job_id, 0) + 1
            hold = self.held is None
            if hold:
                self.held = job_id
        if hold:
            self.reached.set()
            assert self.release.wait(120), "the test never released the gate"


@pytest.fixture
def gated(make_settings: Any, tiny_sweep: Any) -> Iterator[tuple[Any, Gate, dict[str, Any]]]:
    """A server whose first sweep to finish a trial is held there; plus arguments of a multi-trial sweep."""
    app = create_app(make_settings(max_concurrent_jobs=2))
    gate = Gate()
    app.state.services.jobs.add_listener(gate)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c, gate, tiny_sweep(c)
        gate.release.set()


def _start(client: Any, args: dict[str, Any]) -> str:
    r = client.post("/tools/run_sweep", json=args)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["state"] in ("queued", "running")
    return str(r.json()["result"]["job_id"])


def _hold_next_job(client: Any, gate: Gate, args: dict[str, Any]) -> str:
    """Start a sweep (alone) and wait until the gate holds it at its first finished trial."""
    job_id = _start(client, args)
    assert gate.reached.wait(120)
    assert gate.held == job_id
    return job_id


def test_jobs_two_sweeps_run_at_once_and_cancel_stops_only_one(gated: Any, wait_job: Any) -> None:
    client, gate, multi = gated
    held = _hold_next_job(client, gate, multi)
    other = _start(client, QUICK)
    # the second sweep finishes while the first is still running (held): they run at once
    assert wait_job(client, other)["state"] == "succeeded"
    assert client.get(f"/jobs/{held}").json()["state"] == "running"

    cancelled = client.post("/tools/cancel_job", json={"job_id": held}).json()["result"]
    assert cancelled["cancel_requested"] is True
    gate.release.set()
    job = wait_job(client, held)
    assert job["state"] == "cancelled" and job["resumable"] is True
    assert job["trials_finished"] >= 1
    assert client.get(f"/jobs/{other}").json()["state"] == "succeeded"
    assert client.get(f"/jobs/{other}/report").json()["report"]["recommended"]


def test_jobs_resume_of_a_cancelled_sweep_keeps_its_finished_trials(gated: Any, wait_job: Any) -> None:
    client, gate, multi = gated
    job_id = _hold_next_job(client, gate, multi)
    client.post("/tools/cancel_job", json={"job_id": job_id})
    gate.release.set()
    before = wait_job(client, job_id)
    kept = {t["id"]: t["seconds"] for t in before["trials"]}
    runs_before = gate.trials[job_id]

    resumed = client.post("/tools/run_sweep", json={"resume_job_id": job_id})
    assert resumed.status_code == 200 and resumed.json()["result"]["job_id"] == job_id
    after = wait_job(client, job_id)
    assert after["state"] == "succeeded" and after["progress"]["resumed_trials"] == len(kept)
    report = client.get(f"/jobs/{job_id}/report").json()["report"]
    seconds = {c["id"]: c["seconds"] for c in report["candidates"]}
    assert len(seconds) == report["grid_size"] > len(kept)
    assert all(seconds[cid] == s for cid, s in kept.items())
    assert gate.trials[job_id] - runs_before == len(seconds) - len(kept)  # nothing kept was run again


def test_jobs_cancel_of_a_queued_job_cancels_it_before_it_runs(
    make_settings: Any, wait_job: Any, tiny_sweep: Any
) -> None:
    app = create_app(make_settings(max_concurrent_jobs=1))
    gate = Gate()
    app.state.services.jobs.add_listener(gate)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        first = _hold_next_job(client, gate, tiny_sweep(client))
        queued = _start(client, QUICK)
        assert client.get(f"/jobs/{queued}").json()["state"] == "queued"
        r = client.post("/tools/cancel_job", json={"job_id": queued}).json()["result"]
        assert r["state"] == "cancelled"
        gate.release.set()
        assert wait_job(client, first)["state"] == "succeeded"
        assert wait_job(client, queued)["trials_finished"] == 0
        assert queued not in gate.trials


def test_jobs_report_of_a_running_job_is_a_409_with_a_hint(gated: Any) -> None:
    client, gate, multi = gated
    job_id = _hold_next_job(client, gate, multi)
    r = client.post("/tools/get_pareto_report", json={"job_id": job_id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_state"
    assert "get_job" in r.json()["error"]["hint"]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["trials_finished"] >= 1 and job["trials"][0]["artifact_id"].startswith(f"{job_id}/candidates/")


def test_jobs_cancel_from_another_process_reaches_the_runner(
    gated: Any, wait_job: Any, settings: Any
) -> None:
    client, gate, multi = gated
    job_id = _hold_next_job(client, gate, multi)
    other = JobStore(settings.db_path)  # a second connection, as another server process would have
    other.request_cancel(job_id)
    other.close()
    gate.release.set()
    assert wait_job(client, job_id)["state"] == "cancelled"


def test_job_store_marks_jobs_of_a_dead_server_interrupted_and_leaves_live_ones(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    import socket

    dead = store.create("sweep", {"model": "m"}, owner=f"{socket.gethostname()}:999999999:dead")
    store.transition(dead.id, ("queued",), "running")
    live_manager = JobManager(store, tmp_path / "work")
    live = store.create("sweep", {"model": "m"}, owner=live_manager.owner)
    store.transition(live.id, ("queued",), "running")

    JobManager(store, tmp_path / "work")  # a second server starts on the same home
    assert store.get(dead.id).state == "interrupted"
    assert store.get(dead.id).error and store.get(dead.id).error["code"] == "job_interrupted"  # type: ignore[index]
    assert store.get(live.id).state == "running"
    live_manager.shutdown(timeout=1)
    JobManager(store, tmp_path / "work")
    assert store.get(live.id).state == "interrupted"
    store.close()


def test_job_store_transition_is_atomic_under_concurrent_callers(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create("sweep", {}, owner="x:1:y")
    wins: list[bool] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        wins.append(store.transition(job.id, ("queued",), "running"))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and store.get(job.id).state == "running"
    store.close()


def test_jobs_wait_returns_after_timeout_for_a_job_that_stays_queued(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    manager = JobManager(store, tmp_path / "work")
    job = store.create("sweep", {}, owner=manager.owner)
    t0 = time.monotonic()
    assert manager.wait(job.id, timeout=0.3).state == "queued"
    assert time.monotonic() - t0 < 5
    manager.shutdown(timeout=1)
    store.close()


def test_jobs_a_sweep_that_fails_keeps_its_error_and_can_be_retried(client: Any, wait_job: Any) -> None:
    # digits-cnn has no MatMul, so an int4-only goal excludes every recipe: the job itself fails
    r = client.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": "int4 only, under 1 MB"})
    job_id = r.json()["result"]["job_id"]
    job = wait_job(client, job_id)
    assert job["state"] == "failed" and job["error"]["code"] == "goal_invalid" and job["resumable"] is True
    assert client.post("/tools/get_pareto_report", json={"job_id": job_id}).status_code == 409
    cancel = client.post("/tools/cancel_job", json={"job_id": job_id})
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "job_state"
    assert client.post("/tools/run_sweep", json={"resume_job_id": job_id}).status_code == 200
    assert wait_job(client, job_id)["state"] == "failed"
