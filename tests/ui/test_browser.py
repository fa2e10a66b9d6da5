"""The page in a real browser: start the app, load it in headless Chromium, send a request, wait for the answer
and the charts, and save screenshots (under the test's tmp folder, and the full page as ``out/ui-screenshot.png``).

Skips with a clear message when Debian's ``chromium`` is not installed (``make test`` installs it when it runs as
root with apt).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHARTS, DRAWN_CHARTS, INPUT_READY, PAGE_TEXT, BrowserError, Chromium, find_chromium
from uikit import REPO, SWEEP_REQUEST, serve_app


@pytest.fixture
def app_url(tmp_path: Path, zoo_dir: Path) -> Iterator[str]:
    """The page served by ``streamlit run`` on a free loopback port (offline planner, a private home)."""
    with serve_app(tmp_path, zoo_dir) as (url, _proc, _log):
        yield url


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
        # the page shows at once and starts the assistant in the background: its name follows when it is ready
        browser.wait_for(
            f"{PAGE_TEXT}.includes('offline planner (no LLM)')", 120, "the assistant's name on the page"
        )
        browser.screenshot(shots / "01-start.png")

        browser.send_chat(SWEEP_REQUEST)
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
