"""The server floor's commands: ``mcp`` (MCP over stdio) and ``serve`` (HTTP API, docs and MCP over streamable
HTTP). Registered on the product's command line by :mod:`quanttaas.cli`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optimizer.optimize import ChartWriter


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the tools over MCP on stdin/stdout (what IDE assistants launch); logs go to stderr."""
    from mcp_server.mcp_app import run_stdio
    from mcp_server.settings import ServerSettings

    run_stdio(ServerSettings(), chart_writer=args.chart_writer)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the HTTP API, its docs and MCP over streamable HTTP (at /mcp/) with uvicorn."""
    import uvicorn

    from mcp_server.http_app import create_app
    from mcp_server.security import check_bind
    from mcp_server.services import Services
    from mcp_server.settings import ServerSettings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = ServerSettings(**overrides)
    check_bind(settings)
    print(f"QuantTaaS: http://{settings.host}:{settings.port}/docs (MCP at /mcp/)", file=sys.stderr)
    app = create_app(settings, services=Services(settings, chart_writer=args.chart_writer))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def add_commands(sub: Any, *, chart_writer: ChartWriter | None = None) -> None:
    """Register ``mcp`` and ``serve`` on ``sub``; ``chart_writer`` writes each sweep's ``pareto.html``."""
    m = sub.add_parser("mcp", help="serve the tools over MCP on stdio (for IDE assistants)")
    m.set_defaults(func=cmd_mcp, chart_writer=chart_writer)

    sv = sub.add_parser("serve", help="serve the HTTP API and MCP (streamable HTTP at /mcp/)")
    sv.add_argument(
        "--host", default=None, help="interface to bind (default 127.0.0.1; others need QUANTTAAS_TOKEN)"
    )
    sv.add_argument("--port", type=int, default=None, help="port (default 8000)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sv.set_defaults(func=cmd_serve, chart_writer=chart_writer)
