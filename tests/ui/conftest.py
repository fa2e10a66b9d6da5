"""Fixtures for the page's tests: the shared zoo cache, a private home per test, the offline planner, serial
sweeps (2 shared cores), and Streamlit's AppTest on ``ui/app.py`` (helpers in ``uikit``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from uikit import ZOO_DIR, app_test


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    """The shared zoo cache with digits-cnn built (about 10-30 s the first time)."""
    from optimizer import zoo

    zoo.get_zoo_case("digits-cnn", root=ZOO_DIR)
    return ZOO_DIR


@pytest.fixture
def new_app(tmp_path: Path, zoo_dir: Path) -> Iterator[Callable[[], Any]]:
    """Opens AppTests of the page, each with its own home under this test's tmp_path."""
    with ExitStack() as stack:
        count = iter(range(1000))
        yield lambda: stack.enter_context(app_test(tmp_path / f"home{next(count)}", zoo_dir))
