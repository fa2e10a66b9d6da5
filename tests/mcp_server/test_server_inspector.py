"""The stdio server driven by the official MCP Inspector CLI (npm @modelcontextprotocol/inspector).

The Inspector is installed once into ``.quanttaas/inspector`` (git-ignored); the test is skipped, saying why, where
Node.js/npm is missing or the package cannot be installed (no network).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INSPECTOR_DIR = REPO / ".quanttaas" / "inspector"
INSPECTOR_BIN = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture(scope="session")
def inspector() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(
            "Node.js/npm is not installed: the MCP Inspector CLI test needs them (apt install nodejs npm)"
        )
    if not INSPECTOR_BIN.exists():
        INSPECTOR_DIR.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(
                [
                    "npm",
                    "install",
                    "--prefix",
                    str(INSPECTOR_DIR),
                    "--no-audit",
                    "--no-fund",
                    "@modelcontextprotocol/inspector",
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install @modelcontextprotocol/inspector timed out (no network?)")
        if proc.returncode != 0 or not INSPECTOR_BIN.exists():
            pytest.skip(
                f"could not install @modelcontextprotocol/inspector (no network?): {proc.stderr[-300:]}"
            )
    return INSPECTOR_BIN


def _run(inspector: Path, server: list[str], env: dict[str, str], *method: str) -> Any:
    env_flags = [f for key in ("QUANTTAAS_HOME", "QUANTTAAS_ZOO_DIR") for f in ("-e", f"{key}={env[key]}")]
    proc = subprocess.run(
        [str(inspector), "--cli", *env_flags, *server, *method],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_inspector_cli_lists_tools_and_calls_inspect_model(
    inspector: Path, quanttaas_exe: list[str], server_env: Any
) -> None:
    server = [*quanttaas_exe, "mcp"]
    listed = _run(inspector, server, server_env(), "--method", "tools/list")
    names = [t["name"] for t in listed["tools"]]
    assert "inspect_model" in names and "run_sweep" in names
    schema = next(t for t in listed["tools"] if t["name"] == "inspect_model")["inputSchema"]
    assert schema["required"] == ["model"]

    called = _run(
        inspector,
        server,
        server_env(),
        "--method",
        "tools/call",
        "--tool-name",
        "inspect_model",
        "--tool-arg",
        "model=digits-cnn",
    )
    assert called.get("isError") in (None, False)
    assert called["structuredContent"]["opset"] == 17
    assert called["content"][0]["text"].startswith("ONNX opset 17")
