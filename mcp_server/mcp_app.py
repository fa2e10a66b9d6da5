"""The MCP surface: an ``MCPServer`` generated from the tool registry, plus models, jobs and reports as resources.

Each registry tool becomes an MCP tool whose input schema *is* its ``*Args`` JSON schema and whose output schema is
its ``*Result`` schema. Arguments are validated by the same ``Tool.parse`` the HTTP surface uses, so a bad argument
gives the same ``{"error": {code, message, hint}}`` on both. A result carries ``structured_content`` (the result
model as JSON) and two text blocks: a one-line summary for people and the JSON for clients that read text only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool as SDKTool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict

from mcp_server.errors import UnknownToolError, environment_error, error_json, internal_error
from mcp_server.services import Services
from mcp_server.settings import ServerSettings
from mcp_server.tools import REGISTRY, Tool, ToolOutput
from optimizer.errors import InputError, QuantTaaSError

if TYPE_CHECKING:
    from optimizer.optimize import ChartWriter

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "QuantTaaS compresses trained neural networks (int8/fp16/int4 quantization) and measures the trade-off: size, "
    "accuracy drop against the original, latency. Typical flow: list_models or list_zoo -> inspect_model -> "
    "parse_goal (check how the user's words are read) -> run_sweep (returns a job id at once) -> poll get_job -> "
    "get_pareto_report -> get_artifact for the recommended model. Errors come back as "
    '{"error": {"code", "message", "hint"}}: read the hint.'
)


class _RawArguments(ArgModelBase):
    """Hands the raw arguments through: QuantTaaS validates them itself, with its own error envelope."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


def tool_error(err: QuantTaaSError) -> CallToolResult:
    """An MCP tool error whose text is the ``{"error": {...}}`` envelope."""
    return CallToolResult(content=[TextContent(type="text", text=error_json(err))], is_error=True)


def tool_result(out: ToolOutput) -> CallToolResult:
    data = out.structured()
    return CallToolResult(
        content=[
            TextContent(type="text", text=out.text),
            TextContent(type="text", text=json.dumps(data, ensure_ascii=False)),
        ],
        structured_content=data,
    )


async def invoke(tool: Tool[Any, Any], services: Services, arguments: Any) -> CallToolResult:
    """Run one tool in a worker thread; every failure becomes a tool error (the session stays up)."""
    try:
        out = await anyio.to_thread.run_sync(tool.call, services, arguments)
    except QuantTaaSError as e:
        log.info("tool %s refused: [%s] %s", tool.name, e.code, e.message)
        return tool_error(e)
    except Exception as e:
        storage = environment_error(e)  # a read-only or full disk says so; it is not a bug
        if storage is not None:
            log.error("tool %s: %s", tool.name, storage.message)
            return tool_error(storage)
        log.exception("tool %s failed unexpectedly", tool.name)
        return tool_error(internal_error())
    return tool_result(out)


def _sdk_tool(tool: Tool[Any, Any], services: Services) -> SDKTool:
    async def call(**arguments: Any) -> CallToolResult:
        return await invoke(tool, services, arguments)

    call.__name__ = tool.name
    return SDKTool(
        fn=call,
        name=tool.name,
        title=tool.title,
        description=tool.describe(),
        parameters=tool.input_schema(),
        # a schema without an output model: advertised to clients, not re-validated by the SDK
        fn_metadata=FuncMetadata(arg_model=_RawArguments, output_schema=tool.output_schema()),
        is_async=True,
        context_kwarg=None,
        annotations=ToolAnnotations(
            title=tool.title,
            read_only_hint=tool.read_only,
            destructive_hint=False,
            idempotent_hint=tool.idempotent,
            open_world_hint=False,
        ),
        meta={"quanttaas/long_running": tool.long_running, "quanttaas/read_only": tool.read_only},
    )


async def _unknown_tool(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
    """An unknown tool name answers with the same error envelope as HTTP (not the SDK's bare text)."""
    if ctx.method == "tools/call" and ctx.request_id is not None and isinstance(ctx.params, Mapping):
        name = ctx.params.get("name")
        if isinstance(name, str) and name not in REGISTRY:
            err = UnknownToolError(
                f"no tool named {name[:100]!r}", hint="the tools are: " + ", ".join(REGISTRY)
            )
            return tool_error(err)
    return await call_next(ctx)


def _read(fn: Any) -> str:
    """Run a resource reader; QuantTaaS errors become resource errors whose message is the envelope."""
    try:
        return str(fn())
    except InputError as e:  # unknown or malformed id: the client's to fix (JSON-RPC invalid params)
        raise ResourceNotFoundError(error_json(e)) from None
    except QuantTaaSError as e:
        raise ResourceError(error_json(e)) from None


def build_mcp_server(services: Services) -> MCPServer:
    """An MCPServer with every registry tool and the QuantTaaS resources."""
    server: MCPServer = MCPServer(
        name="quanttaas",
        title="QuantTaaS",
        instructions=INSTRUCTIONS,
        version=_version(),
        tools=[_sdk_tool(t, services) for t in REGISTRY.values()],
        log_level="WARNING",
        middleware=[_unknown_tool],
    )
    _add_resources(server, services)
    return server


def _add_resources(server: MCPServer, services: Services) -> None:
    def tool_json(name: str, raw: dict[str, Any]) -> str:
        return _read(lambda: json.dumps(REGISTRY[name].call(services, raw).structured(), ensure_ascii=False))

    @server.resource(
        "quanttaas://models",
        name="models",
        mime_type="application/json",
        description="The stored models and the zoo names (as list_models returns them).",
    )
    def models() -> str:
        return tool_json("list_models", {})

    @server.resource(
        "quanttaas://zoo",
        name="zoo",
        mime_type="application/json",
        description="The built-in demo models (as list_zoo returns them).",
    )
    def zoo_entries() -> str:
        return tool_json("list_zoo", {})

    @server.resource(
        "quanttaas://models/{model}",
        name="model",
        mime_type="application/json",
        description="One model's inspection (as inspect_model returns it).",
    )
    def model(model: str) -> str:
        return tool_json("inspect_model", {"model": model})

    @server.resource(
        "quanttaas://jobs/{job_id}",
        name="job",
        mime_type="application/json",
        description="A job's state, progress and finished trials (as get_job returns them).",
    )
    def job(job_id: str) -> str:
        return tool_json("get_job", {"job_id": job_id})

    @server.resource(
        "quanttaas://jobs/{job_id}/report",
        name="report",
        mime_type="application/json",
        description="A finished sweep's Pareto report (as get_pareto_report returns it).",
    )
    def report(job_id: str) -> str:
        return tool_json("get_pareto_report", {"job_id": job_id})

    @server.resource(
        "quanttaas://jobs/{job_id}/chart",
        name="chart",
        mime_type="text/html",
        description="A finished sweep's interactive Pareto chart (HTML page).",
    )
    def chart(job_id: str) -> str:
        def page() -> str:
            args = REGISTRY["get_job"].parse({"job_id": job_id})
            services.job_store.get(args.job_id)
            return services.artifacts.read(f"{args.job_id}/pareto.html").decode("utf-8")

        return _read(page)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("quanttaas")
    except Exception:  # not installed as a distribution (running from a checkout)
        return "0"


def run_stdio(settings: ServerSettings | None = None, *, chart_writer: ChartWriter | None = None) -> None:
    """Serve MCP over stdin/stdout until the client closes it; only protocol goes to stdout."""
    settings = settings or ServerSettings()
    services = Services(settings, chart_writer=chart_writer)
    try:
        build_mcp_server(services).run("stdio")
    finally:
        services.close()
