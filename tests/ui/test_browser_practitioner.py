"""The page in a practitioner's hands (issue 15), in a real browser: a zoo request, a model that is not in the zoo
uploaded with its data, a Stop in the middle of a sweep, and bad uploads. One page server for the module; each test
opens its own browser (a fresh session). Screenshots go to ``QUANTTAAS_SCREENS`` when it is set (else the test's
tmp folder).

Skips with a clear message when Debian's ``chromium`` is not installed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import (
    INPUT_READY,
    MAIN_TEXT,
    PROGRESS_VALUES,
    SIDEBAR_TEXT,
    Chromium,
    find_chromium,
    has_button,
    js_text,
)
from uikit import serve_app

TURN_TIMEOUT_S = 420
ZOO_REQUEST = "make digits-cnn under 40 KB with less than 1% accuracy loss"
UPLOAD_REQUEST = "make it as small as possible with at most 2% accuracy loss"
RUNNING = "Running the compression sweep"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "Debian's chromium is not installed, so the real-browser tests cannot run "
            "(`make test` installs it when run as root with apt: apt-get install chromium)"
        )
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path, chromium_path: str) -> Iterator[str]:
    with serve_app(tmp_path_factory.mktemp("page"), zoo_dir) as (url, _proc, _log):
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("QUANTTAAS_SCREENS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One browser for the module: each test loads the page again, which is a fresh session of the page (a
    browser closed and another started between tests left the next navigation unanswered on a loaded machine)."""
    with Chromium(chromium_path, tmp_path_factory.mktemp("profile"), width=1280, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model that is not in the zoo (a two-layer MLP built here), its evaluation and calibration data, and data
    of the wrong shape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(15)
    w1 = rng.normal(0, 0.2, (64, 256)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (256, 10)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["logits"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    folder = tmp_path_factory.mktemp("own")
    onnx.save(model, str(folder / "sensor-mlp.onnx"))
    x = rng.normal(0, 1, (200, 64)).astype(np.float32)
    labels = np.argmax(np.maximum(x @ w1, 0) @ w2, axis=1).astype(np.int64)
    np.savez(folder / "sensor-eval.npz", input=x, labels=labels)
    np.savez(folder / "sensor-calib.npz", input=rng.normal(0, 1, (48, 64)).astype(np.float32))
    np.savez(
        folder / "wrong-shape.npz", input=np.zeros((4, 3, 5, 5), np.float32), labels=np.zeros(4, np.int64)
    )
    (folder / "broken.onnx").write_bytes(b"this is not an ONNX model")
    return {p.stem: p for p in folder.iterdir()}


def main_text(browser: Chromium) -> str:
    return str(browser.evaluate(MAIN_TEXT))


def open_page(browser: Chromium, url: str) -> None:
    browser.goto(url)
    browser.wait_for(
        f"{INPUT_READY} && document.body.innerText.includes('Answering:')", 180, "the ready page"
    )


def settled(browser: Chromium, what: str, timeout: float = TURN_TIMEOUT_S) -> str:
    """Wait until the page takes input again with no request running (twice, a second apart); the main text."""
    done = f"{INPUT_READY} && !({has_button('Stop')})"
    browser.wait_for(done, timeout, what)
    time.sleep(1.0)
    browser.wait_for(done, 60, what)
    return main_text(browser)


def answered(browser: Chromium, request: str, marker: str, what: str, timeout: float = TURN_TIMEOUT_S) -> str:
    """Wait until the answer to ``request`` shows ``marker`` and the page has settled; the main text."""
    expression = (
        f"(() => {{ const t = {MAIN_TEXT}; const i = t.lastIndexOf({js_text(request)});"
        f" return i >= 0 && t.slice(i).includes({js_text(marker)}); }})()"
    )
    browser.wait_for(expression, timeout, what)
    return settled(browser, what, timeout=120)


def to_upload_mode(browser: Chromium) -> None:
    browser.click_label("Upload my model")
    browser.wait_for(
        "document.querySelectorAll('[data-testid=\"stFileUploader\"]').length >= 3", 60, "the uploaders"
    )


def upload(browser: Chromium, label: str, path: Path, expect: str) -> str:
    """Choose ``path`` in the uploader labelled ``label`` and wait for ``expect`` in the chat (words that only the
    chat shows: the uploader names the file at once); the page's text."""
    browser.upload_file(label, path)
    browser.wait_for(f"{MAIN_TEXT}.includes({js_text(expect)})", 120, f"{path.name} in the chat")
    return settled(browser, f"the page after {path.name}", timeout=120)


def last_answer(text: str, request: str) -> str:
    """The text after the last time ``request`` appears (the answer to it)."""
    return text[text.rindex(request) + len(request) :]


# --------------------------------------------------------------------------- 12: the first view


def test_page_first_view_is_drawn_while_the_assistant_starts(
    browser: Chromium, app_url: str, shots: Path
) -> None:
    browser.goto(app_url)
    # the welcome and the chat input come first; the sidebar says the assistant is still starting
    browser.wait_for(
        "document.body.innerText.includes('Starting the assistant in the background') "
        "&& document.body.innerText.includes('I compress trained models')",
        120,
        "the first view before the assistant is ready",
        interval=0.05,
    )
    browser.screenshot(shots / "issue15-00-first-view.png")
    browser.wait_for("document.body.innerText.includes('Answering:')", 180, "the assistant")
    assert "Starting the assistant" not in str(browser.evaluate(SIDEBAR_TEXT))


# --------------------------------------------------------------------------- the zoo flow: 4-11


def test_page_zoo_request_shows_the_front_in_the_users_units_with_a_short_why(
    browser: Chromium, app_url: str, shots: Path
) -> None:
    open_page(browser, app_url)
    # 11: the Try examples name the selected model. Waited for, not read once: the sidebar streams in after
    # "Answering:", and a read in between saw the last example without the first (a partial re-render)
    browser.wait_for(
        f"{SIDEBAR_TEXT}.includes('make digits-cnn under')", 60, "the Try examples in the sidebar"
    )
    browser.send_chat(ZOO_REQUEST)
    bars: list[float] = []
    answer_in = (
        f"(() => {{ const t = {MAIN_TEXT}; const i = t.lastIndexOf({js_text(ZOO_REQUEST)});"
        " return i >= 0 && t.slice(i).includes('Measured '); })()"
    )
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while time.monotonic() < deadline:  # 8: the bar moves while the original is measured and layers ranked
        bars.extend(float(v) for v in browser.evaluate(PROGRESS_VALUES) or [])
        if bars or browser.evaluate(answer_in):
            break
        time.sleep(0.1)
    browser.screenshot(shots / "issue15-01-zoo-working.png")
    text = answered(browser, ZOO_REQUEST, "Measured ", "the answer to the zoo request")
    browser.screenshot(shots / "issue15-02-zoo-answer.png", height=2600)
    answer = last_answer(text, ZOO_REQUEST)
    assert bars and bars[0] > 0, f"the progress bar sat at 0: {bars}"
    assert "Traceback" not in text
    # 6: the user's units, one format per quantity
    assert "under 40 KB" in answer and "0.04 MB" not in answer
    assert re.search(r"top1 \d{2}\.\d{2}% against \d{2}\.\d{2}%", answer), answer[:600]
    assert not re.search(r"\b0\.9\d{3}\b", answer), "top-1 (about 98%) written as a fraction somewhere"
    # 5: why in a sentence or two, no server paths, no download routes, no tool names
    why = next(line for line in answer.splitlines() if line.startswith("Why:"))
    assert len(re.findall(r"[.!?](?:\s|$)", why)) <= 3 and len(why.split()) <= 80, why
    for leak in ("/artifacts/", "download /", "run_sweep", "get_pareto_report", "profile_layers", "Files:"):
        assert leak not in answer, leak
    # 4 and 8: enough points across the front, and one count of what was measured
    measured = re.search(r"Measured (\d+) of (\d+) candidates", answer)
    assert measured is not None, answer[:800]
    assert int(measured.group(1)) >= 5, measured.group(0)
    assert "skipped 0/" not in answer and "All 1 candidates" not in answer
    assert answer.count("Read the goal") <= 1
    # 10: how int8 was calibrated
    assert "Calibrated on digits-cnn's own calibration set" in answer
    # 11: the welcome stays at the top
    assert "I compress trained models" in text[: text.rindex(ZOO_REQUEST)]


# --------------------------------------------------------------------------- 3: Stop


def test_page_stop_cancels_the_running_sweep_and_the_page_answers_again(
    browser: Chromium, app_url: str, shots: Path
) -> None:
    open_page(browser, app_url)
    request = "make digits-cnn as small as possible with at most 0.5% accuracy loss"
    browser.send_chat(request)
    browser.wait_for(
        f"{has_button('Stop')} && document.body.innerText.includes('{RUNNING}')", 240, "the sweep"
    )
    browser.screenshot(shots / "issue15-03-before-stop.png")
    browser.click_button("Stop")
    text = answered(browser, request, "Stopped at your request", "the page after Stop", timeout=120)
    browser.screenshot(shots / "issue15-04-stopped.png", height=1600)
    answer = last_answer(text, request)
    assert "Stopped at your request" in answer, answer[:500]
    assert "Traceback" not in text
    # the page takes the next request at once (the stopped one is not answered again)
    browser.send_chat("what did you try?")
    after = answered(browser, "what did you try?", "", "the answer after Stop", timeout=180)
    assert after.count(request) == 1, "the stopped request was not sent again"


# --------------------------------------------------------------------------- 1, 2: bad uploads


def test_page_refused_model_upload_never_runs_the_zoo_model_instead(
    browser: Chromium, app_url: str, shots: Path, own_model: dict[str, Path]
) -> None:
    open_page(browser, app_url)
    to_upload_mode(browser)
    text = upload(browser, "Model (", own_model["broken"], "I could not use broken.onnx")
    assert "I could not use broken.onnx as a model" in text, text[-800:]
    assert "(`" in text or "model_" in text  # its code, shown at once
    request = ZOO_REQUEST.replace("digits-cnn", "it")
    browser.send_chat(request)
    text = answered(browser, request, "There is no model", "the answer after a refused upload", timeout=120)
    browser.screenshot(shots / "issue15-05-bad-upload.png", height=1400)
    assert "There is no model to work on" in text and "broken.onnx" in text
    assert RUNNING not in text and "Measured" not in text


def test_page_own_model_upload_refuses_data_that_does_not_fit_and_calibrates_on_the_given_file(
    browser: Chromium, app_url: str, shots: Path, own_model: dict[str, Path]
) -> None:
    open_page(browser, app_url)
    to_upload_mode(browser)
    text = upload(browser, "Model (", own_model["sensor-mlp"], "is stored as")
    model_id = re.search(r"is stored as (sensor-mlp-[0-9a-f]+)", text)
    assert model_id is not None, text[-800:]
    # 2: data that does not fit is refused at upload, naming the uploaded file, in the chat (not in a step)
    text = upload(browser, "Evaluation data", own_model["wrong-shape"], "I could not use wrong-shape.npz")
    assert re.search(r"I could not use wrong-shape\.npz as evaluation data", text), text[-800:]
    assert "data.npz" not in text
    browser.screenshot(shots / "issue15-06-wrong-data.png", height=1400)
    upload(browser, "Evaluation data", own_model["sensor-eval"], "sensor-eval.npz:")
    upload(browser, "Calibration data", own_model["sensor-calib"], "sensor-calib.npz:")
    # 11: the Try examples follow the uploaded model
    browser.wait_for(
        f"{SIDEBAR_TEXT}.includes({js_text(f'make {model_id.group(1)} under')})",
        60,
        "the Try examples for the uploaded model",
    )
    browser.send_chat(UPLOAD_REQUEST)
    text = answered(browser, UPLOAD_REQUEST, "Measured ", "the answer for the uploaded model")
    browser.screenshot(shots / "issue15-07-own-model-answer.png", height=2600)
    answer = last_answer(text, UPLOAD_REQUEST)
    assert "Traceback" not in text
    # 10: calibrated on the file the user gave, not on the evaluation data
    assert "Calibrated on your calibration file sensor-calib.npz (48 samples)" in answer, answer[:1200]
    assert re.search(r"Measured \d+ of \d+ candidates", answer)
    assert "I compress trained models" in text  # 11: the welcome is still reachable after an upload
