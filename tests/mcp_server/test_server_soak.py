"""`quanttaas serve` stays up after its sweeps on Ray: three sweeps in a row over HTTP, 90 s of quiet, and a fourth
that succeeds on the same process.

Before the runtime was owned at process level, the first sweep started Ray from its job thread; when that thread
ended, Ray's head processes died with it, and about 60 s later the driver gave up on the GCS and terminated the
server with every job beside it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testdata import free_port, wait_http_ready

QUIET_S = 90  # longer than Ray's 60 s GCS time-out, which is what killed the process


def _sweep(http: httpx.Client, args: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    r = http.post("/tools/run_sweep", json=args)
    assert r.status_code == 200, r.text
    job_id = r.json()["result"]["job_id"]
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.soak
def test_serve_survives_quiet_after_ray_sweeps_and_runs_another(
    server_env: Any, quanttaas_exe: list[str], tiny_onnx: Path, tiny_npz: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*quanttaas_exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(QUANTTAAS_SWEEP_EXECUTOR="ray"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(base, proc, log)
        with httpx.Client(base_url=base, timeout=60) as http:
            model = http.post("/models", files={"file": ("tiny.onnx", tiny_onnx.read_bytes())}).json()
            data = http.post("/data", files={"file": ("tiny_eval.npz", tiny_npz.read_bytes())}).json()
            args = {
                "model": model["model"]["id"],
                "data": data["data"]["id"],
                "goal": "the most accurate model",
            }
            for i in range(3):
                job = _sweep(http, args)
                assert job["state"] == "succeeded", (i, job, log.read_text()[-3000:])
            time.sleep(QUIET_S)
            assert proc.poll() is None, (
                f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
            assert http.get("/health").status_code == 200
            job = _sweep(http, args)
            assert job["state"] == "succeeded", (job, log.read_text()[-3000:])
            assert len(http.get("/jobs").json()["jobs"]) == 4
        assert proc.poll() is None
        assert "Failed to connect to GCS" not in log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
