"""The Ray runtime is owned at process level: it outlives the thread that first asked for it.

On Linux a local runtime's head processes (gcs_server, raylet) die with the thread that called ``ray.init()``;
60 s later the driver gives up on the GCS and kills the whole process. A Streamlit script run and a server's job
thread are short-lived threads, so the page and ``quanttaas serve`` died about a minute after their first sweep.
Each check runs in a fresh interpreter so the suite's own runtime is not involved.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from optimizer.errors import InputError
from optimizer.search.runtime import _join_target, _left_alone

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


# --------------------------------------------------------------------------- which cluster RAY_ADDRESS joins


def _write_address_file(tmp_path: Path, address: str) -> None:
    (tmp_path / "ray").mkdir(exist_ok=True)
    (tmp_path / "ray" / "ray_current_cluster").write_text(address)


@pytest.fixture
def ray_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ray's default temp dir (where ``ray start`` leaves its address file) moved into the test's tmp dir."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def listener() -> Iterator[str]:
    """``host:port`` of something that accepts connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def closed_address() -> str:
    """``host:port`` where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_join_target_auto_is_refused_when_ray_start_left_no_address(ray_tmpdir: Path) -> None:
    with pytest.raises(InputError, match="RAY_ADDRESS=auto names no Ray cluster") as err:
        _join_target("auto")
    assert "unset RAY_ADDRESS" in err.value.hint


def test_join_target_is_refused_at_once_when_nothing_answers(ray_tmpdir: Path, closed_address: str) -> None:
    _write_address_file(ray_tmpdir, closed_address)
    with pytest.raises(InputError, match=f"the address `ray start` left, {closed_address}.*nothing answers"):
        _join_target("auto")
    with pytest.raises(
        InputError, match=f"RAY_ADDRESS={closed_address} names no Ray cluster: nothing answers"
    ):
        _join_target(closed_address)


def test_join_target_auto_is_the_address_ray_start_left(ray_tmpdir: Path, listener: str) -> None:
    _write_address_file(ray_tmpdir, listener)
    assert _join_target("auto") == listener
    assert _join_target(listener) == listener
    assert _join_target("ray://head.example:10001") == "ray://head.example:10001"  # Ray Client: Ray checks it


def test_private_runtime_says_whether_the_ray_start_cluster_it_left_alone_answers(
    listener: str, closed_address: str
) -> None:
    assert f"is running at {listener} and was left alone: set RAY_ADDRESS=auto" in _left_alone(listener)
    assert f"left the address of a cluster at {closed_address} behind, and nothing answers" in _left_alone(
        closed_address
    )
