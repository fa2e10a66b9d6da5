"""Fixtures for the server tests: one shared zoo cache, a private server home per test, real clients.

The zoo cache (digits-cnn builds in about 10 s) is shared by every test and by the server subprocesses they start
(``QUANTTAAS_ZOO_DIR``); everything a server writes (models, data, jobs, artifacts) goes to a per-test home.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from server_testdata import tiny_model

REPO = Path(__file__).resolve().parents[2]
# the same cache `make test` uses; a run without QUANTTAAS_HOME still never writes to the user's home
ZOO_DIR = Path(
    os.environ.get("QUANTTAAS_ZOO_DIR") or Path(os.environ.get("QUANTTAAS_HOME", REPO / ".quanttaas")) / "zoo"
)
os.environ.setdefault("QUANTTAAS_HOME", str(ZOO_DIR.parent))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    """The shared zoo cache, with digits-cnn built."""
    from optimizer import zoo

    zoo.get_zoo_case("digits-cnn", root=ZOO_DIR)
    return ZOO_DIR


@pytest.fixture
def server_home(tmp_path: Path) -> Path:
    home = tmp_path / "server-home"
    home.mkdir()
    return home


@pytest.fixture
def make_settings(server_home: Path, zoo_dir: Path) -> Callable[..., Any]:
    """ServerSettings for a private home (serial sweeps unless told otherwise)."""
    from mcp_server.settings import ServerSettings

    def make(**overrides: Any) -> ServerSettings:
        values: dict[str, Any] = {"home": server_home, "zoo_dir": zoo_dir, "sweep_executor": "serial"}
        values.update(overrides)
        return ServerSettings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Any]) -> Any:
    return make_settings()


@pytest.fixture
def services(settings: Any) -> Iterator[Any]:
    """The server's state as the product starts it: with the page's chart writer handed down."""
    from mcp_server.services import Services
    from ui.charts import save_charts_html

    svc = Services(settings, chart_writer=save_charts_html)
    yield svc
    svc.close()


@pytest.fixture
def app(settings: Any) -> Any:
    from mcp_server.http_app import create_app
    from mcp_server.services import Services
    from ui.charts import save_charts_html

    return create_app(settings, services=Services(settings, chart_writer=save_charts_html))


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    """FastAPI's TestClient with the app's lifespan running (jobs are stopped when it ends)."""
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def wait_job() -> Callable[..., dict[str, Any]]:
    """Poll GET /jobs/{id} through a TestClient until the job leaves queued/running; returns the job."""

    def wait(client: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
                return job
            time.sleep(0.2)

    return wait


# --------------------------------------------------------------------------- tiny files built in code


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), str(path))
    return path


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """Data for the tiny model: 64 samples of x[4] and labels from the model's own argmax."""
    from optimizer.measure.data import save_data

    x = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)
    w = numpy_helper.to_array(tiny_model().graph.initializer[0])
    labels = (x @ w.T).argmax(axis=1)
    return save_data(tmp_path / "tiny_eval.npz", {"x": x}, labels)


# --------------------------------------------------------------------------- a real uvicorn in a thread


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a daemon thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def live_server() -> Callable[[Any], Any]:
    return serve_in_thread


def subprocess_env(home: Path, zoo: Path, **extra: str) -> dict[str, str]:
    """Environment for a server subprocess: its own home, the shared zoo, serial sweeps, unbuffered output."""
    env = {
        **os.environ,
        "QUANTTAAS_HOME": str(home),
        "QUANTTAAS_ZOO_DIR": str(zoo),
        "QUANTTAAS_SWEEP_EXECUTOR": "serial",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@pytest.fixture
def server_env(server_home: Path, zoo_dir: Path) -> Callable[..., dict[str, str]]:
    return lambda **extra: subprocess_env(server_home, zoo_dir, **extra)


@pytest.fixture(scope="session")
def quanttaas_exe() -> list[str]:
    """The `quanttaas` command of this environment."""
    exe = Path(sys.executable).with_name("quanttaas")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "quanttaas"]


@pytest.fixture
def tiny_sweep(tiny_onnx: Path, tiny_npz: Path) -> Callable[[Any], dict[str, Any]]:
    """Register the tiny model and its data through a TestClient; returns run_sweep arguments for an exhaustive
    sweep of it (6 fast ONNX-only trials, whatever recipes the zoo models gain)."""

    def register(client: Any) -> dict[str, Any]:
        model = client.post("/models", files={"file": ("tiny.onnx", tiny_onnx.read_bytes())})
        data = client.post("/data", files={"file": ("tiny_eval.npz", tiny_npz.read_bytes())})
        assert model.status_code == 200 and data.status_code == 200, (model.text, data.text)
        return {
            "model": model.json()["model"]["id"],
            "data": data.json()["data"]["id"],
            "goal": "the most accurate model",
            "exhaustive": True,
        }

    return register
