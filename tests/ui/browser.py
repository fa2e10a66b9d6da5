"""A minimal headless-Chromium driver over the DevTools protocol (a websocket), for the page's browser test.

Debian's ``chromium`` is started with a fresh profile and ``--remote-debugging-port=0``; the port it picked is read
from ``DevToolsActivePort`` in the profile. Nothing is downloaded (no Playwright browsers): only the installed
``chromium`` and the ``websockets`` package (a dependency of Streamlit) are used.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


# what the page's tests look for (Streamlit's test ids)
CHAT_INPUT = '[data-testid="stChatInputTextArea"]'
CHARTS = '[data-testid="stVegaLiteChart"]'
DRAWN_CHARTS = (
    f"Array.from(document.querySelectorAll('{CHARTS}'))"
    ".filter(c => Array.from(c.querySelectorAll('canvas, svg.marks'))"
    ".some(g => g.getBoundingClientRect().height > 100)).length"
)
INPUT_READY = f"(() => {{ const t = document.querySelector('{CHAT_INPUT}'); return !!t && !t.disabled; }})()"
PAGE_TEXT = "document.body.innerText"
CHAT_MESSAGES = "document.querySelectorAll('[data-testid=\"stChatMessage\"]').length"
MAIN_TEXT = "(document.querySelector('[data-testid=\"stMain\"]') || document.body).innerText"
SIDEBAR_TEXT = "(document.querySelector('[data-testid=\"stSidebar\"]') || document.body).innerText"
PROGRESS_VALUES = (
    'Array.from(document.querySelectorAll(\'[data-testid="stProgress"] [role="progressbar"]\'))'
    ".map(b => Number(b.getAttribute('aria-valuenow')))"
)


def js_text(text: str) -> str:
    """``text`` as a JavaScript string literal."""
    return json.dumps(text)


def has_button(text: str) -> str:
    """A JavaScript expression: whether a visible button's text contains ``text``."""
    return f"!!({button_by_text(text)})"


def button_by_text(text: str) -> str:
    """A JavaScript expression for the visible button whose text contains ``text`` (null when none)."""
    return (
        "Array.from(document.querySelectorAll('button'))"
        f".find(b => b.innerText.includes({js_text(text)}) && b.getBoundingClientRect().width > 0) || null"
    )


def find_chromium() -> str | None:
    """The installed Chromium (Debian's ``chromium`` first), or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, executable: str, profile_dir: Path, *, width: int = 1280, height: int = 900):
        self.executable = executable
        self.profile_dir = profile_dir
        self.width, self.height = width, height
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self._ids = itertools.count(1)
        self.console: list[str] = []

    def __enter__(self) -> Chromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        log = (self.profile_dir.parent / "chromium.log").open("wb")
        self._proc = subprocess.Popen(
            [
                self.executable,
                *HEADLESS_FLAGS,
                f"--user-data-dir={self.profile_dir}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = self._port()
            self._ws = self._stack.enter_context(connect(self._page_ws(port), max_size=None, open_timeout=30))
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._ws = None
        with contextlib.suppress(Exception):
            self._stack.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None

    def _port(self, timeout: float = 60) -> int:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self._proc.returncode} before it was ready")
            if marker.is_file():
                first = marker.read_text().splitlines()[:1]
                if first and first[0].strip().isdigit():
                    return int(first[0])
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    @staticmethod
    def _page_ws(port: int) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = json.loads(r.read())
            pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.2)
        raise BrowserError("chromium has no page to drive")

    # ------------------------------------------------------------------ the protocol

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Send one command and wait for its result (events that arrive meanwhile are read and dropped)."""
        if self._ws is None:
            raise BrowserError("the browser is not open")
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{method} got no answer in {timeout} s")
            message = json.loads(self._ws.recv(timeout=left))
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message.get("params", {}).get("args", [])
                self.console.append(" ".join(str(a.get("value", "")) for a in args)[:300])
            if message.get("id") == msg_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text', '')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str, timeout: float = 180) -> None:
        """Open ``url`` (a fresh browser on a loaded machine can take a minute to answer the first command)."""
        self.send("Page.navigate", {"url": url}, timeout=timeout)

    def wait_for(self, expression: str, timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll ``expression`` until it is truthy; raises BrowserError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(BrowserError):
                value = self.evaluate(expression)
                if value:
                    return value
            time.sleep(interval)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for {what}")

    def type_text(self, text: str) -> None:
        """Type into the focused element as a user would (React sees real input events)."""
        self.send("Input.insertText", {"text": text})

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": kind,
                    "key": "Enter",
                    "code": "Enter",
                    "windowsVirtualKeyCode": 13,
                    "nativeVirtualKeyCode": 13,
                    **({"text": "\r"} if kind == "keyDown" else {}),
                },
            )

    def send_chat(self, text: str) -> None:
        """Type ``text`` into the chat input and press Enter, as a user would."""
        self.evaluate(f"document.querySelector('{CHAT_INPUT}').focus()")
        self.type_text(text)
        self.press_enter()

    def click(self, element: str, what: str = "an element") -> None:
        """Click the element ``element`` (a JavaScript expression) at its centre with real mouse events, as a
        user would; raises BrowserError when it is not on the page or disabled."""
        rect = self.evaluate(
            f"(() => {{ const e = {element}; if (!e) return null; e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2, disabled: !!e.disabled}; })()"
        )
        if not rect:
            raise BrowserError(f"no {what} to click")
        if rect["disabled"]:
            raise BrowserError(f"{what} is disabled")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1},
            )

    def click_button(self, text: str) -> None:
        """Click the visible button whose text contains ``text``."""
        self.click(button_by_text(text), f"button {text!r}")

    def click_label(self, text: str) -> None:
        """Click the label (a radio option, a checkbox) whose text is ``text``."""
        self.click(
            "Array.from(document.querySelectorAll('label'))"
            f".find(l => l.innerText.trim() === {js_text(text)}) || null",
            f"label {text!r}",
        )

    def upload_file(self, label: str, path: Path) -> None:
        """Choose ``path`` in the file uploader whose label contains ``label`` (as the file dialog would)."""
        expression = (
            "(() => { const u = Array.from(document.querySelectorAll('[data-testid=\"stFileUploader\"]'))"
            f".find(x => x.innerText.includes({js_text(label)}));"
            " return u ? u.querySelector('input[type=file]') : null; })()"
        )
        found = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": False})
        object_id = found.get("result", {}).get("objectId")
        if not object_id:
            raise BrowserError(f"no file uploader labelled {label!r}")
        self.send("DOM.setFileInputFiles", {"files": [str(path)], "objectId": object_id})

    def screenshot(self, path: Path, *, height: int | None = None) -> Path:
        """A PNG of the page; ``height`` resizes the viewport first (the app scrolls inside it)."""
        if height is not None:
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(1.0)  # let the page lay out again (Vega charts re-measure)
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
