"""Who may talk to the HTTP server: bind rules, bearer token, Host/Origin checks, body size limits.

- Loopback by default. Binding any other interface requires ``QUANTTAAS_TOKEN`` (:func:`check_bind` refuses to
  start otherwise), and then every HTTP route, ``/mcp`` included, needs ``Authorization: Bearer <token>``; only
  ``/health`` stays open.
- DNS-rebinding protection stays on: the Host header must name this server (loopback names, the bind address, the
  machine's name, or ``QUANTTAAS_ALLOWED_HOSTS``), and a browser Origin must name one of those too. This is the one
  Host check, for REST and ``/mcp/`` alike (the MCP transport's own check is off behind it): a Host is a name or
  a bracketed IPv6 address, optionally ``:port``, and nothing else (``[::1].evil`` is refused).
- Request bodies are capped: uploads at ``QUANTTAAS_MAX_UPLOAD_BYTES`` (counted as they stream), everything else at
  ``QUANTTAAS_MAX_BODY_BYTES``. A body without a Content-Length (chunked) is read here up to the limit before the
  route sees it, so a 40 MB chunked body to ``/mcp/`` is a 413 envelope like any other.
- HEAD is answered on every GET route (as the GET, without its body), ``/mcp/`` excepted (the MCP transport
  answers it).

Every refusal is the usual ``{"error": {code, message, hint}}`` envelope.
"""

from __future__ import annotations

import hmac
import json
import re
import socket

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


_PORT = re.compile(r"^:\d{1,5}$")


def _host_name(host_header: str) -> str | None:
    """The name part of a Host header: ``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``; None when it is
    not a host at all (anything after the brackets or the port, an unbracketed IPv6 address)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
    elif host.count(":") > 1:
        return None
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
    if rest and not _PORT.match(rest):
        return None
    return name


def _origin_name(origin: str) -> str | None:
    """The host name of an Origin header (``scheme://host[:port]``), by the same rules as a Host header."""
    scheme, sep, rest = origin.strip().partition("://")
    if not sep or not scheme or "/" in rest or "@" in rest:
        return None
    return _host_name(rest)


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
        path: str = scope.get("path", "")
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            receive = self._check(scope, receive)
            if _chunked(scope) and path not in UPLOAD_PATHS:
                receive = _replay(await _read_body(receive), receive)
        except QuantTaaSError as e:
            await _send_error(send, e)
            return
        out: Send = tracked
        if scope["method"] == "HEAD" and not path.startswith("/mcp"):
            scope, out = {**scope, "method": "GET"}, _without_body(tracked)
        try:
            await self.app(scope, receive, out)
        except PayloadTooLargeError as e:  # an upload counted over its limit as it streamed
            if started:
                raise
            await _send_error(send, e)

    def _check(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        if not self.any_host:
            host = headers.get("host", "")
            if _host_name(host) not in self.hosts:
                raise HostError(f"Host {host[:100]!r} is not one this server answers to")
            origin = headers.get("origin")
            if origin is not None and _origin_name(origin) not in self.hosts:
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
        upload = path in UPLOAD_PATHS
        limit = self.max_upload if upload else self.max_body
        hint = (
            "Send a smaller file, or raise QUANTTAAS_MAX_UPLOAD_BYTES on the server."
            if upload
            else "Send a smaller request (large files go to POST /models or /data), or raise "
            "QUANTTAAS_MAX_BODY_BYTES on the server."
        )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise PayloadTooLargeError(
                    "invalid Content-Length header", hint="send a valid Content-Length"
                )
            if int(length) > limit:
                raise PayloadTooLargeError(
                    f"the request body is {int(length):,} bytes; the limit is {limit:,}", hint=hint
                )
        return _capped(receive, limit, hint)


def _capped(receive: Receive, limit: int, hint: str) -> Receive:
    """A receive channel that raises PayloadTooLargeError once more than ``limit`` body bytes arrive."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLargeError(f"the request body is over the {limit:,} byte limit", hint=hint)
        return message

    return capped


def _chunked(scope: Scope) -> bool:
    """A request whose body comes without a Content-Length (Transfer-Encoding: chunked)."""
    headers = Headers(scope=scope)
    return "content-length" not in headers and "chunked" in headers.get("transfer-encoding", "").lower()


async def _read_body(receive: Receive) -> bytes:
    """The whole body through a capped channel (raises PayloadTooLargeError past the limit)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` once, then the client's own channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _without_body(send: Send) -> Send:
    """Answer a HEAD as its GET: the same status and headers (Content-Length included), no body."""

    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return head


async def _send_error(send: Send, err: QuantTaaSError) -> None:
    body = json.dumps(error_envelope(err)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(err, AuthError):
        headers.append((b"www-authenticate", b'Bearer realm="quanttaas"'))
    await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
