"""The Ray runtime is owned at process level: it outlives the thread that first asked for it.

On Linux a local runtime's head processes (gcs_server, raylet) die with the thread that called ``ray.init()``;
60 s later the driver gives up on the GCS and kills the whole process. A Streamlit script run and a server's job
thread are short-lived threads, so the page and ``quanttaas serve`` died about a minute after their first sweep.
Each check runs in a fresh interpreter so the suite's own runtime is not involved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

_PROBE = textwrap.dedent(
    """
    import json, os, subprocess, threading, time
    os.environ.pop("RAY_ADDRESS", None)
    from optimizer.search.runtime import ensure_ray, runtime_info, shutdown_ray

    t = threading.Thread(target=lambda: ensure_ray(num_cpus=1))
    t.start()
    t.join()
    time.sleep(4)  # the parent-death signal arrives within a second of the thread's end
    ray = ensure_ray()
    states = {}
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)
            comm = fields[0].split("(", 1)[1]
        except OSError:
            continue
        if comm in ("gcs_server", "raylet") and os.getppid() != pid:
            with open(f"/proc/{pid}/status") as f:
                ppid = next(int(l.split()[1]) for l in f if l.startswith("PPid:"))
            if ppid == os.getpid():
                states[comm] = fields[1].split()[0]
    square = ray.get(ray.remote(lambda x: x * x).remote(7))
    info = runtime_info()
    shutdown_ray()
    print(json.dumps({"states": states, "square": square, "mode": info.mode, "reason": info.reason}))
    """
)


def test_ensure_ray_started_from_a_thread_that_ends_keeps_the_head_processes_alive() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # "Z" (zombie) is what the processes were before: killed when the starting thread exited
    assert set(result["states"]) == {"gcs_server", "raylet"}, result
    assert all(state in ("S", "R", "D") for state in result["states"].values()), result
    assert result["square"] == 49
    assert result["mode"] == "private" and "RAY_ADDRESS is not set" in result["reason"]
