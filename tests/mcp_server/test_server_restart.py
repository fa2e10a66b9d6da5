"""A server killed in the middle of a sweep: the job reads interrupted, its finished trials are kept, and
run_sweep resumes it without running them again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mcp_server.http_app import create_app

CRASH_AFTER = 3

# A server process that dies (os._exit, no clean-up at all) right after its 3rd trial is stored.
SERVER = textwrap.dedent(
    f"""
    import os, sys
    from mcp_server.services import Services
    from mcp_server.settings import ServerSettings
    from mcp_server.tools import call_tool

    services = Services(ServerSettings(sweep_executor="serial"))

    def crash(job_id, event, payload):
        if event == "trial" and services.job_store.count_trials(job_id) >= {CRASH_AFTER}:
            os._exit(9)

    services.jobs.add_listener(crash)
    model = call_tool(services, "register_model", {{"path": sys.argv[1]}}).result.model.id
    data = call_tool(services, "register_data", {{"path": sys.argv[2]}}).result.data.id
    args = {{"model": model, "data": data, "goal": "the most accurate model", "exhaustive": True}}
    out = call_tool(services, "run_sweep", args)
    print("JOB=" + out.result.job_id, flush=True)
    services.jobs.wait(out.result.job_id, timeout=600)
    sys.exit(3)
    """
)


@pytest.mark.slow
def test_restart_mid_sweep_keeps_finished_trials_and_resume_finishes_it(
    server_env: Any, make_settings: Any, wait_job: Any, tiny_onnx: Path, tiny_npz: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SERVER, str(tiny_onnx), str(tiny_npz)],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    job_id = next(line[4:] for line in proc.stdout.splitlines() if line.startswith("JOB="))

    with TestClient(create_app(make_settings()), base_url="http://127.0.0.1") as client:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["state"] == "interrupted" and job["resumable"] is True
        assert job["error"]["code"] == "job_interrupted"
        assert job["trials_finished"] == CRASH_AFTER
        kept = {t["id"]: t["seconds"] for t in job["trials"]}

        r = client.post("/tools/run_sweep", json={"resume_job_id": job_id})
        assert r.status_code == 200, r.text
        done = wait_job(client, job_id)
        assert done["state"] == "succeeded", done
        assert done["progress"]["resumed_trials"] == CRASH_AFTER

        report = client.get(f"/jobs/{job_id}/report").json()["report"]
        seconds = {c["id"]: c["seconds"] for c in report["candidates"]}
        assert len(seconds) == report["grid_size"] > CRASH_AFTER
        assert all(seconds[cid] == s for cid, s in kept.items())  # the kept trials were not run again
        again = client.post("/tools/run_sweep", json={"resume_job_id": job_id})
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_state"
