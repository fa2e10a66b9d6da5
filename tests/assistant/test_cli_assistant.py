"""`quanttaas ask` and `quanttaas chat` as subprocesses on a fresh home with no LLM configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOAL_IMPOSSIBLE, GOAL_MET


def _exe() -> list[str]:
    exe = Path(sys.executable).with_name("quanttaas")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "quanttaas"]


def _env(home: Path, zoo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTTAAS_", "OPENAI_", "ANTHROPIC_"))}
    env.update(
        QUANTTAAS_HOME=str(home),
        QUANTTAAS_ZOO_DIR=str(zoo),
        QUANTTAAS_SWEEP_EXECUTOR="serial",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.slow
def test_cli_ask_answers_with_a_measured_recommendation_and_its_file(tmp_path: Path, zoo_dir: Path) -> None:
    out = tmp_path / "results"
    p = subprocess.run(
        [*_exe(), "ask", GOAL_MET, "--out", str(out)],
        env=_env(tmp_path / "home", zoo_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "goal met" in p.stdout and "offline-planner" in p.stderr
    # tool calls and what the libraries print go to stderr; stdout holds the answer only
    assert "> run_sweep(" in p.stderr and "Collecting tensor data" not in p.stdout
    model_file = re.search(r"model file (\S+\.onnx)", p.stdout)
    assert model_file is not None and Path(model_file.group(1)).is_file()
    saved = sorted(x.name for x in out.glob("*/*"))
    assert saved == ["best.onnx", "report.json"] and "Saved: model" in p.stdout


@pytest.mark.slow
def test_cli_ask_exits_3_and_says_why_when_the_goal_cannot_be_met(tmp_path: Path, zoo_dir: Path) -> None:
    p = subprocess.run(
        [*_exe(), "ask", GOAL_IMPOSSIBLE, "--quiet"],
        env=_env(tmp_path / "home", zoo_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 3, p.stderr[-2000:]
    assert "cannot be met" in p.stdout and "Why: the smallest model measured is" in p.stdout
    assert "> run_sweep(" not in p.stderr  # --quiet


def test_cli_chat_answers_each_line_until_exit(tmp_path: Path, zoo_dir: Path) -> None:
    p = subprocess.run(
        [*_exe(), "chat"],
        input="hello\nwhy not int4?\nexit\n",
        env=_env(tmp_path / "home", zoo_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("you> ") == 3
    assert "Tell me a model and a goal" in p.stdout and "not run a sweep" in p.stdout
