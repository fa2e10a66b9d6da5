"""The chat page under Streamlit's AppTest: a real sweep on digits-cnn, its charts and files, uploads, the brain.

The page runs with the offline planner and the tools in process (a private home per test, the shared zoo cache).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from uikit import SWEEP_REQUEST, SWEEP_TIMEOUT_S, app_test, run_ready, texts

from optimizer.search.pareto import ParetoReport

FOLLOW_UP = "I can accept 2%"


# --------------------------------------------------------------------------- helpers


def specs(at: Any) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def chart(at: Any, title: str, nth: int = 0) -> dict[str, Any]:
    found = [s for s in specs(at) if s.get("title", {}).get("text") == title]
    assert len(found) > nth, (
        f"no chart titled {title!r}: {[s.get('title', {}).get('text') for s in specs(at)]}"
    )
    return found[nth]


def layer_rows(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    for layer in spec.get("layer", []):
        if layer.get("name") == name:
            return list(layer["data"]["values"])
    raise AssertionError(f"no layer {name!r} in {[layer.get('name') for layer in spec.get('layer', [])]}")


def everything_shown(at: Any) -> str:
    kinds = ("markdown", "error", "warning", "info", "caption", "success", "code")
    return "\n".join(t for kind in kinds for t in texts(at, kind))


def assert_no_traceback(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in everything_shown(at)


def turns(at: Any) -> list[Any]:
    return list(at.session_state["messages"])


# --------------------------------------------------------------------------- one real conversation


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Iterator[Any]:
    """The page after a real sweep request on digits-cnn and a follow-up that changes the goal."""
    with app_test(tmp_path_factory.mktemp("chat"), zoo_dir) as at:
        run_ready(at)
        at.chat_input[0].set_value(SWEEP_REQUEST).run(timeout=SWEEP_TIMEOUT_S)
        at.chat_input[0].set_value(FOLLOW_UP).run(timeout=SWEEP_TIMEOUT_S)
        yield at


@pytest.mark.slow
def test_app_chat_turn_runs_a_real_sweep_and_shows_each_step_and_the_answer(chat: Any) -> None:
    assert_no_traceback(chat)
    history = turns(chat)
    assert [t.role for t in history[:2]] == ["user", "assistant"]
    answer = history[1]
    assert answer.outcome == "met", answer.text
    assert answer.brain == "offline-planner"
    steps = {s.name: s for s in answer.steps}
    assert steps["run_sweep"].ok and steps["get_pareto_report"].ok
    labels = [e.label for e in chat.get("status")]
    assert any(label.startswith("Ran the compression sweep (") for label in labels), labels
    assert any("goal met" in t for t in texts(chat, "markdown"))
    assert any("Answered by the offline planner (no LLM)" in t for t in texts(chat, "caption"))


@pytest.mark.slow
def test_app_pareto_chart_holds_every_measured_candidate_the_front_and_the_recommendation(chat: Any) -> None:
    report = turns(chat)[1].report()
    assert isinstance(report, ParetoReport)
    measured = {c.id for c in report.candidates if c.ok}
    assert len(measured) >= 2, "the request should measure several candidates"

    spec = chart(chat, "Size vs accuracy drop")
    points = layer_rows(spec, "candidates")
    assert {p["id"] for p in points} == measured
    assert all(p["label"] for p in points)  # the recipe, shown in the tooltip
    assert [p["id"] for p in layer_rows(spec, "front")] == report.front
    assert [p["id"] for p in layer_rows(spec, "recommended")] == [report.recommended]
    assert layer_rows(spec, "goal_region"), "the goal's accuracy-drop limit is drawn as a region"
    tooltip_fields = {
        t["field"]
        for layer in spec["layer"]
        if layer.get("name") == "candidates"
        for t in layer["encoding"]["tooltip"]
    }
    assert {"label", "size_text", "drop", "p50"} <= tooltip_fields


@pytest.mark.slow
def test_app_latency_and_sensitivity_charts_and_the_before_after_table_are_shown(chat: Any) -> None:
    report = turns(chat)[1].report()
    assert report is not None
    latency = chart(chat, "Latency vs size")
    assert {p["id"] for p in layer_rows(latency, "candidates")} == {
        c.id for c in report.candidates if c.ok and c.metrics and c.metrics.latency_ms_p50 is not None
    }
    sens = chart(chat, "Most sensitive layers")
    assert sens["encoding"]["y"]["sort"], "layers ranked by sensitivity"
    table = chat.table[0].value
    assert list(table["metric"])[:2] == ["candidate", "size"]
    assert table["recommended"].iloc[0] == report.recommended


@pytest.mark.slow
def test_app_offers_the_recommended_model_the_report_and_a_deployable_package(chat: Any) -> None:
    report = turns(chat)[1].report()
    assert report is not None and report.recommended is not None
    labels = {b.proto.label for b in chat.get("download_button")}
    assert {"Model: recommended", "Report (JSON)", "Deployable package (zip)"} <= labels
    files = chat.session_state["downloads"][(turns(chat)[1].job_id, report.recommended)]
    assert not files.problems
    model_path = report.candidate(report.recommended).model_path
    assert model_path is not None and files.model_bytes == Path(model_path).read_bytes()
    assert ParetoReport.model_validate_json(files.report_bytes).recommended == report.recommended
    names = zipfile.ZipFile(io.BytesIO(files.package_bytes or b"")).namelist()
    top = f"{report.recommended}-package"
    assert {f"{top}/model.onnx", f"{top}/run.py", f"{top}/README.md", f"{top}/contract.json"} <= set(names)


@pytest.mark.slow
def test_app_follow_up_that_loosens_the_goal_searches_again_and_draws_the_new_goal(chat: Any) -> None:
    history = turns(chat)
    assert [t.role for t in history] == ["user", "assistant", "user", "assistant"]
    follow = history[3]
    assert follow.outcome == "met", follow.text
    # a looser accuracy limit allows smaller models than the first sweep measured: the planner searches again
    assert "run_sweep" in {s.name for s in follow.steps}
    report = follow.report()
    assert report is not None and report.goal is not None
    assert report.goal.max_accuracy_drop_pct == pytest.approx(2.0)
    second = chart(chat, "Size vs accuracy drop", nth=1)
    assert layer_rows(second, "drop_limit")[0]["drop"] == pytest.approx(2.0)
    assert [p["id"] for p in layer_rows(second, "recommended")] == [report.recommended]


# --------------------------------------------------------------------------- uploads


def upload(at: Any, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).set_value((name, data, "application/octet-stream")).run()


def to_upload_mode(at: Any) -> None:
    run_ready(at)
    at.radio(key="source").set_value("Upload my model").run()


def test_app_upload_of_a_bad_model_file_shows_a_readable_error_in_the_chat(
    new_app: Callable[[], Any],
) -> None:
    at = new_app()
    to_upload_mode(at)
    upload(at, "model_file", "broken.onnx", b"this is not an ONNX model")
    assert_no_traceback(at)
    errors = texts(at, "error")
    assert len(errors) == 1 and "broken.onnx" in errors[0], errors
    assert "(`" in errors[0], "the error's code is shown"
    last = turns(at)[-1]
    assert last.role == "assistant" and last.kind == "error"
    assert at.session_state["upload_model"] is None


def test_app_upload_of_a_model_shows_its_inspection_summary_at_once(
    new_app: Callable[[], Any], zoo_dir: Path
) -> None:
    at = new_app()
    to_upload_mode(at)
    upload(at, "model_file", "my digits.onnx", (zoo_dir / "digits-cnn" / "model.onnx").read_bytes())
    assert_no_traceback(at)
    info, nudge = turns(at)[-2:]
    assert info.kind == "info" and "is stored as" in info.text, info.text
    assert "upload evaluation data" in nudge.text, "the next step is said, not guessed at"
    assert "ONNX opset" in info.text and "input `input`: float32" in info.text
    model_id = at.session_state["upload_model"]
    assert model_id and model_id.startswith("my-digits")
    assert at.session_state["selection"].model == model_id
    assert any(model_id in t for t in texts(at.sidebar, "markdown"))


def test_app_data_that_does_not_fit_the_model_is_refused_at_upload_naming_the_file(
    new_app: Callable[[], Any], zoo_dir: Path, tmp_path: Path
) -> None:
    at = new_app()
    to_upload_mode(at)
    upload(at, "model_file", "digits.onnx", (zoo_dir / "digits-cnn" / "model.onnx").read_bytes())
    buf = io.BytesIO()
    np.savez(buf, input=np.zeros((4, 3, 5, 5), dtype=np.float32), labels=np.zeros(4, dtype=np.int64))
    upload(at, "data_file", "wrong-shape.npz", buf.getvalue())
    assert_no_traceback(at)
    assert at.session_state["upload_data"] is None, "data that does not fit the model is not kept"
    refused = turns(at)[-1]
    assert refused.kind == "error" and "wrong-shape.npz" in refused.text, refused.text
    assert "(`data_invalid`)" in refused.text and ("axis" in refused.text or "shape" in refused.text)
    assert any("wrong-shape.npz" in t for t in texts(at, "error"))  # shown at once, not in a collapsed step

    # a request now says what is missing instead of running on something else
    at.chat_input[0].set_value("make it under 40 KB with less than 1% accuracy loss").run(timeout=120)
    assert_no_traceback(at)
    answer = turns(at)[-1]
    assert answer.role == "assistant" and answer.kind == "error", answer.text
    assert "evaluation data" in answer.text and not answer.steps, "nothing was run"


# --------------------------------------------------------------------------- the brain


def test_app_sidebar_names_the_offline_planner_when_no_llm_is_configured(new_app: Callable[[], Any]) -> None:
    at = new_app()
    run_ready(at)
    assert_no_traceback(at)
    assert any("offline planner (no LLM)" in t for t in texts(at.sidebar, "markdown"))


def test_app_llm_settings_switch_the_brain_for_this_session_without_storing_the_key(
    new_app: Callable[[], Any],
) -> None:
    secret = "sk-test-ui-session-only-3141592653"
    at = new_app()
    run_ready(at)
    at.text_input(key="llm_model").set_value("openai/gpt-4o-mini")
    at.text_input(key="llm_key").set_value(secret).run()  # the button is enabled once a model is named
    at.button(key="llm_use").click().run()
    assert_no_traceback(at)
    assert any("LLM openai/gpt-4o-mini" in t for t in texts(at.sidebar, "markdown"))
    assistant = at.session_state["assistant"]
    assert assistant.brain_name == "openai/gpt-4o-mini"
    assert assistant.inner.brain.api_key == secret
    assert secret not in "".join(os.environ.values())
    home = Path(os.environ["QUANTTAAS_HOME"])
    for path in [p for p in home.rglob("*") if p.is_file()]:
        assert secret.encode() not in path.read_bytes(), path

    at.button(key="llm_off").click().run()
    assert assistant.brain_name == "offline-planner"
    assert any("offline planner (no LLM)" in t for t in texts(at.sidebar, "markdown"))


# --------------------------------------------------------------------------- the live view


def _live_script() -> None:
    from assistant.events import Progress, ToolStarted
    from ui.render import LiveTurn

    live = LiveTurn()
    live.handle(ToolStarted(call_id="c1", name="run_sweep", arguments={"model": "digits-cnn"}))
    live.handle(
        Progress(job_id="0" * 16, state="running", phase="trial", done=3, planned=4, message="c03 measured")
    )


def test_live_turn_shows_a_running_step_and_the_sweep_progress_bar() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_live_script, default_timeout=30).run()
    assert not at.exception
    bar = at.get("progress")[0]
    assert bar.proto.value == 73  # past the 8% the original's measurement and the ranking take
    assert "Measured 3 of 4 planned candidates" in bar.proto.text
    assert at.get("status")[0].label.startswith("Running the compression sweep …")
