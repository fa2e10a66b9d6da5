"""`import optimizer` stays light: the heavy backends load only where they are used (DESIGN.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "onnxruntime", "ray")
LIGHT_MODULES = [
    "optimizer",
    "optimizer.types",
    "optimizer.errors",
    "optimizer.settings",
    "optimizer.measure.metrics",
]
OPTIONAL_LIGHT_MODULES = ["optimizer.goals.parse", "optimizer.search.pareto"]


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _heavy_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", LIGHT_MODULES + [m for m in OPTIONAL_LIGHT_MODULES if _present(m)])
def test_import_light_module_does_not_import_heavy_backends(module: str) -> None:
    assert _heavy_after_import(module) == []


def test_import_light_check_detects_a_heavy_import() -> None:
    # the probe itself can fail: a module that pulls in a backend is reported
    assert _heavy_after_import("onnxruntime") == ["onnxruntime"]
