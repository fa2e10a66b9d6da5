"""Helpers for the page's tests: the environment the page runs in, an AppTest of it, what it shows."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "ui" / "app.py"
ZOO_DIR = Path(
    os.environ.get("QUANTTAAS_ZOO_DIR") or Path(os.environ.get("QUANTTAAS_HOME", REPO / ".quanttaas")) / "zoo"
)
# a request that measures several candidates of digits-cnn (about 30 s on 2 busy cores)
SWEEP_REQUEST = "make digits-cnn smaller with at most 1% accuracy loss"
SWEEP_TIMEOUT_S = 420


def app_environment(home: Path, zoo_dir: Path) -> dict[str, str]:
    """The environment the page runs in for a test: offline planner, tools in process, a private home."""
    return {
        "QUANTTAAS_HOME": str(home),
        "QUANTTAAS_ZOO_DIR": str(zoo_dir),
        "QUANTTAAS_SWEEP_EXECUTOR": "serial",
        "QUANTTAAS_LLM": "offline",
        "QUANTTAAS_POLL_INTERVAL_S": "0.2",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


@contextmanager
def app_test(home: Path, zoo_dir: Path) -> Iterator[Any]:
    """A fresh AppTest of the page with its own home; its assistant is closed at the end."""
    from streamlit.testing.v1 import AppTest

    with pytest.MonkeyPatch.context() as mp:
        for key, value in app_environment(home, zoo_dir).items():
            mp.setenv(key, value)
        for key in ("QUANTTAAS_MCP_URL", "QUANTTAAS_MCP_COMMAND"):
            mp.delenv(key, raising=False)
        at = AppTest.from_file(str(APP), default_timeout=30)
        try:
            yield at
        finally:
            try:
                future = at.session_state["assistant_future"]
            except KeyError:  # the page never ran
                future = None
            if future is not None:
                try:
                    assistant = future.result(timeout=120)
                except Exception:  # it never opened: nothing to close
                    assistant = None
                if assistant is not None:
                    assistant.close()


def run_ready(at: Any) -> Any:
    """Run the page until its assistant (opened in the background) is ready and drawn in the sidebar."""
    at.run()
    at.session_state["assistant_future"].result(timeout=120)
    return at.run()


def texts(at: Any, kind: str) -> list[str]:
    """The values of every element of ``kind`` (``markdown``, ``error``, ``warning``, ``info``...)."""
    return [str(e.value) for e in getattr(at, kind)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: Any, log: Path, timeout: float = 120) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the app did not answer on {url} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def serve_app(tmp_path: Path, zoo_dir: Path, **env_overrides: str) -> Iterator[tuple[str, Any, Path]]:
    """``streamlit run ui/app.py`` on a free loopback port, as ``make run`` starts it (offline planner, a private
    home; serial sweeps unless ``env_overrides`` say otherwise). Yields the URL, the process and its log."""
    import subprocess
    import sys

    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, **app_environment(tmp_path / "home", zoo_dir), **env_overrides}
    for key in ("QUANTTAAS_MCP_URL", "QUANTTAAS_MCP_COMMAND"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
