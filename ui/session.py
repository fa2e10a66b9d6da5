"""The assistant of a browser session: making it, the brain that answers it, and the model chosen for it.

An LLM key given in the sidebar lives only in the brain object of that session: never in the environment, never on
disk. Every assistant this process opens is closed when it exits (their event-loop threads would keep it alive).

The rest of the page's work lives by job: the chat history as data (:mod:`ui.chat`), uploads (:mod:`ui.uploads`),
reports out of answers (:mod:`ui.results`) and downloads (:mod:`ui.downloads`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.agent import Assistant

__all__ = [
    "Selection",
    "close_all_assistants",
    "is_offline",
    "make_assistant",
    "mentions_model",
    "page_server_settings",
    "sweep_budget_s",
    "transport_of",
    "use_llm",
]


_OPEN: weakref.WeakSet[Assistant] = weakref.WeakSet()
_CLOSE_HOOK: list[bool] = []


def close_all_assistants() -> None:
    """Close every assistant this process opened (their event-loop threads would keep it alive after Ctrl-C)."""
    for assistant in list(_OPEN):
        with contextlib.suppress(Exception):
            assistant.close()


def _close_at_exit() -> None:
    if _CLOSE_HOOK:
        return
    _CLOSE_HOOK.append(True)
    # threading's exit hooks run before the interpreter joins non-daemon threads (atexit runs after, too late)
    hook = getattr(threading, "_register_atexit", None)
    if hook is not None:
        hook(close_all_assistants)
    else:  # pragma: no cover - every CPython since 3.9 has it
        atexit.register(close_all_assistants)


#: what the page asks of a sweep run in its own process (a server's own settings decide for it): enough points
#: across the front for the charts to show what each megabyte buys, within a time budget
PAGE_FRONT_POINTS = 8
PAGE_TIME_BUDGET_S = 90.0


def page_server_settings() -> Any:
    """The settings of the page's in-process server: the environment's, with the page's front points and time
    budget unless ``QUANTTAAS_SWEEP_FRONT_POINTS`` / ``QUANTTAAS_SWEEP_TIME_BUDGET_S`` set them."""
    from mcp_server.settings import ServerSettings

    base = ServerSettings()
    update: dict[str, Any] = {}
    if "QUANTTAAS_SWEEP_FRONT_POINTS" not in os.environ:
        update["sweep_front_points"] = PAGE_FRONT_POINTS
    if "QUANTTAAS_SWEEP_TIME_BUDGET_S" not in os.environ:
        update["sweep_time_budget_s"] = PAGE_TIME_BUDGET_S
    return base.model_copy(update=update)


def make_assistant() -> Assistant:
    """A new assistant configured from the environment (``QUANTTAAS_*``): the offline planner unless
    ``QUANTTAAS_LLM`` names a model, the tools in process unless ``QUANTTAAS_MCP_URL`` names a server (the
    in-process server measures :data:`PAGE_FRONT_POINTS` across the front, see :func:`page_server_settings`).
    It is closed when the process exits (:func:`close_all_assistants`).

    Raises whatever opening the tool session raises (e.g. a server that cannot be reached).
    """
    from assistant.agent import Assistant
    from ui.charts import save_charts_html

    _close_at_exit()
    assistant = Assistant(chart_writer=save_charts_html, server_settings=page_server_settings())
    _OPEN.add(assistant)
    return assistant


def sweep_budget_s(assistant: Assistant) -> float | None:
    """The time budget of this assistant's sweeps for points across the front, when the page knows it (tools
    in process); None for a server, whose own settings decide."""
    if transport_of(assistant) != "in-process":
        return None
    settings = getattr(assistant.inner.tools, "_server_settings", None)
    value = getattr(settings, "sweep_time_budget_s", None)
    return float(value) if value is not None else None


def is_offline(model: str | None) -> bool:
    return not model or model.strip().lower() in ("", "offline", "offline-planner", "none")


def use_llm(
    assistant: Assistant, model: str | None, api_key: str | None = None, api_base: str | None = None
) -> str:
    """Make ``model`` (a litellm model string or an OpenAI-compatible base URL) answer this session, or the
    offline planner when ``model`` is empty or "offline". The key is held by the brain object only: it is not
    put in the environment (which every session of the process shares) and never written to disk.
    Returns the name of the brain now answering. Raises nothing.
    """
    inner = assistant.inner
    if is_offline(model):
        inner.brain = inner.planner
        return inner.brain.name
    from assistant.llm import LiteLLMBrain

    settings = inner.settings.model_copy(
        update={"llm": (model or "").strip(), "llm_api_base": (api_base or "").strip() or None}
    )
    brain = LiteLLMBrain(settings)
    if api_key:
        brain.api_key = api_key
    inner.brain = brain
    return brain.name


def transport_of(assistant: Assistant) -> str:
    """``in-process``, ``http <url>`` or ``stdio <command>``."""
    return str(assistant.inner.tools.transport)


@dataclass
class Selection:
    """The model (a zoo name or a stored id) and data (a stored id) the next request is about."""

    model: str
    data: str | None
    label: str
    summary: str
    calib: str | None = None


def mentions_model(text: str, names: list[str]) -> bool:
    """True when ``text`` names one of ``names`` (a zoo name or a stored id), as a whole word."""
    for name in names:
        if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
            return True
    return False
