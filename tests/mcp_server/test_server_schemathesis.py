"""Schemathesis against the OpenAPI schema of a live uvicorn: generated requests never cause a server error."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_server.http_app import create_app


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(settings: Any, live_server: Any, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if exe is None:
        pytest.skip("schemathesis is not installed (it is a dev dependency: pip install -e '.[dev]')")
    with live_server(create_app(settings)) as url:
        proc = subprocess.run(
            [
                exe,
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "10",
                "--exclude-operation-id",
                "run_sweep",  # starts real sweeps; its bad inputs are in the bad-input suite
                "--workers",
                "2",
                "--request-timeout",
                "60",
                "--seed",
                "1",
                "--suppress-health-check",
                "all",
                "--generation-database",
                "none",
                "--no-color",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            check=False,
        )
    tail = proc.stdout[-4000:]
    assert proc.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", tail)
    assert counts is not None and counts[1] == counts[2] and int(counts[1]) >= 200, tail
