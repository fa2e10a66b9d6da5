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
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in ('optimizer', 'mcp_server', 'litellm', 'torch', 'onnxruntime') "
        "if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
