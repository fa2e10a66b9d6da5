"""Fixtures for the assistant tests: the shared zoo cache, a private server home, real in-process MCP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ZOO_DIR = Path(
    os.environ.get("QUANTTAAS_ZOO_DIR") or Path(os.environ.get("QUANTTAAS_HOME", REPO / ".quanttaas")) / "zoo"
)
GOAL_MET = "make digits-cnn under 40 KB with less than 1% accuracy loss"
GOAL_IMPOSSIBLE = "make digits-cnn under 10 KB with less than 1% accuracy loss"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    """The shared zoo cache with digits-cnn built (about 10-30 s the first time)."""
    from optimizer import zoo

    zoo.get_zoo_case("digits-cnn", root=ZOO_DIR)
    return ZOO_DIR


@pytest.fixture
def server_settings(tmp_path: Path, zoo_dir: Path) -> Any:
    """An in-process server with its own home, the shared zoo, and serial sweeps (2 shared cores)."""
    from mcp_server.settings import ServerSettings

    return ServerSettings(home=tmp_path / "home", zoo_dir=zoo_dir, sweep_executor="serial")


@pytest.fixture
def offline_settings() -> Any:
    """Assistant settings with no LLM and the in-process transport, whatever the environment says."""
    from assistant.settings import AssistantSettings

    return AssistantSettings(llm="offline", mcp_url=None, mcp_command=None, poll_interval_s=0.2)
