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
                assistant = at.session_state["assistant"]
            except KeyError:  # the page never ran
                assistant = None
            if assistant is not None:
                assistant.close()


def texts(at: Any, kind: str) -> list[str]:
    """The values of every element of ``kind`` (``markdown``, ``error``, ``warning``, ``info``...)."""
    return [str(e.value) for e in getattr(at, kind)]
