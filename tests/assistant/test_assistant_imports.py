"""The assistant reaches the optimizer only through MCP tools: none of its modules imports it (or the server)."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = [
    "assistant",
    "assistant.agent",
    "assistant.planner",
    "assistant.planner.workflow",
    "assistant.techniques",
    "assistant.honesty",
    "assistant.answers",
    "assistant.connection",
    "assistant.llm",
    "assistant.cli",
]


def test_assistant_modules_import_neither_the_optimizer_nor_the_server_nor_litellm() -> None:
    # the one module of the library the assistant may use is the pure formatter optimizer.units (tests/test_layers.py)
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "heavy = ('optimizer', 'mcp_server', 'litellm', 'torch', 'onnxruntime')\n"
        "allowed = ('optimizer', 'optimizer.units')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy and m not in allowed)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
