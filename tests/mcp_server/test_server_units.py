"""Small units of the server: settings, host rules, artifact ids and stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mcp_server.artifacts import ArtifactStore, parse_artifact_id
from mcp_server.http_app import create_app
from mcp_server.settings import ServerSettings, is_loopback
from optimizer.errors import NotFoundError

JOB = "0123456789abcdef"


def test_settings_read_token_and_limits_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUANTTAAS_HOME", str(tmp_path))
    monkeypatch.setenv("QUANTTAAS_TOKEN", "abc")
    monkeypatch.setenv("QUANTTAAS_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("QUANTTAAS_ALLOWED_HOSTS", '["q.example"]')
    s = ServerSettings()
    assert s.token_value() == "abc" and s.max_upload_bytes == 1234 and s.allowed_hosts == ["q.example"]
    assert s.db_path == tmp_path / "server" / "jobs.sqlite" and s.artifact_root == str(s.work_dir)
    assert "abc" not in repr(s)  # the token is a secret


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_public_bind_answers_its_configured_names_only(make_settings: Any) -> None:
    app = create_app(make_settings(host="0.0.0.0", token="t", allowed_hosts=["quanttaas.example"]))
    auth = {"Authorization": "Bearer t"}
    with TestClient(app, base_url="http://quanttaas.example") as c:
        assert c.get("/tools", headers=auth).status_code == 200
        assert c.get("/tools", headers={**auth, "Host": "other.example"}).status_code == 421


@pytest.mark.parametrize(
    "bad",
    [
        f"{JOB}/../../etc/passwd",
        f"{JOB}/candidates/../../x.onnx",
        f"{JOB}/prepared.onnx",
        f"{JOB}/candidates/.hidden.onnx",
        f"{JOB}/candidates/a/b.onnx",
        f"/{JOB}/best.onnx",
        f"{JOB[:-1]}/best.onnx",
        f"{JOB}/best.onnx\x00.txt",
        f"{JOB}\\best.onnx",
        "",
    ],
)
def test_parse_artifact_id_refuses_anything_but_the_artifact_form(bad: str) -> None:
    with pytest.raises(NotFoundError):
        parse_artifact_id(bad)


def test_parse_artifact_id_splits_job_and_file() -> None:
    assert parse_artifact_id(f"{JOB}/candidates/c00-static_int8-pc-minmax.onnx") == (
        JOB,
        "candidates/c00-static_int8-pc-minmax.onnx",
    )


@pytest.mark.parametrize("url", ["memory://qt-unit/artifacts", "local"])
def test_artifact_store_publishes_lists_and_reads(url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    store = ArtifactStore(str(tmp_path / "published") if url == "local" else url, work)
    job_dir = store.job_dir(JOB)
    (job_dir / "candidates").mkdir()
    (job_dir / "report.json").write_text("{}")
    (job_dir / "prepared.onnx").write_bytes(b"internal")
    (job_dir / "candidates" / "c00-fp16.onnx").write_bytes(b"model")
    published = store.publish(JOB)
    assert published == [f"{JOB}/report.json", f"{JOB}/candidates/c00-fp16.onnx"]
    assert store.list(JOB) == sorted(published)
    assert store.read(f"{JOB}/candidates/c00-fp16.onnx") == b"model"
    with pytest.raises(NotFoundError):
        store.read(f"{JOB}/best.onnx")


def test_artifact_store_in_place_by_default_copies_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "jobs"), tmp_path / "jobs")
    (store.job_dir(JOB) / "best.onnx").write_bytes(b"m")
    assert store.in_place and store.publish(JOB) == [f"{JOB}/best.onnx"]
    assert store.local_path(f"{JOB}/best.onnx") == (tmp_path / "jobs" / JOB / "best.onnx").resolve()


def test_host_check_stays_on_for_rest_and_mcp_unless_the_operator_allows_any_host(make_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from mcp_server.http_app import create_app

    def statuses(settings: Any, host: str, origin: str | None = None) -> tuple[int, int]:
        headers = {"host": host, "authorization": "Bearer t"}
        if origin is not None:
            headers["origin"] = origin
        with TestClient(create_app(settings), raise_server_exceptions=False) as c:
            rest = c.get("/tools", headers=headers).status_code
            mcp = c.post("/mcp/", content=b"{}", headers={**headers, "content-type": "application/json"})
            return rest, mcp.status_code

    on = make_settings(host="0.0.0.0", token="t", allowed_hosts=["q.example"])
    # the configured name and loopback pass on both surfaces (the MCP endpoint then reads the JSON-RPC body)
    for host in ("q.example:8000", "127.0.0.1:8000", "q.example"):
        rest, mcp = statuses(on, host, origin="http://q.example:3000")
        assert rest == 200 and mcp not in (403, 421), host
    assert statuses(on, "evil.example") == (421, 421)
    assert statuses(on, "q.example", origin="http://evil.example") == (403, 403)
    off = make_settings(host="0.0.0.0", token="t", allowed_hosts=["*"])
    rest, mcp = statuses(off, "evil.example", origin="http://evil.example")
    assert rest == 200 and mcp not in (403, 421)
