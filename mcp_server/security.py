"""Who may talk to the HTTP server: bind rules, bearer token, Host/Origin checks, body size limits.

- Loopback by default. Binding any other interface requires ``QUANTTAAS_TOKEN`` (:func:`check_bind` refuses to
  start otherwise), and then every HTTP route, ``/mcp`` included, needs ``Authorization: Bearer <token>``; only
  ``/health`` stays open.
- DNS-rebinding protection stays on: the Host header must name this server (loopback names, the bind address, the
  machine's name, or ``QUANTTAAS_ALLOWED_HOSTS``), and a browser Origin must name one of those too. The MCP
  transport applies the same list itself (``TransportSecuritySettings``).
- Request bodies are capped before they are read: uploads at ``QUANTTAAS_MAX_UPLOAD_BYTES``, everything else at
  ``QUANTTAAS_MAX_BODY_BYTES``.

Every refusal is the usual ``{"error": {code, message, hint}}`` envelope.
"""

from __future__ import annotations

import hmac
import json
import socket
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.errors import AuthError, HostError, OriginError, PayloadTooLargeError, error_envelope
from mcp_server.settings import LOOPBACK_NAMES, ServerSettings, is_loopback
from optimizer.errors import QuantTaaSError

OPEN_PATHS = frozenset({"/health"})
UPLOAD_PATHS = frozenset({"/models", "/data"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


class InsecureBindError(QuantTaaSError):
    code = "insecure_bind"
    http_status = 500
    default_hint = (
        "Set QUANTTAAS_TOKEN to a long random secret (clients send `Authorization: Bearer <token>`), "
        "or bind to 127.0.0.1."
    )


def check_bind(settings: ServerSettings) -> None:
    """Refuse to serve beyond loopback without a token.

    Raises:
        InsecureBindError: ``settings.host`` is not a loopback address and no token is configured.
    """
    if not is_loopback(settings.host) and settings.token_value() is None:
        raise InsecureBindError(
            f"refusing to listen on {settings.host}: serving beyond this machine needs a bearer token",
        )


def allowed_host_names(settings: ServerSettings) -> set[str]:
    """Host names (without port) the server answers to."""
    names = set(LOOPBACK_NAMES)
    host = settings.host.strip("[]").lower()
    if host not in WILDCARD_BINDS:
        names.add(host)
    if not is_loopback(settings.host):
        names.add(socket.gethostname().lower())
    names.update(h.strip().lower() for h in settings.allowed_hosts if h.strip())
    return names


def _host_name(host_header: str) -> str:
    """The name part of a Host header: ``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardMiddleware:
    """Pure ASGI middleware in front of every HTTP route (the mounted MCP app included)."""

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app = app
        self.token = settings.token_value()
        self.any_host = "*" in settings.allowed_hosts
        self.hosts = allowed_host_names(settings)
        self.max_upload = settings.max_upload_bytes
        self.max_body = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            receive = self._check(scope, receive)
        except QuantTaaSError as e:
            await _send_error(send, e)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        if not self.any_host:
            host = headers.get("host", "")
            if _host_name(host) not in self.hosts:
                raise HostError(f"Host {host[:100]!r} is not one this server answers to")
            origin = headers.get("origin")
            if origin is not None and (urlsplit(origin).hostname or "").lower() not in self.hosts:
                raise OriginError(f"requests from the web origin {origin[:100]!r} are refused")
        if self.token is not None and path not in OPEN_PATHS:
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                raise AuthError(
                    "missing or wrong bearer token" if auth else "this server requires a bearer token"
                )
        limit = self.max_upload if path in UPLOAD_PATHS else self.max_body
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise PayloadTooLargeError(
                    "invalid Content-Length header", hint="send a valid Content-Length"
                )
            if int(length) > limit:
                raise PayloadTooLargeError(
                    f"the request body is {int(length):,} bytes; the limit is {limit:,}"
                )
        return _capped(receive, limit)


def _capped(receive: Receive, limit: int) -> Receive:
    """A receive channel that raises PayloadTooLargeError once more than ``limit`` body bytes arrive."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLargeError(f"the request body is over the {limit:,} byte limit")
        return message

    return capped


async def _send_error(send: Send, err: QuantTaaSError) -> None:
    body = json.dumps(error_envelope(err)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(err, AuthError):
        headers.append((b"www-authenticate", b'Bearer realm="quanttaas"'))
    await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
