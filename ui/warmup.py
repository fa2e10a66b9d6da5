"""The page's start in the background: a browser session's assistant is opened, and the heavy modules are imported,
on threads of their own, so the first view (title, welcome, chat input) is drawn at once instead of after the
seconds that imports and the tool session take.

The threads live as long as the process (a thread pool that is never shut down): the page's sessions share them,
and what they start (the tool session's event loop, Ray through :mod:`optimizer.search.runtime`) outlives a single
script run.
"""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.agent import Assistant

__all__ = ["start_assistant", "warm_imports"]

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="quanttaas-warmup")
_WARM: list[Future[None]] = []
_LOCK = threading.Lock()
#: what a first answer needs: the assistant, the tools and the library behind them, the charts (Altair)
_MODULES = (
    "assistant.agent",
    "mcp_server.tools",
    "optimizer.optimize",
    "ui.charts",
    "ui.downloads",
    # onnxruntime's quantization pre-processing imports onnxruntime.tools, which imports torch: tens of seconds
    # on a busy machine, paid by the first layer ranking unless it is paid here while the user reads the page
    "onnxruntime.tools",
)


def _import_all() -> None:
    for name in _MODULES:
        importlib.import_module(name)


def warm_imports() -> Future[None]:
    """Import the heavy modules once per process, in the background (later calls return the same future)."""
    with _LOCK:
        if not _WARM:
            _WARM.append(_POOL.submit(_import_all))
        return _WARM[0]


def start_assistant() -> Future[Assistant]:
    """Open a new assistant in the background (:func:`ui.session.make_assistant`); the future holds it, or
    the error that stopped it (e.g. a server named by ``QUANTTAAS_MCP_URL`` that is down)."""

    def make() -> Assistant:
        from ui.session import make_assistant

        return make_assistant()

    return _POOL.submit(make)
