"""Fixtures every test folder may use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# never let a test reach the network or write usage statistics
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def quanttaas_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private QUANTTAAS_HOME (model store, jobs, zoo cache) for one test; the settings cache is reset."""
    from optimizer.settings import get_settings

    home = tmp_path / "quanttaas-home"
    home.mkdir()
    monkeypatch.setenv("QUANTTAAS_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
