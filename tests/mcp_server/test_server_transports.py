"""The real transports: MCP over stdio (a subprocess), MCP over streamable HTTP (a real uvicorn), and the CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from server_testdata import free_port, wait_http_ready

from mcp_server.http_app import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_stdio_server_answers_the_sdk_client(quanttaas_exe: list[str], server_env: Any) -> None:
    params = StdioServerParameters(
        command=quanttaas_exe[0], args=[*quanttaas_exe[1:], "mcp"], env=server_env()
    )
    async with Client(params, read_timeout_seconds=120) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        inspected = await c.call_tool("inspect_model", {"model": "digits-cnn"})
        bad = await c.call_tool("inspect_model", {"model": 42})
        again = await c.call_tool("list_zoo", {})
    assert "run_sweep" in names and len(names) == 16
    assert inspected.structured_content["opset"] == 17
    assert bad.is_error and json.loads(bad.content[0].text)["error"]["code"] == "input_invalid"
    assert not again.is_error


class RawStdio:
    """JSON-RPC over a subprocess's pipes, keeping every line the server wrote to stdout."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self.next_id = 0

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout"
            self.lines.append(line)
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                return dict(reply)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.mark.slow
def test_stdio_server_writes_only_protocol_to_stdout_while_a_sweep_prints(
    quanttaas_exe: list[str], server_env: Any, tiny_onnx: Path, tiny_npz: Path
) -> None:
    # a goal that ranks accuracy runs onnxruntime's entropy calibration (nothing measured rules it out), which
    # prints progress to stdout (fd 1)
    rpc = RawStdio([*quanttaas_exe, "mcp"], server_env())
    try:
        init = rpc.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        )
        assert init["result"]["serverInfo"]["name"] == "quanttaas"
        rpc.notify("notifications/initialized")
        model = rpc.request("tools/call", {"name": "register_model", "arguments": {"path": str(tiny_onnx)}})
        data = rpc.request("tools/call", {"name": "register_data", "arguments": {"path": str(tiny_npz)}})
        args = {
            "model": model["result"]["structuredContent"]["model"]["id"],
            "data": data["result"]["structuredContent"]["data"]["id"],
            "goal": "the most accurate model",
        }
        started = rpc.request("tools/call", {"name": "run_sweep", "arguments": args})
        job_id = started["result"]["structuredContent"]["job_id"]
        deadline = time.monotonic() + 300
        while True:
            job = rpc.request("tools/call", {"name": "get_job", "arguments": {"job_id": job_id}})
            state = job["result"]["structuredContent"]["state"]
            if state not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert state == "succeeded"
        report = rpc.request("tools/call", {"name": "get_pareto_report", "arguments": {"job_id": job_id}})
        recipes = [c["recipe"] for c in report["result"]["structuredContent"]["report"]["candidates"]]
        assert any(r.get("calibration") == "entropy" for r in recipes), "the printing calibration ran"
    finally:
        rpc.close()
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rpc.lines)


@pytest.mark.anyio
async def test_streamable_http_mcp_on_a_real_uvicorn(settings: Any, live_server: Any) -> None:
    with live_server(create_app(settings)) as url:
        async with Client(f"{url}/mcp/") as c:
            names = [t.name for t in (await c.list_tools()).tools]
            r = await c.call_tool("inspect_model", {"model": "digits-cnn"})
        async with httpx.AsyncClient() as h:
            health = await h.get(f"{url}/health")
    assert len(names) == 16 and r.structured_content["param_count"] > 20_000
    assert health.status_code == 200


@pytest.mark.anyio
async def test_streamable_http_mcp_requires_the_token_when_one_is_set(
    make_settings: Any, live_server: Any
) -> None:
    with live_server(create_app(make_settings(token="t0ken"))) as url:
        async with httpx.AsyncClient() as h:
            refused = await h.post(f"{url}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        http_client = create_mcp_http_client(headers={"Authorization": "Bearer t0ken"})
        async with http_client, Client(streamable_http_client(f"{url}/mcp/", http_client=http_client)) as c:
            r = await c.call_tool("list_zoo", {})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert not r.is_error


def test_streamable_http_mcp_refuses_a_rebinding_host(settings: Any, live_server: Any) -> None:
    with live_server(create_app(settings)) as url:
        r = httpx.post(
            f"{url}/mcp/",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Host": "evil.example", "Accept": "application/json, text/event-stream"},
        )
        ok = httpx.get(f"{url}/health")
    assert r.status_code == 421 and ok.status_code == 200


def test_cli_serve_refuses_a_public_interface_without_token(
    quanttaas_exe: list[str], server_env: Any
) -> None:
    env = {k: v for k, v in server_env().items() if k != "QUANTTAAS_TOKEN"}
    proc = subprocess.run(
        [*quanttaas_exe, "serve", "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "insecure_bind" in proc.stderr and "QUANTTAAS_TOKEN" in proc.stderr


@pytest.mark.slow
def test_cli_serve_serves_health_docs_and_tools(
    quanttaas_exe: list[str], server_env: Any, tmp_path: Path
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*quanttaas_exe, "serve", "--port", str(port)], env=server_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http_ready(f"http://127.0.0.1:{port}", proc, tmp_path / "serve.log")
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        docs = httpx.get(f"http://127.0.0.1:{port}/docs")
        tool = httpx.post(f"http://127.0.0.1:{port}/tools/parse_goal", json={"text": "under 2 MB"})
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert health.json()["status"] == "ok" and docs.status_code == 200
    assert tool.json()["result"]["goal"]["max_size_mb"] == 2.0
