"""The assistant's only way to the tools: an MCP client, in process by default, or over HTTP or stdio.

- in process (default): ``Client(build_mcp_server(Services(ServerSettings())))``, the real JSON-RPC over memory
  streams; the server's state lives under ``QUANTTAAS_HOME`` like the CLI's;
- ``QUANTTAAS_MCP_URL``: a running server over streamable HTTP (``QUANTTAAS_TOKEN`` as the bearer token);
- ``QUANTTAAS_MCP_COMMAND``: a server started as a subprocess and spoken to over stdio (e.g. ``quanttaas mcp``).

The assistant never imports the optimizer: everything it knows comes back from these tool calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from assistant.events import ToolRecord
from assistant.settings import AssistantSettings

__all__ = ["ToolClient"]


def _error_of(text: str) -> dict[str, Any]:
    """The ``{"code", "message", "hint"}`` of an MCP tool error (its text is the server's error envelope)."""
    try:
        body = json.loads(text)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return {k: str(err.get(k, "")) for k in ("code", "message", "hint")}
    except ValueError:
        pass
    return {"code": "tool_error", "message": text[:500], "hint": ""}


class ToolClient:
    """An open MCP session to the QuantTaaS tools. Use as ``async with ToolClient(...) as tools``."""

    def __init__(
        self,
        settings: AssistantSettings | None = None,
        *,
        server_settings: Any = None,
        chart_writer: Any = None,
    ):
        self.settings = settings or AssistantSettings()
        self._server_settings = server_settings
        self._chart_writer = chart_writer
        self._stack = contextlib.AsyncExitStack()
        self._client: Client | None = None
        self._services: Any = None
        self.transport = "in-process"

    async def __aenter__(self) -> ToolClient:
        s = self.settings
        try:
            if s.mcp_url:
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client

                headers = {"Authorization": f"Bearer {s.token_value()}"} if s.token_value() else None
                http = await self._stack.enter_async_context(create_mcp_http_client(headers=headers))
                target: Any = streamable_http_client(s.mcp_url, http_client=http)
                self.transport = f"http {s.mcp_url}"
            elif s.mcp_command:
                argv = shlex.split(s.mcp_command)
                target = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
                self.transport = f"stdio {s.mcp_command}"
            else:
                from mcp_server.mcp_app import build_mcp_server
                from mcp_server.services import Services
                from mcp_server.settings import ServerSettings

                self._services = Services(
                    self._server_settings or ServerSettings(), chart_writer=self._chart_writer
                )
                target = build_mcp_server(self._services)
            self._client = await self._stack.enter_async_context(
                Client(target, read_timeout_seconds=s.tool_timeout_s)
            )
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session (and, in process, stop the server's running jobs)."""
        try:
            await self._stack.aclose()
        finally:
            self._client = None
            if self._services is not None:
                services, self._services = self._services, None
                await anyio.to_thread.run_sync(services.close)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the tool client is not open: use `async with ToolClient(...)`")
        return self._client

    async def tool_specs(self) -> list[dict[str, Any]]:
        """The server's tools as OpenAI-style function specs (name, description, input schema)."""
        listed = await self.client.list_tools()
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or t.title or t.name,
                    "parameters": t.input_schema or {"type": "object", "properties": {}},
                },
            }
            for t in listed.tools
        ]

    async def call(self, name: str, arguments: dict[str, Any], call_id: str) -> ToolRecord:
        """Run one tool; a refused or failed call comes back as a record with ``ok=False`` (never raised)."""
        t0 = time.perf_counter()
        try:
            result = await self.client.call_tool(name, arguments)
        except (
            Exception
        ) as e:  # the transport failed (server gone, timeout): the brain reads it like a tool error
            return ToolRecord(
                call_id=call_id,
                name=name,
                arguments=arguments,
                ok=False,
                text=f"{e.__class__.__name__}: {str(e)[:300]}",
                error={
                    "code": "transport_error",
                    "message": f"{e.__class__.__name__}: {str(e)[:300]}",
                    "hint": "",
                },
                seconds=round(time.perf_counter() - t0, 3),
            )
        texts = [getattr(c, "text", "") for c in result.content or []]
        seconds = round(time.perf_counter() - t0, 3)
        if result.is_error:
            err = _error_of(texts[0] if texts else "")
            return ToolRecord(
                call_id=call_id,
                name=name,
                arguments=arguments,
                ok=False,
                text=f"[{err['code']}] {err['message']}",
                error=err,
                seconds=seconds,
            )
        data = result.structured_content
        if data is None and len(texts) > 1:
            with contextlib.suppress(ValueError):
                data = json.loads(texts[1])
        return ToolRecord(
            call_id=call_id,
            name=name,
            arguments=arguments,
            ok=True,
            result=data if isinstance(data, dict) else None,
            text=texts[0] if texts else "",
            seconds=seconds,
        )
