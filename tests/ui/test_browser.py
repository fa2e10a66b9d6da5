"""The page in a real browser: start the app, load it in headless Chromium, send a request, wait for the answer
and the charts, and save screenshots (under the test's tmp folder, and the full page as ``out/ui-screenshot.png``).

Skips with a clear message when Debian's ``chromium`` is not installed (``make test`` installs it when it runs as
root with apt).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import BrowserError, Chromium, find_chromium
from uikit import APP, REPO, SWEEP_REQUEST, app_environment

CHAT_INPUT = '[data-testid="stChatInputTextArea"]'
CHARTS = '[data-testid="stVegaLiteChart"]'
DRAWN_CHARTS = (
    f"Array.from(document.querySelectorAll('{CHARTS}'))"
    ".filter(c => Array.from(c.querySelectorAll('canvas, svg.marks'))"
    ".some(g => g.getBoundingClientRect().height > 100)).length"
)
INPUT_READY = f"(() => {{ const t = document.querySelector('{CHAT_INPUT}'); return !!t && !t.disabled; }})()"
PAGE_TEXT = "document.body.innerText"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the app did not answer on {url} in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(tmp_path: Path, zoo_dir: Path) -> Iterator[str]:
    """The page served by ``streamlit run`` on a free loopback port (offline planner, a private home)."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, **app_environment(tmp_path / "home", zoo_dir)}
    for key in ("QUANTTAAS_MCP_URL", "QUANTTAAS_MCP_COMMAND"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_browser_chat_request_shows_the_answer_and_the_charts(app_url: str, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Debian's chromium is not installed, so the real-browser test cannot run "
            "(`make test` installs it when run as root with apt: apt-get install chromium)"
        )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Chromium(chromium, tmp_path / "chromium-profile", width=1280, height=900) as browser:
        browser.goto(app_url)
        browser.wait_for(INPUT_READY, 120, "the chat input")
        assert "offline planner (no LLM)" in browser.evaluate(PAGE_TEXT)
        browser.screenshot(shots / "01-start.png")

        browser.evaluate(f"document.querySelector('{CHAT_INPUT}').focus()")
        browser.type_text(SWEEP_REQUEST)
        browser.press_enter()
        # best effort: catch the sweep's progress bar (a small sweep may finish between two polls)
        with contextlib.suppress(BrowserError):
            browser.wait_for(
                f"document.body.innerText.includes('Running the compression sweep') || {DRAWN_CHARTS} >= 1",
                240,
                "the sweep",
                interval=0.2,
            )
        browser.screenshot(shots / "02-working.png", height=1400)  # tall enough to show the running step

        browser.wait_for(f"{DRAWN_CHARTS} >= 3 && {INPUT_READY}", 420, "the answer and its three charts")
        time.sleep(2)  # let the last charts finish drawing
        text = browser.evaluate(PAGE_TEXT)
        assert "goal met" in text
        assert "Before / after" in text and "Deployable package (zip)" in text
        assert browser.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length") == 0
        assert "Traceback" not in text

        browser.evaluate(f"document.querySelector('{CHARTS}').scrollIntoView()")
        time.sleep(1)
        browser.screenshot(shots / "03-charts.png")
        height = int(
            browser.evaluate(
                "Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))"
            )
        )
        full = browser.screenshot(shots / "04-full-page.png", height=min(height + 120, 8000))

    for shot in sorted(shots.iterdir()):
        assert shot.stat().st_size > 10_000, f"{shot.name} looks blank"
    out = REPO / "out"
    out.mkdir(exist_ok=True)
    shutil.copyfile(full, out / "ui-screenshot.png")
    shutil.copyfile(shots / "02-working.png", out / "ui-screenshot-working.png")
    shutil.copyfile(shots / "03-charts.png", out / "ui-screenshot-charts.png")
