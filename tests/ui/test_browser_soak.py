"""The page stays up after its sweeps on Ray, as `make run` serves it: one browser sends five requests one after
another (two of them sweeps), a second browser joins and both ask at once, then more than 60 s of quiet, and both
pages still answer with their whole history.

Before the runtime was owned at process level, the first sweep started Ray from the Streamlit script thread; when
that run ended, Ray's head processes died with it, and about 60 s later the driver terminated the whole Streamlit
server ("Failed to connect to GCS within 60 seconds"): the browser showed "Streamlit server is not responding".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from browser import CHAT_MESSAGES, INPUT_READY, PAGE_TEXT, BrowserError, Chromium, find_chromium
from uikit import SWEEP_REQUEST, serve_app

QUIET_S = 70  # longer than Ray's 60 s GCS time-out, which is what killed the server
TURN_TIMEOUT_S = 420
FIRST_PAGE = [
    SWEEP_REQUEST,
    "what did you try?",
    "make digits-cnn under 30 KB with at most 2% accuracy loss",
    "why not int4?",
    "which candidate do you recommend?",
]
SECOND_PAGE = "make digits-cnn as small as possible with at most 1% accuracy loss"


def _answered(browser: Chromium, turns: int, what: str, proc: Any, log: Path) -> str:
    """Wait until the page shows ``turns`` questions with their answers and takes input again; its text.
    Fails at once, with the server's log, when the page's server has exited."""
    done = f"{CHAT_MESSAGES} >= {2 * turns} && {INPUT_READY}"
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while True:
        assert proc.poll() is None, (
            f"the page's server exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        )
        try:
            browser.wait_for(done, 10, what)
            break
        except BrowserError:
            if time.monotonic() > deadline:
                raise
    time.sleep(1.0)
    browser.wait_for(done, 30, what)  # still settled a second later (not between two reruns)
    return str(browser.evaluate(PAGE_TEXT))


@pytest.mark.slow
@pytest.mark.soak
def test_browser_page_keeps_answering_after_ray_sweeps_and_a_quiet_minute(
    zoo_dir: Path, tmp_path: Path
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Debian's chromium is not installed, so the real-browser test cannot run "
            "(`make test` installs it when run as root with apt: apt-get install chromium)"
        )
    with (
        serve_app(tmp_path, zoo_dir, QUANTTAAS_SWEEP_EXECUTOR="ray") as (url, proc, log),
        Chromium(chromium, tmp_path / "profile-1") as first,
        Chromium(chromium, tmp_path / "profile-2") as second,
    ):
        first.goto(url)
        first.wait_for(INPUT_READY, 120, "the first page's chat input")
        for turn, request in enumerate(FIRST_PAGE, start=1):
            first.send_chat(request)
            _answered(first, turn, f"answer {turn} on the first page ({request!r})", proc, log)

        # a second browser session joins, and both ask at the same time
        second.goto(url)
        second.wait_for(INPUT_READY, 120, "the second page's chat input")
        second.send_chat(SECOND_PAGE)
        first.send_chat("what did you try?")
        _answered(second, 1, "the second page's sweep", proc, log)
        _answered(
            first, len(FIRST_PAGE) + 1, "the first page's answer beside the second page's sweep", proc, log
        )

        time.sleep(QUIET_S)
        assert proc.poll() is None, f"the page's server exited:\n{log.read_text()[-3000:]}"
        first.send_chat("which candidate do you recommend?")
        second.send_chat("what did you try?")
        text_first = _answered(first, len(FIRST_PAGE) + 2, "the first page after a quiet minute", proc, log)
        text_second = _answered(second, 2, "the second page after a quiet minute", proc, log)

        # the history of each session is still there, and each session kept to its own
        for request in FIRST_PAGE:
            assert request in text_first
        assert SECOND_PAGE in text_second and SWEEP_REQUEST not in text_second
        for text in (text_first, text_second):
            assert "not responding" not in text and "Traceback" not in text
        assert proc.poll() is None
    assert "Failed to connect to GCS" not in log.read_text()
