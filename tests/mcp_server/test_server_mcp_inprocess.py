"""The MCP surface through the SDK's own client, in process."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_server.mcp_app import build_mcp_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(services: Any) -> Any:
    return build_mcp_server(services)


@pytest.mark.anyio
async def test_mcp_inspect_model_returns_structured_content_and_a_short_text(server: Any) -> None:
    async with Client(server, mode="legacy") as c:
        r = await c.call_tool("inspect_model", {"model": "digits-cnn"})
    assert not r.is_error
    data = r.structured_content
    assert (
        data["param_count"] > 20_000 and data["inputs"][0]["name"] == "input" and data["quantized"] is False
    )
    summary, as_json = r.content[0].text, r.content[1].text
    assert summary.startswith("ONNX opset") and "\n" not in summary and len(summary) < 400
    assert json.loads(as_json) == data


@pytest.mark.anyio
async def test_mcp_parse_goal_lists_the_words_it_did_not_understand(server: Any) -> None:
    async with Client(server) as c:
        r = await c.call_tool("parse_goal", {"text": "under 5 MB, <1% accuracy loss, and make it purple"})
    goal = r.structured_content["goal"]
    assert goal["max_size_mb"] == 5.0 and goal["max_accuracy_drop_pct"] == 1.0
    assert "purple" in goal["unparsed_words"] and r.structured_content["understood_all"] is False


@pytest.mark.anyio
async def test_mcp_register_model_from_base64_then_use_it_by_id(server: Any, tiny_onnx: Path) -> None:
    content = base64.b64encode(tiny_onnx.read_bytes()).decode()
    async with Client(server) as c:
        reg = await c.call_tool(
            "register_model", {"content_base64": content, "filename": "tiny.onnx", "name": "Tiny"}
        )
        model_id = reg.structured_content["model"]["id"]
        listed = await c.call_tool("list_models", {})
        inspected = await c.call_tool("inspect_model", {"model": model_id})
    assert model_id.startswith("tiny-")
    assert [m["id"] for m in listed.structured_content["models"]] == [model_id]
    assert inspected.structured_content["param_count"] == 15


@pytest.mark.anyio
async def test_mcp_tool_error_carries_the_same_envelope_as_http(server: Any, client: Any) -> None:
    bad = {"model": "no-such-model"}
    async with Client(server) as c:
        r = await c.call_tool("inspect_model", bad)
    http = client.post("/tools/inspect_model", json=bad)
    assert r.is_error and r.structured_content is None
    assert json.loads(r.content[0].text) == http.json()
    assert http.status_code == 404 and http.json()["error"]["code"] == "not_found"


@pytest.mark.anyio
async def test_mcp_resources_expose_models_and_zoo(server: Any) -> None:
    async with Client(server) as c:
        uris = {str(r.uri) for r in (await c.list_resources()).resources}
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        model = await c.read_resource("quanttaas://models/digits-cnn")
        zoo = await c.read_resource("quanttaas://zoo")
    assert {"quanttaas://models", "quanttaas://zoo"} <= uris
    assert {"quanttaas://models/{model}", "quanttaas://jobs/{job_id}/report"} <= templates
    assert json.loads(model.contents[0].text)["opset"] == 17
    assert "digits-cnn" in {e["name"] for e in json.loads(zoo.contents[0].text)["entries"]}


@pytest.mark.anyio
async def test_mcp_resource_of_unknown_job_is_a_clear_protocol_error(server: Any) -> None:
    async with Client(server) as c:
        with pytest.raises(MCPError) as e:
            await c.read_resource("quanttaas://jobs/0123456789abcdef/report")
        still = await c.call_tool("list_zoo", {})
    assert json.loads(str(e.value.error.message))["error"]["code"] == "not_found"
    assert not still.is_error
