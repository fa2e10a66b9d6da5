"""The assistant's only way to the tools: an MCP client, in process by default, or over HTTP or stdio.

- in process (default): ``Client(build_mcp_server(Services(ServerSettings())))``, the real JSON-RPC over memory
  streams; the server's state lives under ``QUANTTAAS_HOME`` like the CLI's;
- ``QUANTTAAS_MCP_URL``: a running server over streamable HTTP (``QUANTTAAS_TOKEN`` as the bearer token);
- ``QUANTTAAS_MCP_COMMAND``: a server started as a subprocess and spoken to over stdio (e.g. ``quanttaas mcp``).

The assistant never imports the optimizer: everything it knows comes back from these tool calls. The one thing a
tool call cannot always carry is a large file: :meth:`ToolClient.download` gets an artifact inline through
``get_artifact`` when it fits the server's inline limit, and over the server's download route
(``GET /artifacts/<id>``) when it does not; the agent's ``save_dir`` and the page both use it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from assistant.events import ToolRecord
from assistant.settings import AssistantSettings

__all__ = ["DownloadError", "ToolClient"]


class DownloadError(Exception):
    """An artifact that could not be fetched, with the server's (or the transport's) code, message and hint."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


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
        self._app: Any = None  # in process: the server's HTTP app, for its download route
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
            self._app = None
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

    # ------------------------------------------------------------ artifacts

    async def download(self, artifact_id: str, call_id: str = "download") -> bytes:
        """The bytes of a job artifact (``<job_id>/best.onnx``, ``<job_id>/report.json``, ...).

        Inline through ``get_artifact`` when the file is within the server's inline limit; otherwise over the
        server's download route (``GET /artifacts/<id>``): over HTTP for a server given by URL (with the bearer
        token), through the server's own app in process. The bytes are checked against the sha256 the tool
        reported.

        Raises:
            DownloadError: the tool refused (unknown job or artifact), the file is too large to send inline over
                stdio (no download route is known), the download failed, or the bytes do not match.
        """
        r = await self.call("get_artifact", {"artifact_id": artifact_id, "inline": True}, call_id)
        if not r.ok or r.result is None:
            err = r.error or {}
            raise DownloadError(
                str(err.get("code", "tool_error")),
                str(err.get("message", r.text or f"could not fetch {artifact_id}")),
                str(err.get("hint", "")),
            )
        info = r.result
        content = info.get("content_base64")
        if content:
            data = base64.b64decode(content)
        else:
            data = await self._download_route(
                artifact_id, str(info.get("download_path") or f"/artifacts/{artifact_id}")
            )
        if info.get("sha256") and hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise DownloadError(
                "download_corrupt",
                f"{artifact_id}: the {len(data):,} bytes received do not match the server's sha256",
                "fetch it again",
            )
        return data

    async def _download_route(self, artifact_id: str, path: str) -> bytes:
        """``GET <server><path>``: the server's download route, for a file too large to send inline."""
        import httpx

        s = self.settings
        if s.mcp_url:
            from urllib.parse import urlsplit

            parts = urlsplit(s.mcp_url)
            base = f"{parts.scheme}://{parts.netloc}"
            token = s.token_value()
            transport: httpx.AsyncBaseTransport | None = None
        elif self._services is not None:
            from mcp_server.http_app import create_app

            if self._app is None:
                self._app = create_app(services=self._services)
            base, token = "http://127.0.0.1", self._services.settings.token_value()
            transport = httpx.ASGITransport(app=self._app)
        else:
            raise DownloadError(
                "payload_too_large",
                f"{artifact_id} is larger than the server sends inline, and a server spoken to over stdio has no "
                "download route",
                "connect to the server over HTTP (QUANTTAAS_MCP_URL) or raise its inline limit "
                "(QUANTTAAS_MAX_INLINE_ARTIFACT_BYTES)",
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with httpx.AsyncClient(transport=transport, timeout=s.tool_timeout_s) as http:
                response = await http.get(base + path, headers=headers)
        except httpx.HTTPError as e:
            raise DownloadError(
                "download_failed", f"could not download {artifact_id}: {type(e).__name__}: {str(e)[:200]}"
            ) from e
        if response.status_code != 200:
            err = _error_of(response.text)
            raise DownloadError(
                err["code"] if err["code"] != "tool_error" else f"http_{response.status_code}",
                f"could not download {artifact_id}: {err['message']}",
                err["hint"],
            )
        return response.content
