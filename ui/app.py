"""The QuantTaaS chat page: pick or upload a model, say what you need, watch the sweep, see the trade-off.

Run it with ``make run`` (or ``streamlit run ui/app.py``). A thin script over the assistant: the state of a
browser session (its assistant, the chat, the reports) lives in ``st.session_state``; the work behind each
widget is in a module per job (:mod:`ui.session` the assistant of the session, :mod:`ui.warmup` its start in the
background, :mod:`ui.chat` the history, :mod:`ui.uploads`, :mod:`ui.results`, :mod:`ui.downloads`), the drawing in
:mod:`ui.render`, :mod:`ui.summary` and :mod:`ui.charts`.

The first view is drawn at once: the session's assistant is opened on a background thread, and the page polls
until it is ready (a request sent meanwhile waits for it).

A request runs in three script runs: the run that receives the message stores it and reruns with the other
widgets disabled; that run streams the answer (one step per tool, a progress bar and a clock while it works, and a
Stop button: pressing it makes Streamlit rerun, which stops the answer and cancels its sweep) and reruns again;
the last one draws the history with the widgets enabled.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import streamlit as st

from ui.chat import ChatTurn, error_text, exception_text
from ui.session import Selection, is_offline, mentions_model, sweep_budget_s, transport_of, use_llm
from ui.summary import Calibration
from ui.uploads import (
    DATA_TYPES,
    MODEL_TYPES,
    check_data_fits,
    inspection_markdown,
    register_upload,
    save_upload,
)
from ui.warmup import start_assistant, warm_imports

ZOO = "Zoo model"
UPLOAD = "Upload my model"
DEFAULT_MODEL = "digits-cnn"
PLACEHOLDER = "Say what you need, e.g. “under 40 KB with less than 1% accuracy loss”"
WELCOME = (
    "Hi! I compress trained models (int8, fp16, int4 quantization) and prove the trade-off with measurements.\n\n"
    "1. Pick a zoo model in the sidebar, or upload your own ONNX model (or a `torch.export` `.pt2`) with "
    "evaluation data (`.npz`), and optionally calibration data.\n"
    "2. Tell me what you need in plain words: a size, an accuracy loss you can accept, a speed-up.\n"
    "3. Watch the sweep (you can stop it), then compare the candidates on the charts and download the result.\n\n"
    "Follow up with *“I can accept 2%”*, *“make it smaller”*, *“why not int4?”* or *“what did you try?”*."
)
_KIND_WORDS = {"model": "a model", "data": "evaluation data", "calib": "calibration data"}


def _state() -> Any:
    return st.session_state


def _init() -> None:
    ss = _state()
    for key, value in (
        ("messages", []),
        ("jobs", {}),
        ("downloads", {}),
        ("pending", None),
        ("selection", None),
        ("context_pending", False),
        ("inspections", {}),
        ("model_sizes", {}),
        ("uploaded", set()),
        ("upload_model", None),
        ("upload_inspection", None),
        ("upload_problem", None),
        ("upload_data", None),
        ("upload_calib", None),
        ("upload_paths", {}),
        ("data_info", {}),
        ("job_calibration", {}),
        ("zoo_names", None),
        ("assistant", None),
        ("startup_error", None),
    ):
        if key not in ss:
            ss[key] = value
    if "upload_dir" not in ss:
        ss.upload_dir = tempfile.mkdtemp(prefix="quanttaas-ui-")  # private (0700) to this process's user
    if "assistant_future" not in ss:
        ss.assistant_future = start_assistant()


def _ready_assistant() -> Any:
    """The session's assistant once it is open, else None (still starting); a failed start stops the page with
    its reason."""
    ss = _state()
    if ss.assistant is None and ss.startup_error is None and ss.assistant_future.done():
        try:
            ss.assistant = ss.assistant_future.result()
        except Exception as e:  # e.g. QUANTTAAS_MCP_URL names a server that is down
            ss.startup_error = exception_text(e)
    if ss.startup_error is not None:
        st.error(f"The assistant could not start: {ss.startup_error}")
        st.stop()
    return ss.assistant


def _wait_assistant() -> Any:
    """The session's assistant, waiting for it to open (a request or an upload sent while it starts)."""
    ss = _state()
    if ss.assistant is None:
        with st.spinner("Starting the assistant …"), contextlib.suppress(Exception):
            ss.assistant_future.result(timeout=600)  # its error is read (and shown) below
    return _ready_assistant()


@st.fragment(run_every=1.0)
def _poll_ready() -> None:
    """Rerun the page once the assistant has opened in the background."""
    if _state().assistant_future.done():
        st.rerun(scope="app")


# --------------------------------------------------------------------------- the sidebar


def _zoo_names(assistant: Any) -> list[str]:
    ss = _state()
    if ss.zoo_names is None:
        record = assistant.call_tool("list_zoo", {}, "ui-zoo")
        entries = (record.result or {}).get("entries", []) if record.ok else []
        ss.zoo_names = [str(e.get("name")) for e in entries] or [DEFAULT_MODEL]
        ss.zoo_info = {str(e.get("name")): str(e.get("description", "")) for e in entries}
    return list(ss.zoo_names)


def _select(selection: Selection) -> None:
    ss = _state()
    ss.selection = selection
    ss.context_pending = True


def _select_zoo(assistant: Any, name: str) -> None:
    ss = _state()
    if name not in ss.inspections:
        with st.spinner(f"Inspecting {name} (a zoo model is built on its first use) …"):
            record = assistant.call_tool("inspect_model", {"model": name}, "ui-inspect")
        ss.inspections[name] = record.text if record.ok else error_text(record.error, record.text)
        if record.ok and record.result is not None:
            ss.model_sizes[name] = record.result.get("size_bytes")
    info = ss.get("zoo_info", {}).get(name, "")
    _select(
        Selection(model=name, data=None, label=f"{name} (zoo)", summary=f"{info}\n\n{ss.inspections[name]}")
    )


def _say(kind: Literal["error", "info"], text: str) -> None:
    _state().messages.append(ChatTurn(role="assistant", kind=kind, text=text))


def _keep_path(kind: str, path: Path | None) -> None:
    """Keep the local copy of the data file of ``kind`` (to check it again when another model comes)."""
    paths = _state().upload_paths
    old = paths.pop(kind, None)
    if old is not None and old != path:
        Path(old).unlink(missing_ok=True)
    if path is not None:
        paths[kind] = path


def _recheck_data(model_id: str, inspection: dict[str, Any]) -> None:
    """Data uploaded before this model: drop what does not fit it, and say so."""
    ss = _state()
    for kind in ("data", "calib"):
        path = ss.upload_paths.get(kind)
        if path is None or ss[f"upload_{kind}"] is None:
            continue
        problem = check_data_fits(Path(path), inspection, calibration=kind == "calib")
        if problem is not None:
            name = ss.data_info.get(ss[f"upload_{kind}"], {}).get("name", Path(path).name)
            ss[f"upload_{kind}"] = None
            _keep_path(kind, None)
            _say(
                "error",
                f"**{name}** does not fit the model `{model_id}`, so it is no longer used: "
                + error_text(problem),
            )


def _upload(assistant: Any, file: Any, kind: str) -> None:
    """Store an uploaded file and say in the chat what it is, or why it cannot be used (data that does not fit
    the model is refused here, naming the file, not after the next request)."""
    ss = _state()
    ss.uploaded.add(file.file_id)  # one attempt per uploaded file, not one per rerun
    try:
        path = save_upload(Path(ss.upload_dir) / kind, file.name, file.getvalue())
    except OSError as e:
        _say("error", f"Could not save {file.name}: {e}")
        return
    what = _KIND_WORDS[kind]
    if kind != "model" and ss.upload_inspection is not None:
        problem = check_data_fits(path, ss.upload_inspection, calibration=kind == "calib")
        if problem is not None:
            path.unlink(missing_ok=True)
            ss[f"upload_{kind}"] = None
            _say(
                "error",
                f"I could not use **{file.name}** as {what} for `{ss.upload_model}`: " + error_text(problem),
            )
            return
    with st.spinner(f"Checking {file.name} …"):
        record = register_upload(assistant, path, "model" if kind == "model" else "data")
    if kind == "model" or not record.ok:
        path.unlink(missing_ok=True)
    if not record.ok or record.result is None:
        if kind == "model":  # the model chosen before this upload is not silently used instead
            ss.upload_model = None
            ss.upload_inspection = None
            ss.upload_problem = f"your upload **{file.name}** was refused ({(record.error or {}).get('message', record.text)})"
        else:
            ss[f"upload_{kind}"] = None
        _say("error", f"I could not use **{file.name}** as {what}: " + error_text(record.error, record.text))
        return
    if kind == "model":
        mid = str(record.result["model"]["id"])
        inspection = record.result.get("inspection") or {}
        ss.upload_model, ss.upload_inspection, ss.upload_problem = mid, inspection, None
        ss.model_sizes[mid] = inspection.get("size_bytes")
        text = f"**{file.name}** is stored as `{mid}`. {record.text}\n\n" + inspection_markdown(inspection)
        _say("info", text)
        _recheck_data(mid, inspection)
        if ss.upload_data is None:
            _say("info", "Now upload evaluation data (`.npz`) in the sidebar, then tell me what you need.")
    else:
        did = str(record.result["data"]["id"])
        ss[f"upload_{kind}"] = did
        ss.data_info[did] = {"name": file.name, "samples": record.result["data"].get("samples")}
        _keep_path(kind, path)
        text = f"**{file.name}**: {record.text}"
        if kind == "calib":
            text += " It calibrates int8 in the next request (instead of the first evaluation samples)."
        if ss.upload_model is None:
            text += " Now upload the model it belongs to."
        _say("info", text)
    if ss.upload_model is not None:
        _select(_upload_selection())


def _upload_selection() -> Selection:
    ss = _state()
    label = f"{ss.upload_model} (uploaded)"
    if ss.upload_data:
        label += f" with data {ss.data_info.get(ss.upload_data, {}).get('name', ss.upload_data)}"
    if ss.upload_calib:
        label += f", calibration {ss.data_info.get(ss.upload_calib, {}).get('name', ss.upload_calib)}"
    return Selection(
        model=ss.upload_model, data=ss.upload_data, calib=ss.upload_calib, label=label, summary=""
    )


def _llm_controls(assistant: Any, busy: bool) -> None:
    ss = _state()
    off = busy or assistant is None
    with st.sidebar.expander("Use an LLM (this session only)"):
        model = st.text_input(
            "LLM model (litellm string or OpenAI-compatible URL)",
            key="llm_model",
            placeholder="openai/gpt-4o-mini · ollama/qwen2.5 · http://127.0.0.1:8080/v1",
            disabled=off,
        )
        key = st.text_input("API key", key="llm_key", type="password", disabled=off)
        base = st.text_input("API base (optional)", key="llm_base", disabled=off)
        left, right = st.columns(2)
        if left.button("Use this LLM", disabled=off or is_offline(model), key="llm_use"):
            name = use_llm(assistant, model, key or None, base or None)
            from ui.render import brain_label

            ss.llm_note = (
                f"Now answering: {brain_label(name)}. If it fails, the offline planner answers instead."
            )
        if right.button("Offline planner", disabled=off, key="llm_off"):
            use_llm(assistant, None)
            ss.llm_note = "Now answering: the offline planner."
        if ss.get("llm_note"):
            st.caption(ss.llm_note)
        st.caption(
            "The key stays in this browser session's memory: never written to disk or to the environment."
        )


def _model_controls(assistant: Any, busy: bool) -> str:
    ss = _state()
    sb = st.sidebar
    sb.subheader("Model")
    source = str(
        sb.radio(
            "Model source",
            [ZOO, UPLOAD],
            key="source",
            horizontal=True,
            disabled=busy,
            label_visibility="collapsed",
        )
    )
    if assistant is None:
        sb.caption("The models appear as soon as the assistant is ready.")
        return source
    if source == ZOO:
        names = _zoo_names(assistant)
        pick = sb.selectbox("Zoo model", names, key="zoo_pick", disabled=busy)
        if pick and (ss.selection is None or ss.selection.model != pick):
            _select_zoo(assistant, str(pick))
    else:
        files = {
            "model": sb.file_uploader(
                "Model (.onnx, or a torch.export .pt2)",
                type=list(MODEL_TYPES),
                key="model_file",
                disabled=busy,
            ),
            "data": sb.file_uploader(
                "Evaluation data (.npz)", type=list(DATA_TYPES), key="data_file", disabled=busy
            ),
            "calib": sb.file_uploader(
                "Calibration data (.npz, optional)", type=list(DATA_TYPES), key="calib_file", disabled=busy
            ),
        }
        sb.caption(
            "A data file holds one array per model input, named after it (first axis = samples); evaluation "
            "data also `labels`. Without calibration data, int8 is calibrated on the first evaluation samples."
        )
        with st.sidebar:
            for kind, file in files.items():
                if file is not None and file.file_id not in ss.uploaded:
                    _upload(assistant, file, kind)
        if ss.upload_model is not None and (ss.selection is None or ss.selection.model != ss.upload_model):
            _select(_upload_selection())
        if ss.upload_model is None:
            sb.warning(
                "No model to work on yet: " + (ss.upload_problem or "upload an ONNX model (or a .pt2)") + "."
            )
    sel = ss.selection
    if sel is not None and (source == ZOO or sel.model == ss.upload_model):
        sb.markdown(f"**Selected:** `{sel.label}`")
        if sel.summary:
            sb.caption(sel.summary)
    return source


def _round_size(n_bytes: float) -> float:
    """``n_bytes`` to one significant digit (a limit a person would type)."""
    if n_bytes <= 0:
        return n_bytes
    scale = 10 ** math.floor(math.log10(n_bytes))
    return round(n_bytes / scale) * scale


def examples(model: str, size_bytes: float | None) -> list[str]:
    """The "Try" requests for a model: under about 40% of its size with less than 1% loss, and as small as
    possible with at most 2% loss."""
    from optimizer.units import format_bytes

    first = (
        f"make {model} under {format_bytes(_round_size(size_bytes * 0.4))} with less than 1% accuracy loss"
        if size_bytes
        else f"make {model} 4x smaller with less than 1% accuracy loss"
    )
    return [first, f"make {model} as small as possible with at most 2% accuracy loss"]


def _examples(source: str) -> list[str]:
    ss = _state()
    if source == UPLOAD:
        if ss.upload_model is None or ss.upload_data is None:
            return []
        return examples(ss.upload_model, ss.model_sizes.get(ss.upload_model))
    model = ss.selection.model if ss.selection is not None else DEFAULT_MODEL
    return examples(model, ss.model_sizes.get(model) or (105_000 if model == DEFAULT_MODEL else None))


def _sidebar(assistant: Any, busy: bool) -> None:
    sb = st.sidebar
    sb.title("QuantTaaS")
    sb.caption("Compress a trained model; see what it costs.")
    brain = sb.empty()  # filled after the LLM controls: a switch made in this run is named at once
    _llm_controls(assistant, busy)
    if assistant is None:
        brain.info(
            "Starting the assistant in the background … You can type a request meanwhile: it starts as soon "
            "as the assistant is ready."
        )
    else:
        from ui.render import brain_label

        brain.markdown(
            f"**Answering:** {brain_label(assistant.brain_name)}  \n"
            f"<small>tools: {transport_of(assistant)}</small>",
            unsafe_allow_html=True,
        )
    source = _model_controls(assistant, busy)
    sb.subheader("Try")
    tries = _examples(source)
    if not tries:
        sb.caption("Upload a model and its evaluation data to get examples for it.")
    for i, example in enumerate(tries):
        if sb.button(example, key=f"example{i}", disabled=busy, width="stretch"):
            _submit(example)


# --------------------------------------------------------------------------- a request


def _refusal(text: str) -> str | None:
    """Why a request cannot run as it stands (upload mode without a usable model or data), or None.

    A request that names a model in its words runs on that model; otherwise nothing is guessed: in upload mode
    the zoo model chosen earlier is not used in place of a refused upload.
    """
    ss = _state()
    if ss.get("source") != UPLOAD:
        return None
    known = [*(ss.zoo_names or [DEFAULT_MODEL])]
    if mentions_model(text, known):
        return None
    if ss.upload_model is None:
        why = ss.upload_problem or "no model has been uploaded yet"
        return (
            f"There is no model to work on: {why}. I did not start anything. Upload a valid ONNX model (or a "
            "`torch.export` `.pt2`) in the sidebar, or switch to *Zoo model*."
        )
    if ss.upload_data is None and not mentions_model(text, [ss.upload_model]):
        return (
            f"`{ss.upload_model}` has no evaluation data yet, so there is nothing to measure it on. I did not start "
            "anything. Upload its evaluation data (`.npz`) in the sidebar, then ask again."
        )
    return None


def _submit(text: str) -> None:
    ss = _state()
    ss.messages.append(ChatTurn(role="user", text=text))
    refusal = _refusal(text)
    if refusal is not None:
        ss.messages.append(ChatTurn(role="assistant", kind="error", text=refusal))
    else:
        ss.pending = text
    st.rerun()


def _context(text: str) -> dict[str, str | None]:
    """The model and data chosen in the sidebar, for the first request after the choice and for any request that
    names the chosen model: a follow-up ("I can accept 2%") refines the last request instead, and a message that
    names another model wins.
    """
    ss = _state()
    sel = ss.selection
    if sel is None:
        return {}
    others = [
        n for n in [*(ss.zoo_names or []), *([ss.upload_model] if ss.upload_model else [])] if n != sel.model
    ]
    if mentions_model(text, others):
        return {}
    if ss.context_pending or mentions_model(text, [sel.model]):
        return {"model": sel.model, "data": sel.data, "calib": sel.calib}
    return {}


def _calibration(reply: Any, job_id: str | None) -> Calibration | None:
    """What the sweep behind this answer calibrated on (a re-ranking keeps its sweep's)."""
    from assistant.toollog import ToolLog

    ss = _state()
    sweep = ToolLog(reply.tool_calls).latest("run_sweep")
    if sweep is None:
        return ss.job_calibration.get(job_id) if job_id else None
    args = sweep.arguments
    calib, data, model = args.get("calib"), args.get("data"), str(args.get("model", ""))
    if calib:
        info = ss.data_info.get(calib, {})
        found = Calibration("file", name=str(info.get("name", calib)), samples=info.get("samples"))
    elif model in (ss.zoo_names or [DEFAULT_MODEL]):
        found = Calibration("zoo", name=model)
    else:
        from optimizer.optimize import CALIB_FALLBACK_SAMPLES

        samples = ss.data_info.get(data, {}).get("samples") if data else None
        found = Calibration(
            "eval_head", samples=min(CALIB_FALLBACK_SAMPLES, samples) if samples else CALIB_FALLBACK_SAMPLES
        )
    if job_id:
        ss.job_calibration[job_id] = found
    return found


@dataclass
class _Answering:
    """The answer in progress, shared between the run that answers and the run Streamlit starts for a Stop click
    (on another thread, while the stopped run unwinds): whether it has ended, and the turn it left."""

    done: threading.Event = field(default_factory=threading.Event)
    turn: ChatTurn | None = None


def _keep(turn: ChatTurn) -> None:
    messages = _state().messages
    if not any(t is turn for t in messages):  # once, whichever run gets here first
        messages.append(turn)


def _stop_clicked() -> None:
    """The Stop button's callback, run first in the script run Streamlit starts for the click, on a new thread
    while the answering run is stopped at its next redraw (at most half a second later), which cancels the answer
    and its sweep. It waits for that, then keeps the stopped turn itself: what the stopped run writes into the
    session's state after this run has started is not seen by this run."""
    ss = _state()
    ss.pending = None  # this run must not answer the stopped request again
    answering = ss.get("answering")
    if answering is None:
        return
    answering.done.wait(timeout=60)
    if answering.turn is not None:
        _keep(answering.turn)
        if answering.turn.kind == "stopped":
            ss.context_pending = True  # the next request is about the chosen model again


def _answer(assistant: Any, text: str) -> None:
    """Stream the answer to ``text`` into the chat, then keep it (with its report and files) in the history.

    Pressing Stop makes Streamlit stop this run at its next redraw (the clock redraws twice a second while the
    assistant works): the stop is raised inside the stream, which cancels the answer (and its sweep, on the
    server); the turn is kept as stopped (by :func:`_stop_clicked` in the run started for the click).
    """
    answering = _Answering()
    _state().answering = answering
    try:
        _answer_until_done(assistant, text, answering)
    finally:
        answering.done.set()


def _answer_until_done(assistant: Any, text: str, answering: _Answering) -> None:
    from assistant.toollog import ToolLog
    from ui.downloads import build_downloads
    from ui.render import LiveTurn
    from ui.results import absorb_reply

    ss = _state()
    with st.chat_message("assistant", avatar=":material/memory:"):
        stop = st.empty()
        stop.button(
            "Stop",
            key="stop",
            on_click=_stop_clicked,
            icon=":material/stop_circle:",
            help="Stop this request; a running sweep is cancelled",
        )
        live = LiveTurn()
        try:
            with contextlib.closing(assistant.stream(text, **_context(text), tick=live.tick)) as events:
                for event in events:
                    live.handle(event)
        except Exception as e:  # the page shows what failed, never a traceback
            live.turn.kind = "error"
            live.turn.text = f"Something went wrong while answering: {exception_text(e)}"
        except BaseException:  # Stop pressed (this run is stopped), the tab closed, the server stopping
            answering.turn = live.stopped() if live.final is None else live.turn  # an answer in is kept
            _keep(answering.turn)
            if live.final is None:
                ss.context_pending = True
            raise
        stop.empty()
        if live.final is not None:
            reply = live.final.reply
            job_id, report, sens = absorb_reply(reply, ss.jobs)
            if ToolLog(reply.tool_calls).called("run_sweep") or job_id is not None:
                ss.context_pending = False
            if report is not None and job_id is not None:
                live.turn.job_id = job_id
                live.turn.report_json = report.model_dump_json()
                live.turn.sensitivity_json = sens.model_dump_json() if sens is not None else None
                live.turn.calibration = _calibration(reply, job_id)
                live.turn.budget_s = sweep_budget_s(assistant)
                cid = report.recommended or (report.nearest[0].candidate_id if report.nearest else None)
                if (job_id, cid) not in ss.downloads:
                    with st.spinner("Preparing the downloads …"):
                        ss.downloads[(job_id, cid)] = build_downloads(assistant, ss.jobs.get(job_id), report)
        elif live.turn.kind != "error":
            live.turn.kind = "error"
            live.turn.text = "The assistant stopped without an answer."
    answering.turn = live.turn
    _keep(live.turn)


def main() -> None:
    with contextlib.suppress(Exception):  # only client.* options can be set from a script
        st.set_option("client.showErrorDetails", "none")
    st.set_page_config(page_title="QuantTaaS", page_icon=":material/compress:", layout="centered")
    _init()
    ss = _state()
    assistant = _ready_assistant()
    busy = ss.pending is not None
    _sidebar(assistant, busy)
    prompt = st.chat_input(PLACEHOLDER, key="prompt", disabled=busy)

    st.title("QuantTaaS")
    st.caption("Upload a trained model, say what you need, watch the sweep, and see the trade-off.")
    with st.chat_message("assistant", avatar=":material/memory:"):
        st.markdown(WELCOME)  # stays at the top of the chat, uploads and answers come below it
    if ss.messages:
        from ui.render import render_turn

        for i, turn in enumerate(ss.messages):
            render_turn(turn, i, ss.downloads)

    if prompt and not busy:
        _submit(str(prompt))
    if busy:
        try:
            _answer(_wait_assistant(), str(ss.pending))
        finally:
            ss.pending = None
        st.rerun()
    if assistant is None:
        _poll_ready()
    warm_imports()  # after the first view is drawn: what the first answer needs, in the background


try:
    main()
except Exception as e:  # a last guard: a readable message instead of a traceback
    st.error(f"Something went wrong: {exception_text(e)}. Reload the page to start again.")
