"""The HTTP surface through FastAPI's TestClient: routes, uploads, docs, auth and DNS-rebinding protection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mcp_server.http_app import create_app


def test_http_health_reports_ok_and_the_tool_count(client: Any) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["tools"] == 16


def test_http_tool_call_returns_result_and_text(client: Any) -> None:
    r = client.post("/tools/parse_goal", json={"text": "as small as possible"})
    assert r.status_code == 200
    body = r.json()
    assert body["result"]["goal"]["objective"] == "size"
    assert body["text"].startswith("Goal:")


def test_http_tool_without_arguments_accepts_an_empty_body(client: Any) -> None:
    r = client.post("/tools/list_zoo")
    assert r.status_code == 200
    assert "digits-cnn" in [e["name"] for e in r.json()["result"]["entries"]]


def test_http_get_tool_spec_and_unknown_tool(client: Any) -> None:
    assert client.get("/tools/run_sweep").json()["long_running"] is True
    r = client.get("/tools/rm_rf")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_http_docs_and_openapi_list_the_routes(client: Any) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/tools", "/models", "/data", "/jobs/{job_id}", "/tools/inspect_model"} <= set(paths)
    assert "multipart/form-data" in paths["/models"]["post"]["requestBody"]["content"]


def test_http_upload_model_stores_it_once_and_tools_see_it(client: Any, tiny_onnx: Path) -> None:
    first = client.post(
        "/models", files={"file": ("tiny.onnx", tiny_onnx.read_bytes())}, data={"name": "my tiny"}
    )
    again = client.post(
        "/models", files={"file": ("copy.onnx", tiny_onnx.read_bytes())}, data={"name": "my tiny"}
    )
    assert first.status_code == 200, first.text
    model_id = first.json()["model"]["id"]
    assert again.json()["model"]["id"] == model_id and model_id.startswith("my-tiny-")
    listed = client.post("/tools/list_models").json()["result"]["models"]
    assert [m["id"] for m in listed] == [model_id]
    inspected = client.post("/tools/inspect_model", json={"model": model_id}).json()["result"]
    assert inspected["param_count"] == 15


def test_http_upload_data_and_register_by_server_path(client: Any, tiny_npz: Path, tiny_onnx: Path) -> None:
    up = client.post("/data", files={"file": ("eval.npz", tiny_npz.read_bytes())})
    assert up.status_code == 200, up.text
    assert up.json()["data"]["samples"] == 64 and up.json()["data"]["has_labels"] is True
    by_path = client.post("/tools/register_model", json={"path": str(tiny_onnx)})
    assert by_path.status_code == 200 and by_path.json()["result"]["model"]["id"].startswith("tiny-")
    listed = client.post("/tools/list_data").json()["result"]["data"]
    assert [d["id"] for d in listed] == [up.json()["data"]["id"]]


def test_http_profile_layers_ranks_the_zoo_model(client: Any) -> None:
    r = client.post("/tools/profile_layers", json={"model": "digits-cnn", "samples": 16})
    assert r.status_code == 200, r.text
    layers = r.json()["result"]["layers"]
    assert [la["rank"] for la in layers] == list(range(1, len(layers) + 1)) and len(layers) >= 3


def test_http_jobs_list_is_empty_on_a_fresh_server(client: Any) -> None:
    assert client.get("/jobs").json() == {"jobs": []}


@pytest.fixture
def token_client(make_settings: Any) -> Any:
    app = create_app(make_settings(token="s3cret-token"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def test_http_token_required_on_every_route_but_health(token_client: Any) -> None:
    assert token_client.get("/health").status_code == 200
    for method, path in [("get", "/tools"), ("get", "/docs"), ("post", "/tools/list_zoo"), ("post", "/mcp/")]:
        r = getattr(token_client, method)(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = token_client.get("/tools", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = token_client.get("/tools", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and len(ok.json()) == 16


def test_http_foreign_host_header_is_refused(client: Any) -> None:
    r = client.get("/tools", headers={"Host": "attacker.example:8000"})
    assert r.status_code == 421 and r.json()["error"]["code"] == "host_not_allowed"
    assert client.get("/tools").status_code == 200


def test_http_foreign_browser_origin_is_refused(client: Any) -> None:
    r = client.post("/tools/list_zoo", headers={"Origin": "http://attacker.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    assert client.post("/tools/list_zoo", headers={"Origin": "http://localhost:3000"}).status_code == 200


def test_http_check_bind_refuses_a_public_interface_without_token(make_settings: Any) -> None:
    from mcp_server.security import InsecureBindError, check_bind

    with pytest.raises(InsecureBindError, match="bearer token"):
        check_bind(make_settings(host="0.0.0.0"))
    check_bind(make_settings(host="0.0.0.0", token="t"))
    check_bind(make_settings(host="127.0.0.1"))
