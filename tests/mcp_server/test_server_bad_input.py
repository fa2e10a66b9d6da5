"""Bad input over HTTP and MCP: every case gets a clear error with the right code, and the server stays up."""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from server_testdata import tiny_model

UPLOAD_LIMIT = 300_000
BODY_LIMIT = 200_000
UNKNOWN_JOB = "0123456789abcdef"


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


TINY = tiny_model().SerializeToString()
PICKLED_NPZ = _npz(x=np.array([{"a": 1}], dtype=object))
TINY_NPZ = _npz(x=np.zeros((4, 4), np.float32), labels=np.zeros(4, np.int64))
_X = np.random.default_rng(3).standard_normal((64, 4)).astype(np.float32)
TINY_EVAL_NPZ = _npz(x=_X, labels=np.zeros(64, np.int64))


@pytest.fixture(scope="module")
def bad_app(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Iterator[Any]:
    from mcp_server.http_app import create_app
    from mcp_server.settings import ServerSettings

    home = tmp_path_factory.mktemp("bad-input-home")
    settings = ServerSettings(
        home=home,
        zoo_dir=zoo_dir,
        sweep_executor="serial",
        max_upload_bytes=UPLOAD_LIMIT,
        max_body_bytes=BODY_LIMIT,
    )
    yield create_app(settings)


@pytest.fixture(scope="module")
def http(bad_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with TestClient(bad_app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        # a stored model without data of its own, for the "needs data" cases
        stored = c.post("/models", files={"file": ("tiny.onnx", TINY)}, data={"name": "tiny"})
        assert stored.status_code == 200, stored.text
        c.stored_model = stored.json()["model"]["id"]  # type: ignore[attr-defined]
        files = tmp_path_factory.mktemp("server-files")
        (files / "notes.txt").write_text("hello")
        (files / "folder.onnx").mkdir()
        c.files_dir = files  # type: ignore[attr-defined]
        yield c


def _assert_alive(http: Any) -> None:
    assert http.get("/health").status_code == 200
    assert http.post("/tools/list_zoo").status_code == 200


HTTP_CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("unknown-tool", "post", "/tools/format_disk", {"json": {}}, 404, "not_found"),
    ("unknown-route", "get", "/nowhere", {}, 404, "not_found"),
    ("wrong-method", "get", "/tools/inspect_model/run", {}, 404, "not_found"),
    ("method-not-allowed", "delete", "/tools", {}, 405, "method_not_allowed"),
    (
        "invalid-json",
        "post",
        "/tools/inspect_model",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "input_invalid",
    ),
    ("json-array-body", "post", "/tools/inspect_model", {"json": ["digits-cnn"]}, 422, "input_invalid"),
    ("json-string-body", "post", "/tools/inspect_model", {"json": "digits-cnn"}, 422, "input_invalid"),
    ("json-null-required", "post", "/tools/inspect_model", {"json": None}, 422, "input_invalid"),
    ("wrong-type-int", "post", "/tools/inspect_model", {"json": {"model": 123}}, 422, "input_invalid"),
    ("wrong-type-bool", "post", "/tools/parse_goal", {"json": {"text": True}}, 422, "input_invalid"),
    ("wrong-type-list", "post", "/tools/get_job", {"json": {"job_id": [UNKNOWN_JOB]}}, 422, "input_invalid"),
    ("missing-field", "post", "/tools/inspect_model", {"json": {}}, 422, "input_invalid"),
    (
        "extra-field",
        "post",
        "/tools/inspect_model",
        {"json": {"model": "digits-cnn", "sudo": True}},
        422,
        "input_invalid",
    ),
    (
        "huge-int",
        "post",
        "/tools/profile_layers",
        {"json": {"model": "digits-cnn", "samples": 10**30}},
        422,
        "input_invalid",
    ),
    (
        "negative-int",
        "post",
        "/tools/profile_layers",
        {"json": {"model": "digits-cnn", "samples": -1}},
        422,
        "input_invalid",
    ),
    ("float-for-int", "post", "/tools/list_jobs", {"json": {"limit": 2.5}}, 422, "input_invalid"),
    (
        "nan-for-int",
        "post",
        "/tools/list_jobs",
        {"content": b'{"limit": NaN}', "headers": {"content-type": "application/json"}},
        422,
        "input_invalid",
    ),
    ("limit-zero", "post", "/tools/list_jobs", {"json": {"limit": 0}}, 422, "input_invalid"),
    ("unknown-enum", "post", "/tools/list_jobs", {"json": {"state": "exploded"}}, 422, "input_invalid"),
    (
        "traversal-model",
        "post",
        "/tools/inspect_model",
        {"json": {"model": "../../etc/passwd"}},
        422,
        "input_invalid",
    ),
    (
        "absolute-path-model",
        "post",
        "/tools/inspect_model",
        {"json": {"model": "/etc/passwd"}},
        422,
        "input_invalid",
    ),
    ("dotdot-inside-model", "post", "/tools/inspect_model", {"json": {"model": "a..b"}}, 404, "not_found"),
    (
        "long-model-name",
        "post",
        "/tools/inspect_model",
        {"json": {"model": "a" * 10_000}},
        422,
        "input_invalid",
    ),
    ("unknown-model", "post", "/tools/inspect_model", {"json": {"model": "no-such-model"}}, 404, "not_found"),
    ("empty-goal", "post", "/tools/parse_goal", {"json": {"text": ""}}, 422, "input_invalid"),
    ("long-goal", "post", "/tools/parse_goal", {"json": {"text": "small " * 2000}}, 422, "input_invalid"),
    ("unknown-job", "post", "/tools/get_job", {"json": {"job_id": UNKNOWN_JOB}}, 404, "not_found"),
    (
        "malformed-job",
        "post",
        "/tools/get_job",
        {"json": {"job_id": "../../../../etc"}},
        422,
        "input_invalid",
    ),
    ("unknown-job-route", "get", f"/jobs/{UNKNOWN_JOB}", {}, 404, "not_found"),
    ("malformed-job-route", "get", "/jobs/not-a-job-id", {}, 422, "input_invalid"),
    ("encoded-traversal-job-route", "get", "/jobs/%2e%2e%2fjobs", {}, 404, "not_found"),
    ("cancel-unknown-job", "post", "/tools/cancel_job", {"json": {"job_id": UNKNOWN_JOB}}, 404, "not_found"),
    (
        "report-unknown-job",
        "post",
        "/tools/get_pareto_report",
        {"json": {"job_id": UNKNOWN_JOB}},
        404,
        "not_found",
    ),
    (
        "recommend-unknown-job",
        "post",
        "/tools/recommend",
        {"json": {"job_id": UNKNOWN_JOB, "goal": "small"}},
        404,
        "not_found",
    ),
    (
        "resume-unknown-job",
        "post",
        "/tools/run_sweep",
        {"json": {"resume_job_id": UNKNOWN_JOB}},
        404,
        "not_found",
    ),
    (
        "artifact-traversal-tool",
        "post",
        "/tools/get_artifact",
        {"json": {"artifact_id": f"{UNKNOWN_JOB}/../../../etc/passwd"}},
        422,
        "input_invalid",
    ),
    (
        "artifact-unknown-job",
        "post",
        "/tools/get_artifact",
        {"json": {"artifact_id": f"{UNKNOWN_JOB}/best.onnx"}},
        404,
        "not_found",
    ),
    (
        "artifact-traversal-route",
        "get",
        f"/artifacts/{UNKNOWN_JOB}/..%2f..%2fjobs.sqlite",
        {},
        404,
        "not_found",
    ),
    ("artifact-encoded-traversal", "get", "/artifacts/%2e%2e/%2e%2e/etc/passwd", {}, 404, "not_found"),
    (
        "sweep-goal-without-limits",
        "post",
        "/tools/run_sweep",
        {"json": {"model": "digits-cnn", "goal": "hello"}},
        400,
        "goal_invalid",
    ),
    (
        "sweep-unknown-data",
        "post",
        "/tools/run_sweep",
        {"json": {"model": "digits-cnn", "goal": "under 1 MB", "data": "no-such-data"}},
        404,
        "not_found",
    ),
    (
        "sweep-resume-and-new",
        "post",
        "/tools/run_sweep",
        {"json": {"model": "digits-cnn", "goal": "under 1 MB", "resume_job_id": UNKNOWN_JOB}},
        422,
        "input_invalid",
    ),
    (
        "register-missing-file",
        "post",
        "/tools/register_model",
        {"json": {"path": "/nonexistent/model.onnx"}},
        404,
        "not_found",
    ),
    (
        "register-null-byte",
        "post",
        "/tools/register_model",
        {"json": {"path": "/tmp/a\u0000.onnx"}},
        422,
        "input_invalid",
    ),
    (
        "register-two-sources",
        "post",
        "/tools/register_model",
        {"json": {"path": "/x.onnx", "content_base64": "AAAA", "filename": "x.onnx"}},
        422,
        "input_invalid",
    ),
    (
        "register-bad-base64",
        "post",
        "/tools/register_model",
        {"json": {"content_base64": "not base64!!", "filename": "x.onnx"}},
        422,
        "input_invalid",
    ),
    (
        "register-base64-garbage-model",
        "post",
        "/tools/register_model",
        {"json": {"content_base64": "AAECAwQFBgcICQ==", "filename": "x.onnx"}},
        400,
        "model_load",
    ),
    (
        "register-base64-wrong-type",
        "post",
        "/tools/register_model",
        {"json": {"content_base64": "AAECAwQFBgcICQ==", "filename": "x.exe"}},
        415,
        "file_type",
    ),
    (
        "upload-corrupt-onnx",
        "post",
        "/models",
        {"files": {"file": ("m.onnx", b"\x00garbage" * 64)}},
        400,
        "model_load",
    ),
    (
        "upload-truncated-onnx",
        "post",
        "/models",
        {"files": {"file": ("m.onnx", TINY[: len(TINY) // 2])}},
        400,
        "model_load",
    ),
    ("upload-empty", "post", "/models", {"files": {"file": ("m.onnx", b"")}}, 400, "model_load"),
    (
        "upload-wrong-extension",
        "post",
        "/models",
        {"files": {"file": ("m.exe", b"MZ" + b"\x00" * 100)}},
        415,
        "file_type",
    ),
    (
        "upload-pt2-not-zip",
        "post",
        "/models",
        {"files": {"file": ("m.pt2", b"not a zip at all")}},
        400,
        "model_load",
    ),
    (
        "upload-no-file-field",
        "post",
        "/models",
        {"data": {"name": "x"}, "files": {"other": ("m.onnx", TINY)}},
        400,
        "input_invalid",
    ),
    ("upload-not-multipart", "post", "/models", {"json": {"file": "m.onnx"}}, 415, "file_type"),
    (
        "upload-bad-name",
        "post",
        "/models",
        {"files": {"file": ("m.onnx", TINY)}, "data": {"name": "../../x"}},
        422,
        "input_invalid",
    ),
    (
        "upload-too-large",
        "post",
        "/models",
        {"files": {"file": ("m.onnx", b"\x00" * (UPLOAD_LIMIT + 1))}},
        413,
        "payload_too_large",
    ),
    (
        "body-too-large",
        "post",
        "/tools/parse_goal",
        {"json": {"text": "x" * (BODY_LIMIT + 10)}},
        413,
        "payload_too_large",
    ),
    ("upload-pickled-npz", "post", "/data", {"files": {"file": ("d.npz", PICKLED_NPZ)}}, 400, "data_invalid"),
    (
        "upload-npz-not-zip",
        "post",
        "/data",
        {"files": {"file": ("d.npz", b"\x93NUMPY fake")}},
        400,
        "data_invalid",
    ),
    (
        "upload-data-wrong-extension",
        "post",
        "/data",
        {"files": {"file": ("d.csv", b"a,b\n1,2\n")}},
        415,
        "file_type",
    ),
    (
        "bad-content-length",
        "post",
        "/tools/list_zoo",
        {"content": b"{}", "headers": {"content-length": "abc", "content-type": "application/json"}},
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [c[1:] for c in HTTP_CASES],
    ids=[c[0] for c in HTTP_CASES],
)
def test_bad_input_http_gets_a_clear_error_and_the_server_stays_up(
    http: Any, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = getattr(http, method)(path, **kwargs) if method != "post" or kwargs else http.post(path)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["hint"]
    assert "Traceback" not in r.text
    _assert_alive(http)


def test_bad_input_http_server_side_paths(http: Any) -> None:
    folder = http.files_dir / "folder.onnx"
    notes = http.files_dir / "notes.txt"
    r = http.post("/tools/register_model", json={"path": str(folder)})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = http.post("/tools/register_model", json={"path": str(notes)})
    assert r.status_code == 415 and r.json()["error"]["code"] == "file_type"
    _assert_alive(http)


def test_bad_input_http_stored_model_without_data_cannot_be_swept(http: Any) -> None:
    r = http.post("/tools/run_sweep", json={"model": http.stored_model, "goal": "under 1 MB"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "data_invalid"
    assert "register_data" in r.json()["error"]["hint"]


def test_bad_input_http_data_that_does_not_fit_the_model(http: Any) -> None:
    data = http.post("/data", files={"file": ("tiny.npz", TINY_NPZ)}).json()["data"]["id"]
    r = http.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": "under 1 MB", "data": data})
    assert r.status_code == 400 and r.json()["error"]["code"] == "data_invalid"
    _assert_alive(http)


@pytest.mark.slow
def test_bad_input_malicious_pt2_is_refused_without_running_its_pickle(http: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            import os

            return (os.system, (f"touch {marker}",))

    import pickle

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Exploit()))
        z.writestr("archive/version", "1\n")
    r = http.post("/models", files={"file": ("evil.pt2", buf.getvalue())})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_load"
    assert not marker.exists()
    stored = http.post("/tools/list_models").json()["result"]["models"]
    assert [m["id"] for m in stored] == [http.stored_model]  # nothing was stored


# --------------------------------------------------------------------------- MCP

MCP_CASES: list[tuple[str, str, Any, str]] = [
    ("unknown-tool", "format_disk", {}, "not_found"),
    ("wrong-type", "inspect_model", {"model": 123}, "input_invalid"),
    ("missing-field", "inspect_model", {}, "input_invalid"),
    ("extra-field", "list_zoo", {"verbose": True}, "input_invalid"),
    ("huge-int", "profile_layers", {"model": "digits-cnn", "samples": 10**40}, "input_invalid"),
    ("traversal-model", "inspect_model", {"model": "../../../etc/shadow"}, "input_invalid"),
    ("unknown-model", "inspect_model", {"model": "ghost"}, "not_found"),
    ("unknown-job", "get_job", {"job_id": UNKNOWN_JOB}, "not_found"),
    ("cancel-unknown-job", "cancel_job", {"job_id": UNKNOWN_JOB}, "not_found"),
    ("artifact-traversal", "get_artifact", {"artifact_id": "../../etc/passwd"}, "input_invalid"),
    ("bad-base64", "register_data", {"content_base64": "%%%%", "filename": "d.npz"}, "input_invalid"),
    (
        "corrupt-model",
        "register_model",
        {"content_base64": "AAECAwQFBgcICQ==", "filename": "m.onnx"},
        "model_load",
    ),
    ("goal-without-limits", "run_sweep", {"model": "digits-cnn", "goal": "please"}, "goal_invalid"),
    ("report-unknown-job", "get_pareto_report", {"job_id": UNKNOWN_JOB}, "not_found"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_bad_input_mcp_gets_the_error_envelope_and_the_session_stays_up(
    bad_app: Any, http: Any
) -> None:
    async with Client(bad_app.state.mcp, mode="legacy") as c:
        for case_id, tool, args, code in MCP_CASES:
            r = await c.call_tool(tool, args)
            assert r.is_error, case_id
            err = json.loads(r.content[0].text)["error"]
            assert err["code"] == code, (case_id, err)
            assert err["hint"], case_id
            alive = await c.call_tool("list_zoo", {})
            assert not alive.is_error, case_id


# --------------------------------------------------------------------------- concurrent cancel


def test_bad_input_concurrent_cancel_is_safe(bad_app: Any, http: Any, wait_job: Any) -> None:
    gate, release = threading.Event(), threading.Event()

    def hold(job_id: str, event: str, payload: dict[str, Any]) -> None:
        if event == "trial" and not gate.is_set():
            gate.set()
            release.wait(60)

    bad_app.state.services.jobs.add_listener(hold)
    model = http.post(
        "/tools/register_model",
        json={"content_base64": base64.b64encode(TINY).decode(), "filename": "tiny.onnx"},
    ).json()["result"]["model"]["id"]
    data = http.post("/data", files={"file": ("eval.npz", TINY_EVAL_NPZ)}).json()["data"]["id"]
    args = {"model": model, "data": data, "goal": "the most accurate model", "exhaustive": True}
    job_id = http.post("/tools/run_sweep", json=args).json()["result"]["job_id"]
    assert gate.wait(120)
    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(
            pool.map(lambda _: http.post("/tools/cancel_job", json={"job_id": job_id}), range(24))
        )
    release.set()
    assert [r.status_code for r in responses] == [200] * 24
    assert all(r.json()["result"]["cancel_requested"] for r in responses)
    assert wait_job(http, job_id)["state"] == "cancelled"
    again = http.post("/tools/cancel_job", json={"job_id": job_id})
    assert again.status_code == 200 and again.json()["result"]["state"] == "cancelled"
    _assert_alive(http)
