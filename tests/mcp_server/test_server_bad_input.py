"""Bad input over HTTP and MCP: every case gets a clear error with the right code, and the server stays up.

Kinds covered: the HTTP_CASES and MCP_CASES tables (one row each), plus the scenario tests below them: data that
cannot be measured (labels, degenerate baselines), damaged or read-only storage, envelopes for chunked bodies,
405/HEAD, Host checks, the OpenAPI document, and answers that must not show server paths.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from onnx import numpy_helper
from server_testdata import tiny_model

UPLOAD_LIMIT = 300_000
BODY_LIMIT = 200_000
UNKNOWN_JOB = "0123456789abcdef"


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _tiny_predictions(x: np.ndarray) -> np.ndarray:
    """The class the tiny model (Gemm, 3 classes) predicts for each row of x."""
    w, b = (numpy_helper.to_array(t) for t in tiny_model().graph.initializer)
    return np.asarray((x @ w.T + b).argmax(axis=1))


def _damaged_model(kind: str) -> bytes:
    """The tiny model with a cycle, a 2**42-float initializer backed by nothing, or weights in a missing file."""
    m = tiny_model()
    if kind == "cycle":
        m.graph.node.extend(
            [
                onnx.helper.make_node("Add", ["x", "z"], ["w"], name="a"),
                onnx.helper.make_node("Relu", ["w"], ["z"], name="b"),
            ]
        )
    elif kind == "hollow":
        t = onnx.TensorProto(name="W", data_type=onnx.TensorProto.FLOAT, dims=[1 << 21, 1 << 21])
        m.graph.initializer[0].CopyFrom(t)
    else:
        w = m.graph.initializer[0]
        w.ClearField("raw_data")
        w.ClearField("float_data")
        w.data_location = onnx.TensorProto.EXTERNAL
        w.external_data.add(key="location", value="weights.bin")
    return m.SerializeToString()


TINY = tiny_model().SerializeToString()
PICKLED_NPZ = _npz(x=np.array([{"a": 1}], dtype=object))
TINY_NPZ = _npz(x=np.zeros((4, 4), np.float32), labels=np.zeros(4, np.int64))
_X = np.random.default_rng(3).standard_normal((64, 4)).astype(np.float32)
_Y = _tiny_predictions(_X)
TINY_EVAL_NPZ = _npz(x=_X, labels=_Y)  # the model's own predictions: a baseline of 100%
_NAN_X = _X.copy()
_NAN_X[5, 2] = np.nan
_INF_X = _X.copy()
_INF_X[7, 0] = np.inf
NOT_NPY_NPZ = _zip({"x.npy": b"this member is not an array"})
HUGE_HEADER_NPZ = _zip({"x.npy": _npy_header((1 << 40,)) + b"\x00" * 64})  # declares 4 TiB
NAN_INPUT_NPZ = _npz(x=_NAN_X, labels=_Y)
INF_INPUT_NPZ = _npz(x=_INF_X, labels=_Y)
NAN_LABELS_NPZ = _npz(x=_X, labels=np.where(np.arange(64) == 3, np.nan, _Y.astype(np.float64)))
NEGATIVE_LABEL_NPZ = _npz(x=_X, labels=np.where(np.arange(64) == 3, -1, _Y))
FRACTION_LABEL_NPZ = _npz(x=_X, labels=_Y + 0.5)
UNKNOWN_METRIC_NPZ = _npz(x=_X, labels=_Y, metric=np.asarray("vibes"))
HUGE_LABEL_NPZ = _npz(x=_X, labels=np.where(np.arange(64) == 3, 2**63 - 1, _Y).astype(np.int64))
WRONG_LABELS_NPZ = _npz(x=_X, labels=(_Y + 1) % 3)  # in range, never right: the original scores 0%
CHANCE_LABELS_NPZ = _npz(x=_X, labels=np.random.default_rng(9).integers(0, 3, 64))  # labels of nothing


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


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
    # issue 16: archives numpy trusts blindly, values nothing can be measured on
    *[
        (f"upload-npz-{kind}", "post", "/data", {"files": {"file": ("d.npz", blob)}}, 400, "data_invalid")
        for kind, blob in [
            ("member-not-npy", NOT_NPY_NPZ),
            ("4tib-header", HUGE_HEADER_NPZ),
            ("nan-input", NAN_INPUT_NPZ),
            ("inf-input", INF_INPUT_NPZ),
            ("nan-labels", NAN_LABELS_NPZ),
            ("negative-label", NEGATIVE_LABEL_NPZ),
            ("fraction-label", FRACTION_LABEL_NPZ),
            ("unknown-metric", UNKNOWN_METRIC_NPZ),
        ]
    ],
    # issue 16: validated means validated
    *[
        (
            f"upload-onnx-{kind}",
            "post",
            "/models",
            {"files": {"file": ("m.onnx", _damaged_model(kind))}},
            400,
            "model_load",
        )
        for kind in ("cycle", "hollow", "missing-external-data")
    ],
    # issue 16: strict types, no quiet conversions
    ("strict-bool-for-int", "post", "/tools/list_jobs", {"json": {"limit": True}}, 422, "input_invalid"),
    ("strict-string-for-int", "post", "/tools/list_jobs", {"json": {"limit": "4"}}, 422, "input_invalid"),
    (
        "strict-whole-float-for-int",
        "post",
        "/tools/list_jobs",
        {"json": {"limit": 1.0}},
        422,
        "input_invalid",
    ),
    (
        "strict-string-for-bool",
        "post",
        "/tools/get_job",
        {"json": {"job_id": UNKNOWN_JOB, "include_trials": "yes"}},
        422,
        "input_invalid",
    ),
    (
        "strict-string-in-structured-goal",
        "post",
        "/tools/run_sweep",
        {"json": {"model": "digits-cnn", "goal": {"max_size_mb": "5"}}},
        422,
        "input_invalid",
    ),
    (
        "strict-int-for-string",
        "post",
        "/tools/parse_goal",
        {"json": {"text": "under 5 MB", "prior": {"max_size_mb": 5, "objective": 1}}},
        422,
        "input_invalid",
    ),
    # issue 16: impossible numbers are not read without their sign
    (
        "negative-goal-sweep",
        "post",
        "/tools/run_sweep",
        {"json": {"model": "digits-cnn", "goal": "under -5 MB, -1%"}},
        400,
        "goal_invalid",
    ),
    # issue 16: one Host check for REST and /mcp/
    *[
        (
            f"host-{kind}-{where.strip('/').replace('/', '-') or 'root'}",
            method,
            where,
            {"headers": {"host": host}},
            421,
            "host_not_allowed",
        )
        for kind, host in [
            ("ipv6-suffix", "[::1].anything"),
            ("port-suffix", "127.0.0.1:80.evil"),
            ("bare-ipv6", "::1"),
        ]
        for method, where in [("get", "/health"), ("get", "/tools"), ("post", "/mcp/")]
    ],
    (
        "origin-ipv6-suffix",
        "get",
        "/tools",
        {"headers": {"origin": "http://[::1].evil"}},
        403,
        "origin_not_allowed",
    ),
    # a data upload checked against a model that does not exist, or is not an id
    (
        "upload-data-unknown-model",
        "post",
        "/data",
        {"files": {"file": ("d.npz", TINY_EVAL_NPZ)}, "data": {"model": "ghost"}},
        404,
        "not_found",
    ),
    (
        "upload-data-bad-model-field",
        "post",
        "/data",
        {"files": {"file": ("d.npz", TINY_EVAL_NPZ)}, "data": {"model": "../../x"}},
        422,
        "input_invalid",
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
    # issue 16
    *[
        (f"npz-{kind}", "register_data", {"content_base64": _b64(blob), "filename": "d.npz"}, "data_invalid")
        for kind, blob in [
            ("member-not-npy", NOT_NPY_NPZ),
            ("4tib-header", HUGE_HEADER_NPZ),
            ("nan-input", NAN_INPUT_NPZ),
            ("inf-input", INF_INPUT_NPZ),
            ("nan-labels", NAN_LABELS_NPZ),
            ("negative-label", NEGATIVE_LABEL_NPZ),
        ]
    ],
    *[
        (
            f"onnx-{kind}",
            "register_model",
            {"content_base64": _b64(_damaged_model(kind)), "filename": "m.onnx"},
            "model_load",
        )
        for kind in ("cycle", "hollow", "missing-external-data")
    ],
    ("strict-bool-for-int", "list_jobs", {"limit": True}, "input_invalid"),
    ("strict-string-for-int", "list_jobs", {"limit": "4"}, "input_invalid"),
    ("strict-whole-float-for-int", "list_jobs", {"limit": 1.0}, "input_invalid"),
    ("strict-string-for-bool", "get_job", {"job_id": UNKNOWN_JOB, "include_trials": "yes"}, "input_invalid"),
    (
        "strict-string-in-structured-goal",
        "run_sweep",
        {"model": "digits-cnn", "goal": {"max_size_mb": "5"}},
        "input_invalid",
    ),
    ("negative-goal-sweep", "run_sweep", {"model": "digits-cnn", "goal": "under -5 MB, -1%"}, "goal_invalid"),
    (
        "register-data-unknown-model",
        "register_data",
        {"content_base64": _b64(TINY_EVAL_NPZ), "filename": "d.npz", "model": "ghost"},
        "not_found",
    ),
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


# --------------------------------------------------------------------------- issue 16, point 1: nothing to measure


def _mcp_error(r: Any) -> dict[str, Any]:
    assert r.is_error, r
    err: dict[str, Any] = json.loads(r.content[0].text)["error"]
    assert err["message"] and err["hint"]
    return err


@pytest.fixture(scope="module")
def tiny_id(http: Any) -> str:
    r = http.post("/tools/register_model", json={"content_base64": _b64(TINY), "filename": "tiny.onnx"})
    assert r.status_code == 200, r.text
    return str(r.json()["result"]["model"]["id"])


def _upload_data(http: Any, blob: bytes, **form: str) -> Any:
    return http.post("/data", files={"file": ("eval.npz", blob)}, data=form or None)


def test_bad_input_labels_outside_the_output_are_refused_at_registration_and_sweep_http(
    http: Any, tiny_id: str
) -> None:
    jobs_before = len(http.get("/jobs", params={"limit": 200}).json()["jobs"])
    # without a model, a label of 2**63-1 cannot be judged: it is stored ...
    data = _upload_data(http, HUGE_LABEL_NPZ)
    assert data.status_code == 200, data.text
    # ... and refused as soon as a model is named: at registration with `model`, and by run_sweep
    checked = _upload_data(http, HUGE_LABEL_NPZ, model=tiny_id)
    assert checked.status_code == 400 and checked.json()["error"]["code"] == "data_invalid"
    assert "names a class the model does not have" in checked.json()["error"]["message"]
    args = {"model": tiny_id, "data": data.json()["data"]["id"], "goal": "under 1 MB"}
    r = http.post("/tools/run_sweep", json=args)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "data_invalid" and "3 classes" in err["message"]
    assert len(http.get("/jobs", params={"limit": 200}).json()["jobs"]) == jobs_before  # no job was started


@pytest.mark.anyio
async def test_bad_input_labels_outside_the_output_are_refused_at_registration_and_sweep_mcp(
    bad_app: Any, http: Any, tiny_id: str
) -> None:
    async with Client(bad_app.state.mcp, mode="legacy") as c:
        stored = await c.call_tool(
            "register_data", {"content_base64": _b64(HUGE_LABEL_NPZ), "filename": "h.npz"}
        )
        assert not stored.is_error
        checked = await c.call_tool(
            "register_data", {"content_base64": _b64(HUGE_LABEL_NPZ), "filename": "h.npz", "model": tiny_id}
        )
        assert _mcp_error(checked)["code"] == "data_invalid"
        data_id = stored.structured_content["data"]["id"]  # type: ignore[index]
        r = await c.call_tool("run_sweep", {"model": tiny_id, "data": data_id, "goal": "under 1 MB"})
        assert _mcp_error(r)["code"] == "data_invalid"


@pytest.mark.parametrize(
    ("blob", "words"),
    [(WRONG_LABELS_NPZ, "learned nothing"), (CHANCE_LABELS_NPZ, "chance level")],
    ids=["zero", "chance"],
)
def test_bad_input_degenerate_baseline_stops_the_sweep_without_a_recommendation_http(
    http: Any, tiny_id: str, wait_job: Any, blob: bytes, words: str
) -> None:
    refused = _upload_data(http, blob, model=tiny_id)
    assert refused.status_code == 400 and words in refused.json()["error"]["message"], refused.text
    data = _upload_data(http, blob).json()["data"]["id"]
    started = http.post(
        "/tools/run_sweep", json={"model": tiny_id, "data": data, "goal": "the most accurate model"}
    )
    assert started.status_code == 200, started.text
    job = wait_job(http, started.json()["result"]["job_id"])
    assert job["state"] == "failed" and job["error"]["code"] == "data_invalid", job
    assert words in job["error"]["message"] and job["trials_finished"] == 0
    report = http.get(f"/jobs/{job['job_id']}/report")
    assert report.status_code == 409 and report.json()["error"]["code"] == "job_state"


@pytest.mark.anyio
async def test_bad_input_degenerate_baseline_stops_the_sweep_without_a_recommendation_mcp(
    bad_app: Any, http: Any, tiny_id: str
) -> None:
    services = bad_app.state.services
    async with Client(bad_app.state.mcp, mode="legacy") as c:
        for blob, words in [(WRONG_LABELS_NPZ, "learned nothing"), (CHANCE_LABELS_NPZ, "chance level")]:
            refused = await c.call_tool(
                "register_data", {"content_base64": _b64(blob), "filename": "w.npz", "model": tiny_id}
            )
            assert words in _mcp_error(refused)["message"]
            stored = await c.call_tool("register_data", {"content_base64": _b64(blob), "filename": "w.npz"})
            data = stored.structured_content["data"]["id"]  # type: ignore[index]
            started = await c.call_tool("run_sweep", {"model": tiny_id, "data": data, "goal": "under 1 MB"})
            job_id = started.structured_content["job_id"]  # type: ignore[index]
            services.jobs.wait(job_id, timeout=120)
            job = (await c.call_tool("get_job", {"job_id": job_id})).structured_content
            assert job["state"] == "failed" and job["error"]["code"] == "data_invalid", job  # type: ignore[index]
            assert (
                _mcp_error(await c.call_tool("recommend", {"job_id": job_id, "goal": "small"}))["code"]
                == "job_state"
            )


def test_bad_input_data_that_fits_its_model_is_stored_with_the_baseline_it_measured(
    http: Any, tiny_id: str
) -> None:
    r = _upload_data(http, TINY_EVAL_NPZ, model=tiny_id)
    assert r.status_code == 200, r.text
    assert r.json()["checked_model"] == tiny_id and r.json()["baseline_metric"] == 1.0


# --------------------------------------------------------------------------- point 7: impossible numbers


@pytest.mark.anyio
async def test_bad_input_negative_goal_numbers_are_not_understood_http_and_mcp(
    bad_app: Any, http: Any
) -> None:
    text = "under -5 MB, -1%"
    r = http.post("/tools/parse_goal", json={"text": text}).json()["result"]
    async with Client(bad_app.state.mcp, mode="legacy") as c:
        m = (await c.call_tool("parse_goal", {"text": text})).structured_content
    for result in (r, m):
        assert result["understood_all"] is False and result["runnable"] is False  # type: ignore[index]
        goal = result["goal"]  # type: ignore[index]
        assert goal["max_size_mb"] is None and goal["max_accuracy_drop_pct"] is None
        assert {"-5", "-1%"} <= set(goal["unparsed_words"])


# --------------------------------------------------------------------------- point 5: envelopes


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize("path", ["/mcp/", "/tools/parse_goal"])
def test_bad_input_chunked_body_over_the_limit_is_a_413_envelope(http: Any, path: str) -> None:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    r = http.post(path, content=_chunks(40 << 20), headers=headers)  # no Content-Length: chunked
    assert r.status_code == 413, r.text[:300]
    assert (
        r.json()["error"]["code"] == "payload_too_large"
        and "QUANTTAAS_MAX_BODY_BYTES" in r.json()["error"]["hint"]
    )
    _assert_alive(http)


def test_bad_input_405_names_the_allowed_methods(http: Any) -> None:
    for method, path, allowed in [
        ("delete", "/tools", "GET, HEAD"),
        ("put", "/tools/list_zoo", "GET, HEAD, POST"),
        ("patch", "/jobs", "GET, HEAD"),
        ("delete", "/models", "POST"),
    ]:
        r = http.request(method.upper(), path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path, r.headers)
        assert r.json()["error"]["code"] == "method_not_allowed" and allowed in r.json()["error"]["hint"]


def test_bad_input_head_works_on_get_routes(http: Any) -> None:
    for path in [
        "/health",
        "/tools",
        "/tools/list_zoo",
        "/jobs",
        "/openapi.json",
        f"/models/{http.stored_model}/file",
    ]:
        got, head = http.get(path), http.head(path)
        assert got.status_code == 200 and head.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    missing = http.head(f"/jobs/{UNKNOWN_JOB}")
    assert missing.status_code == 404 and missing.content == b""


# --------------------------------------------------------------------------- point 8: one Host check


def test_bad_input_rest_and_mcp_agree_on_every_host_header(http: Any) -> None:
    mcp_headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    hosts = [
        "127.0.0.1",
        "127.0.0.1:8000",
        "localhost:1",
        "[::1]",
        "[::1]:80",
        "[::1].anything",
        "[::1]x",
        "127.0.0.1:80.evil",
        "::1",
        "evil.example",
        "127.0.0.1.evil",
        "",
        "[::1",
    ]
    for host in hosts:
        rest = http.get("/tools", headers={"host": host})
        mcp = http.post("/mcp/", content=b"{}", headers={**mcp_headers, "host": host})
        refused = (rest.status_code == 421, mcp.status_code == 421)
        assert refused[0] == refused[1], (host, rest.status_code, mcp.status_code)
        if refused[0]:
            assert rest.json() == mcp.json(), host  # the same envelope, from the same check
    assert http.get("/tools", headers={"host": "[::1].anything"}).status_code == 421


# --------------------------------------------------------------------------- point 9: the schema says what is enforced


def test_bad_input_openapi_states_upload_types_and_exactly_one_of_rules(http: Any) -> None:
    import jsonschema

    doc = http.get("/openapi.json").json()
    for path, types in [("/models", [".onnx", ".pt2"]), ("/data", [".npz"])]:
        form = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        file = form["schema"]["properties"]["file"]
        assert file["x-file-extensions"] == types and all(t in file["description"] for t in types)
        assert form["schema"]["properties"]["name"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$"
        assert "415" in doc["paths"][path]["post"]["responses"]
        # a form field the schema does not name is refused, as the schema says
        assert form["schema"]["additionalProperties"] is False
        assert set(form["schema"]["properties"]) == (
            {"file", "name", "model"} if path == "/data" else {"file", "name"}
        )
    extra = http.post("/models", files={"file": ("m.onnx", TINY)}, data={"model": "digits-cnn"})
    assert extra.status_code == 422 and "unknown form field" in extra.json()["error"]["message"]
    # the registering tools: the file name's extension is in the schema, and the 415 refusing others is documented
    tools = {t["name"]: t for t in http.get("/tools").json()}
    for tool, good, bad in [("register_model", "m.ONNX", "m.exe"), ("register_data", "d.npz", "d.csv")]:
        pattern = tools[tool]["input_schema"]["properties"]["filename"]["anyOf"][0]["pattern"]
        assert re.match(pattern, good) and not re.match(pattern, bad)
        assert "415" in doc["paths"][f"/tools/{tool}"]["post"]["responses"]
        r = http.post(f"/tools/{tool}", json={"content_base64": "AAAA", "filename": bad})
        assert r.status_code == 415 and r.json()["error"]["code"] == "file_type"

    def body_schema(tool: str) -> dict[str, Any]:
        ref = doc["paths"][f"/tools/{tool}"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "$ref"
        ]
        return {**doc["components"]["schemas"][ref.rsplit("/", 1)[1]], "components": doc["components"]}

    def valid(tool: str, body: dict[str, Any]) -> bool:
        return jsonschema.Draft202012Validator(body_schema(tool)).is_valid(body)  # type: ignore[no-any-return]

    cases = [
        ("register_model", {"path": "/x.onnx", "content_base64": "AAAA", "filename": "x.onnx"}, False),
        ("register_model", {}, False),
        ("register_model", {"content_base64": "AAAA"}, False),
        ("register_model", {"path": "/nonexistent/x.onnx"}, True),
        ("register_model", {"content_base64": "AAECAwQFBgcICQ==", "filename": "x.onnx"}, True),
        ("register_data", {"path": "/x.npz", "content_base64": "AAAA", "filename": "x.npz"}, False),
        ("run_sweep", {"model": "digits-cnn", "goal": "under 1 MB", "resume_job_id": UNKNOWN_JOB}, False),
        ("run_sweep", {"model": "digits-cnn"}, False),
        ("run_sweep", {"resume_job_id": UNKNOWN_JOB}, True),
        ("run_sweep", {"model": "digits-cnn", "goal": "hello"}, True),
    ]
    for tool, body, ok in cases:
        assert valid(tool, body) is ok, (tool, body)
        status = http.post(f"/tools/{tool}", json=body).status_code
        # what the schema refuses, the server refuses as invalid arguments; what it allows passes validation
        assert (status != 422) is ok, (tool, body, status)


# --------------------------------------------------------------------------- point 10: ids and routes, not paths


@pytest.mark.anyio
async def test_bad_input_answers_show_ids_and_download_routes_not_server_paths(
    bad_app: Any, http: Any, tiny_id: str
) -> None:
    import hashlib

    home = str(bad_app.state.services.settings.home)
    answers = [
        http.post("/models", files={"file": ("tiny.onnx", TINY)}).json(),
        http.post("/data", files={"file": ("eval.npz", TINY_EVAL_NPZ)}).json(),
        http.post("/tools/inspect_model", json={"model": tiny_id}).json(),
        http.post("/tools/inspect_model", json={"model": "digits-cnn"}).json(),
        http.post("/tools/list_models").json(),
        http.post("/tools/list_data").json(),
    ]
    async with Client(bad_app.state.mcp, mode="legacy") as c:
        for tool, args in [
            ("register_model", {"content_base64": _b64(TINY), "filename": "tiny.onnx"}),
            ("register_data", {"content_base64": _b64(TINY_EVAL_NPZ), "filename": "eval.npz"}),
            ("inspect_model", {"model": tiny_id}),
            ("list_models", {}),
            ("list_data", {}),
        ]:
            r = await c.call_tool(tool, args)
            answers.append(r.structured_content)
            answers.append({"text": [b.text for b in r.content]})  # type: ignore[union-attr]
    for answer in answers:
        text = json.dumps(answer)
        assert home not in text and '"path"' not in text and "/tmp" not in text, text[:400]
    model = answers[0]["model"]
    assert (
        model["download_path"] == f"/models/{model['id']}/file" == answers[0]["inspection"]["download_path"]
    )
    assert answers[0]["inspection"]["model"] == model["id"]
    got = http.get(model["download_path"])
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == model["sha256"]
    data = answers[1]["data"]
    got = http.get(data["download_path"])
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == data["sha256"]
    assert http.get("/models/ghost/file").json()["error"]["code"] == "not_found"
    assert http.get("/data/..%2f..%2fetc/file").status_code == 404
    # the output schemas no longer promise a path either
    specs = {t["name"]: t for t in http.get("/tools").json()}
    assert "path" not in specs["inspect_model"]["output_schema"]["properties"]


# --------------------------------------------------------------------------- point 4: damaged or read-only storage


def _fill_jobs(db: Path, n: int = 300) -> list[str]:
    """A job database of several pages (what a busy server leaves), closed cleanly."""
    from mcp_server.jobs import JobStore

    store = JobStore(db)
    ids = [
        store.create("sweep", {"model": "digits-cnn", "pad": "x" * 400, "i": i}, "gone:1:x").id
        for i in range(n)
    ]
    store.close()
    return ids


def _damage(db: Path, how: str) -> None:
    import shutil as sh

    if how == "last-page":
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.seek(size - 4096)
            f.write(b"\xff" * 4096)
    elif how == "header":
        with open(db, "r+b") as f:
            f.write(b"garbage!" * 8)
    else:
        db.unlink()
        for side in ("-wal", "-shm"):
            db.with_name(db.name + side).unlink(missing_ok=True)
        db.mkdir()
        (db / "x").write_text("a folder where the database should be")
        sh.copystat(db.parent, db)


def _storage_error(err: dict[str, Any], path: Path) -> None:
    assert err["code"] == "storage_unavailable", err
    assert str(path) in err["message"] + err["hint"], err
    assert "bug" not in err["hint"].lower(), err


@pytest.mark.parametrize("how", ["last-page", "header", "folder"])
@pytest.mark.anyio
async def test_bad_input_damaged_job_database_is_diagnosed_and_the_rest_keeps_serving(
    make_settings: Any, how: str
) -> None:
    import hashlib

    from mcp_server.http_app import create_app

    settings = make_settings()
    db = settings.db_path
    _fill_jobs(db)
    _damage(db, how)
    before = hashlib.sha256(db.read_bytes()).hexdigest() if db.is_file() else None
    app = create_app(settings)  # starts: the damage is diagnosed, not fatal
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        health = c.get("/health").json()
        assert health["status"] == "degraded", health
        problem = health["problems"][0]
        _storage_error(problem, db)
        assert ("move it aside" in problem["hint"]) and ("restore" in problem["hint"] or how == "folder")
        # what does not need the job database still works
        assert c.post("/tools/parse_goal", json={"text": "under 5 MB"}).status_code == 200
        assert c.post("/tools/list_zoo").status_code == 200
        assert c.post("/models", files={"file": ("tiny.onnx", TINY)}).status_code == 200
        # jobs: read what can be read, never a 500; no new job goes into the damaged file
        listed = c.get("/jobs", params={"limit": 200})
        assert listed.status_code in (200, 503), listed.text
        if listed.status_code == 503:
            _storage_error(listed.json()["error"], db)
        started = c.post("/tools/run_sweep", json={"model": "digits-cnn", "goal": "under 1 MB"})
        assert started.status_code == 503, started.text
        _storage_error(started.json()["error"], db)
        async with Client(app.state.mcp, mode="legacy") as m:
            _storage_error(
                _mcp_error(await m.call_tool("run_sweep", {"model": "digits-cnn", "goal": "under 1 MB"})), db
            )
            assert not (await m.call_tool("parse_goal", {"text": "small"})).is_error
    after = hashlib.sha256(db.read_bytes()).hexdigest() if db.is_file() else None
    assert after == before  # nothing was written into it


_READ_ONLY_PROBE = r"""
import asyncio, base64, json, sys
from fastapi.testclient import TestClient
from mcp import Client
from mcp_server.http_app import create_app
from mcp_server.settings import ServerSettings

home, job_id, model_id, data_id, tiny = sys.argv[1:6]
sweep = {"model": model_id, "data": data_id, "goal": "under 1 MB"}
app = create_app(ServerSettings(home=home, zoo_dir=home + "/zoo", sweep_executor="serial"))
out = {}
with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
    for key, r in [
        ("health", c.get("/health")),
        ("jobs", c.get("/jobs")),
        ("job", c.get(f"/jobs/{job_id}")),
        ("models", c.post("/tools/list_models")),
        ("goal", c.post("/tools/parse_goal", json={"text": "under 5 MB"})),
        ("sweep", c.post("/tools/run_sweep", json=sweep)),
        ("register", c.post("/tools/register_model", json={"content_base64": tiny, "filename": "t2.onnx", "name": "other"})),
        ("upload", c.post("/models", files={"file": ("t3.onnx", base64.b64decode(tiny))}, data={"name": "third"})),
    ]:
        out[key] = {"status": r.status_code, "body": r.json()}

    async def mcp():
        async with Client(app.state.mcp, mode="legacy") as m:
            r = await m.call_tool("run_sweep", sweep)
            out["mcp_sweep"] = {"is_error": r.is_error, "text": r.content[0].text}
            r = await m.call_tool("list_jobs", {})
            out["mcp_jobs"] = {"is_error": r.is_error, "jobs": len((r.structured_content or {}).get("jobs", []))}

    asyncio.run(mcp())
print(json.dumps(out))
"""


def test_bad_input_read_only_home_serves_reads_and_refuses_writes_clearly(
    tmp_path_factory: pytest.TempPathFactory, tiny_sweep: Any, wait_job: Any
) -> None:
    import os
    import shutil as sh
    import subprocess
    import sys
    import tempfile

    from mcp_server.http_app import create_app
    from mcp_server.settings import ServerSettings

    # a home with a stored model, data and a finished job, then made read-only for the server's user
    base = Path(tempfile.mkdtemp(prefix="quanttaas-ro-"))
    home = base / "home"
    app = create_app(ServerSettings(home=home, zoo_dir=home / "zoo", sweep_executor="serial"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        args = tiny_sweep(c)
        job_id = c.post("/tools/run_sweep", json=args).json()["result"]["job_id"]
        assert wait_job(c, job_id)["state"] == "succeeded"
    cmd = [sys.executable, "-c", _READ_ONLY_PROBE, str(home), job_id, args["model"], args["data"], _b64(TINY)]
    try:
        if os.geteuid() == 0:  # root writes anywhere: run the server as an unprivileged user instead
            setpriv = sh.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: cannot make the home read-only for the server")
            cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
            os.chmod(base, 0o755)
        for p in [home, *home.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        env = {**os.environ, "HOME": str(base), "QUANTTAAS_HOME": str(home)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, check=False)
    finally:
        for p in [home, *home.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        sh.rmtree(base, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # reads work
    assert out["jobs"]["status"] == 200 and [j["job_id"] for j in out["jobs"]["body"]["jobs"]] == [job_id]
    assert out["job"]["status"] == 200 and out["job"]["body"]["state"] == "succeeded"
    assert out["models"]["status"] == 200 and out["goal"]["status"] == 200
    assert out["mcp_jobs"] == {"is_error": False, "jobs": 1}
    # /health says what is wrong, where, and what to do
    health = out["health"]["body"]
    assert health["status"] == "degraded" and health["jobs_running"] == 0
    assert any("read-only" in p["message"] or "not writable" in p["message"] for p in health["problems"])
    assert all("bug" not in p["hint"].lower() for p in health["problems"])
    # writes answer a clear 503, not a 500 with a "bug" hint
    for key in ("sweep", "register", "upload"):
        assert out[key]["status"] == 503, (key, out[key])
        err = out[key]["body"]["error"]
        assert err["code"] == "storage_unavailable" and "bug" not in err["hint"].lower(), err
        assert str(home) in err["message"] + err["hint"], err
    assert out["mcp_sweep"]["is_error"]
    assert json.loads(out["mcp_sweep"]["text"])["error"]["code"] == "storage_unavailable"


# --------------------------------------------------------------------------- point 3: NaN/Inf never reach a backend


def _plant_data(services: Any, name: str, blob: bytes) -> str:
    """Put a data file in the store as an older server, which did not check values, would have."""
    import hashlib

    from mcp_server.services import DataRef

    digest = hashlib.sha256(blob).hexdigest()
    data_id = f"{name}-{digest[:12]}"
    folder = services.settings.data_dir / data_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.npz").write_bytes(blob)
    ref = DataRef(
        id=data_id,
        path=str(folder / "data.npz"),
        sha256=digest,
        size_bytes=len(blob),
        samples=64,
        arrays={"x": [64, 4], "labels": [64]},
        has_labels=True,
    )
    (folder / "ref.json").write_text(ref.model_dump_json())
    return data_id


@pytest.mark.anyio
async def test_bad_input_nan_and_inf_data_already_stored_are_refused_by_profile_and_sweep(
    bad_app: Any, http: Any, tiny_id: str
) -> None:
    services = bad_app.state.services
    for name, blob, where in [("old-nan", NAN_INPUT_NPZ, "sample 5"), ("old-inf", INF_INPUT_NPZ, "sample 7")]:
        data_id = _plant_data(services, name, blob)
        for tool, args in [
            ("profile_layers", {"model": tiny_id, "data": data_id, "samples": 64}),
            ("run_sweep", {"model": tiny_id, "data": data_id, "goal": "under 1 MB"}),
        ]:
            r = http.post(f"/tools/{tool}", json=args)
            assert r.status_code == 400, (tool, r.text)
            err = r.json()["error"]
            assert err["code"] == "data_invalid" and where in err["message"] and "NaN" in err["message"]
            async with Client(bad_app.state.mcp, mode="legacy") as c:
                assert _mcp_error(await c.call_tool(tool, args))["code"] == "data_invalid"
    _assert_alive(http)
