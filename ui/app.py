"""The QuantTaaS chat page: pick or upload a model, say what you need, watch the sweep, see the trade-off.

Run it with ``make run`` (or ``streamlit run ui/app.py``). A thin script over the assistant: the state of a
browser session (its assistant, the chat, the reports) lives in ``st.session_state``; the work behind each
widget is in a module per job (:mod:`ui.session` the assistant of the session, :mod:`ui.chat` the history,
:mod:`ui.uploads`, :mod:`ui.results`, :mod:`ui.downloads`), the drawing in :mod:`ui.render` and :mod:`ui.charts`.

A request runs in three script runs so that nothing can interrupt it: the run that receives the message stores
it and reruns with every widget disabled; that run streams the answer (each tool call a step, a progress bar
while the sweep runs) and reruns again; the last one draws the history with the widgets enabled.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from assistant.toollog import ToolLog
from ui.chat import ChatTurn, error_text, exception_text
from ui.downloads import build_downloads
from ui.render import LiveTurn, brain_label, render_turn
from ui.results import absorb_reply
from ui.session import Selection, is_offline, make_assistant, mentions_model, transport_of, use_llm
from ui.uploads import DATA_TYPES, MODEL_TYPES, inspection_markdown, register_upload, save_upload

EXAMPLES = (
    "make digits-cnn under 40 KB with less than 1% accuracy loss",
    "make digits-cnn as small as possible with at most 2% accuracy loss",
)
PLACEHOLDER = "Say what you need, e.g. “under 40 KB with less than 1% accuracy loss”"
WELCOME = (
    "Hi! I compress trained models (int8, fp16, int4 quantization) and prove the trade-off with measurements.\n\n"
    "1. Pick a zoo model in the sidebar, or upload your own ONNX model (or a `torch.export` `.pt2`) with "
    "evaluation data (`.npz`).\n"
    "2. Tell me what you need in plain words: a size, an accuracy loss you can accept, a speed-up.\n"
    "3. Watch the sweep, then compare the candidates on the charts and download the result.\n\n"
    "Follow up with *“I can accept 2%”*, *“make it smaller”*, *“why not int4?”* or *“what did you try?”*."
)


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
        ("uploaded", set()),
        ("upload_model", None),
        ("upload_data", None),
        ("zoo_names", None),
    ):
        if key not in ss:
            ss[key] = value
    if "upload_dir" not in ss:
        ss.upload_dir = tempfile.mkdtemp(prefix="quanttaas-ui-")  # private (0700) to this process's user
    if "assistant" not in ss:
        ss.startup_error = None
        try:
            with st.spinner("Starting the assistant …"):
                ss.assistant = make_assistant()
        except Exception as e:  # e.g. QUANTTAAS_MCP_URL names a server that is down
            ss.assistant = None
            ss.startup_error = exception_text(e)


# --------------------------------------------------------------------------- the sidebar


def _zoo_names(assistant: Any) -> list[str]:
    ss = _state()
    if ss.zoo_names is None:
        record = assistant.call_tool("list_zoo", {}, "ui-zoo")
        entries = (record.result or {}).get("entries", []) if record.ok else []
        ss.zoo_names = [str(e.get("name")) for e in entries] or ["digits-cnn"]
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
    info = ss.get("zoo_info", {}).get(name, "")
    _select(
        Selection(model=name, data=None, label=f"{name} (zoo)", summary=f"{info}\n\n{ss.inspections[name]}")
    )


def _upload(assistant: Any, file: Any, kind: str) -> None:
    """Store an uploaded file and say in the chat what it is (or why it cannot be used)."""
    ss = _state()
    ss.uploaded.add(file.file_id)  # one attempt per uploaded file, not one per rerun
    try:
        path = save_upload(Path(ss.upload_dir), file.name, file.getvalue())
    except OSError as e:
        ss.messages.append(ChatTurn(role="assistant", kind="error", text=f"Could not save {file.name}: {e}"))
        return
    try:
        with st.spinner(f"Checking {file.name} …"):
            record = register_upload(assistant, path, "model" if kind == "model" else "data")
    finally:
        path.unlink(missing_ok=True)
    if not record.ok or record.result is None:
        text = (
            f"I could not use **{file.name}** as {'a model' if kind == 'model' else 'data'}: "
            + error_text(record.error, record.text)
        )
        ss.messages.append(ChatTurn(role="assistant", kind="error", text=text))
        return
    if kind == "model":
        mid = str(record.result["model"]["id"])
        ss.upload_model = mid
        text = (
            f"**{file.name}** is stored as `{mid}`. {record.text}\n\n"
            + inspection_markdown(record.result.get("inspection") or {})
            + (
                "\n\nNow upload evaluation data (`.npz`) in the sidebar, then tell me what you need."
                if ss.upload_data is None
                else "\n\nTell me what you need."
            )
        )
    else:
        ss.upload_data = str(record.result["data"]["id"])
        text = f"**{file.name}**: {record.text}"
        if ss.upload_model is None:
            text += " Now upload the model it belongs to."
    ss.messages.append(ChatTurn(role="assistant", kind="info", text=text))
    if ss.upload_model is not None:
        summary = record.text if kind == "model" else (ss.selection.summary if ss.selection else "")
        _select(
            Selection(
                model=ss.upload_model,
                data=ss.upload_data,
                label=f"{ss.upload_model} (uploaded)"
                + (f" with data {ss.upload_data}" if ss.upload_data else ""),
                summary=summary,
            )
        )


def _llm_controls(assistant: Any, busy: bool) -> None:
    ss = _state()
    with st.sidebar.expander("Use an LLM (this session only)"):
        model = st.text_input(
            "LLM model (litellm string or OpenAI-compatible URL)",
            key="llm_model",
            placeholder="openai/gpt-4o-mini · ollama/qwen2.5 · http://127.0.0.1:8080/v1",
            disabled=busy,
        )
        key = st.text_input("API key", key="llm_key", type="password", disabled=busy)
        base = st.text_input("API base (optional)", key="llm_base", disabled=busy)
        left, right = st.columns(2)
        if left.button("Use this LLM", disabled=busy or is_offline(model), key="llm_use"):
            name = use_llm(assistant, model, key or None, base or None)
            ss.llm_note = (
                f"Now answering: {brain_label(name)}. If it fails, the offline planner answers instead."
            )
        if right.button("Offline planner", disabled=busy, key="llm_off"):
            use_llm(assistant, None)
            ss.llm_note = "Now answering: the offline planner."
        if ss.get("llm_note"):
            st.caption(ss.llm_note)
        st.caption(
            "The key stays in this browser session's memory: never written to disk or to the environment."
        )


def _model_controls(assistant: Any, busy: bool) -> None:
    ss = _state()
    sb = st.sidebar
    sb.subheader("Model")
    source = sb.radio(
        "Model source",
        ["Zoo model", "Upload my model"],
        key="source",
        horizontal=True,
        disabled=busy,
        label_visibility="collapsed",
    )
    if source == "Zoo model":
        names = _zoo_names(assistant)
        pick = sb.selectbox("Zoo model", names, key="zoo_pick", disabled=busy)
        if pick and (ss.selection is None or ss.selection.model != pick):
            _select_zoo(assistant, str(pick))
    else:
        model_file = sb.file_uploader(
            "Model (.onnx, or a torch.export .pt2)", type=list(MODEL_TYPES), key="model_file", disabled=busy
        )
        data_file = sb.file_uploader(
            "Evaluation data (.npz)", type=list(DATA_TYPES), key="data_file", disabled=busy
        )
        sb.caption(
            "The data file holds one array per model input, named after it (first axis = samples), and "
            "optionally `labels`; its first samples also calibrate int8."
        )
        with st.sidebar:
            if model_file is not None and model_file.file_id not in ss.uploaded:
                _upload(assistant, model_file, "model")
            if data_file is not None and data_file.file_id not in ss.uploaded:
                _upload(assistant, data_file, "data")
        if ss.upload_model is not None and (ss.selection is None or ss.selection.model != ss.upload_model):
            _select(
                Selection(
                    model=ss.upload_model,
                    data=ss.upload_data,
                    label=f"{ss.upload_model} (uploaded)",
                    summary="",
                )
            )
    sel = ss.selection
    if sel is not None and (source == "Zoo model" or sel.model == ss.upload_model):
        sb.markdown(f"**Selected:** `{sel.label}`")
        if sel.summary:
            sb.caption(sel.summary)


def _sidebar(assistant: Any, busy: bool) -> None:
    sb = st.sidebar
    sb.title("QuantTaaS")
    sb.caption("Compress a trained model; see what it costs.")
    who = sb.empty()
    _llm_controls(assistant, busy)
    who.markdown(
        f"**Answering:** {brain_label(assistant.brain_name)}  \n"
        f"<small>tools: {transport_of(assistant)}</small>",
        unsafe_allow_html=True,
    )
    _model_controls(assistant, busy)
    sb.subheader("Try")
    for i, example in enumerate(EXAMPLES):
        if sb.button(example, key=f"example{i}", disabled=busy, width="stretch"):
            _submit(example)


# --------------------------------------------------------------------------- a request


def _submit(text: str) -> None:
    ss = _state()
    ss.messages.append(ChatTurn(role="user", text=text))
    ss.pending = text
    st.rerun()


def _context(text: str) -> dict[str, str | None]:
    """The model and data chosen in the sidebar, for the first request after the choice: a follow-up
    ("I can accept 2%") refines the last request instead, and a message that names a model wins.
    """
    ss = _state()
    sel = ss.selection
    if sel is None or not ss.context_pending:
        return {}
    names = [*(ss.zoo_names or []), *([ss.upload_model] if ss.upload_model else [])]
    if mentions_model(text, names):
        return {}
    return {"model": sel.model, "data": sel.data}


def _answer(assistant: Any, text: str) -> None:
    """Stream the answer to ``text`` into the chat, then keep it (with its report and files) in the history."""
    ss = _state()
    with st.chat_message("assistant", avatar=":material/memory:"):
        live = LiveTurn()
        try:
            for event in assistant.stream(text, **_context(text)):
                live.handle(event)
        except Exception as e:  # the page shows what failed, never a traceback
            live.turn.kind = "error"
            live.turn.text = f"Something went wrong while answering: {exception_text(e)}"
        if live.final is not None:
            reply = live.final.reply
            job_id, report, sens = absorb_reply(reply, ss.jobs)
            if ToolLog(reply.tool_calls).called("run_sweep") or job_id is not None:
                ss.context_pending = False
            if report is not None and job_id is not None:
                live.turn.job_id = job_id
                live.turn.report_json = report.model_dump_json()
                live.turn.sensitivity_json = sens.model_dump_json() if sens is not None else None
                cid = report.recommended or (report.nearest[0].candidate_id if report.nearest else None)
                if (job_id, cid) not in ss.downloads:
                    with st.spinner("Preparing the downloads …"):
                        ss.downloads[(job_id, cid)] = build_downloads(assistant, ss.jobs.get(job_id), report)
        elif live.turn.kind != "error":
            live.turn.kind = "error"
            live.turn.text = "The assistant stopped without an answer."
    ss.messages.append(live.turn)


def main() -> None:
    with contextlib.suppress(Exception):  # only client.* options can be set from a script
        st.set_option("client.showErrorDetails", "none")
    st.set_page_config(page_title="QuantTaaS", page_icon=":material/compress:", layout="centered")
    _init()
    ss = _state()
    assistant = ss.assistant
    if assistant is None:
        st.error(f"The assistant could not start: {ss.startup_error}")
        st.stop()
    busy = ss.pending is not None
    _sidebar(assistant, busy)
    prompt = st.chat_input(PLACEHOLDER, key="prompt", disabled=busy)

    st.title("QuantTaaS")
    st.caption("Upload a trained model, say what you need, watch the sweep, and see the trade-off.")
    if not ss.messages:
        with st.chat_message("assistant", avatar=":material/memory:"):
            st.markdown(WELCOME)
    for i, turn in enumerate(ss.messages):
        render_turn(turn, i, ss.downloads)

    if prompt and not busy:
        _submit(str(prompt))
    if busy:
        try:
            _answer(assistant, str(ss.pending))
        finally:
            ss.pending = None
        st.rerun()


try:
    main()
except Exception as e:  # a last guard: a readable message instead of a traceback
    st.error(f"Something went wrong: {exception_text(e)}. Reload the page to start again.")
