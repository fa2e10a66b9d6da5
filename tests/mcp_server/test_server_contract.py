"""The contract: MCP tools/list, GET /tools and the agent's specs expose the same names and schemas."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_server.agent_tools import openai_tools
from mcp_server.mcp_app import build_mcp_server
from mcp_server.tools import REGISTRY


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_contract_names_and_input_schemas_agree_across_mcp_http_and_agent(
    services: Any, client: Any
) -> None:
    async with Client(build_mcp_server(services), mode="legacy") as mcp:  # real JSON-RPC over memory streams
        mcp_tools = {t.name: t for t in (await mcp.list_tools()).tools}
    http_tools = {t["name"]: t for t in client.get("/tools").json()}
    agent_tools = {s["function"]["name"]: s["function"] for s in openai_tools()}

    assert list(mcp_tools) == list(http_tools) == list(agent_tools) == list(REGISTRY)
    for name in REGISTRY:
        assert (
            mcp_tools[name].input_schema
            == http_tools[name]["input_schema"]
            == agent_tools[name]["parameters"]
        )
        assert mcp_tools[name].output_schema == http_tools[name]["output_schema"]
        assert (
            mcp_tools[name].description == http_tools[name]["description"] == agent_tools[name]["description"]
        )


@pytest.mark.anyio
async def test_contract_flags_agree_between_mcp_annotations_and_http(services: Any, client: Any) -> None:
    async with Client(build_mcp_server(services)) as mcp:
        mcp_tools = {t.name: t for t in (await mcp.list_tools()).tools}
    for spec in client.get("/tools").json():
        tool = mcp_tools[spec["name"]]
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is spec["read_only"]
        assert tool.meta is not None and tool.meta["quanttaas/long_running"] is spec["long_running"]


def test_contract_every_tool_has_an_http_route_in_openapi(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for name, tool in REGISTRY.items():
        op = paths[f"/tools/{name}"]["post"]
        assert op["operationId"] == name
        assert op["description"] == tool.describe()
