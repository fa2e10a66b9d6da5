"""The HTTP surface: one FastAPI app with the registry's tools, uploads, jobs, artifacts and MCP at ``/mcp/``.

Routes (OpenAPI docs at ``/docs``)::

    GET  /health                 liveness and storage state (open even when a token is required)
    GET  /tools                  every tool: name, description, input and output JSON schemas, flags
    GET  /tools/{name}           one tool's spec
    POST /tools/{name}           call a tool: JSON body = its arguments -> {"result": ..., "text": ...}
    POST /models, POST /data     multipart upload (field `file`, optional `name`; /data also `model`) -> as
                                 register_model/register_data
    GET  /models/{id}/file, GET /data/{id}/file   download a stored model (or zoo model) / data file
    GET  /jobs, GET /jobs/{id}, GET /jobs/{id}/report
    GET  /artifacts/{job_id}/{file}   download an artifact (a model, report.json, pareto.html)
    *    /mcp/                   the MCP streamable HTTP endpoint (same tools)

Every GET route answers HEAD too; a 405 names the allowed methods in ``Allow``.

Errors are ``{"error": {"code", "message", "hint"}}`` with the error's HTTP status: 422 for arguments that fail a
tool's schema, 400 for other bad input, 404 for unknown models/jobs/tools/artifacts, 405 for a method the route
does not take, 409 for a job in the wrong state, 413 for a body over the limit, 415 for an upload of the wrong
type, 401/403/421 from the guard, 503 when the server's own storage fails (a read-only or full disk, a damaged job
database: GET /health says which), and 500 (logged, no traceback) for bugs.
"""

from __future__ import annotations

import inspect
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount

from mcp_server.artifacts import media_type, parse_artifact_id
from mcp_server.errors import (
    ArgumentsError,
    HTTPStatusError,
    MethodNotAllowedError,
    UnknownToolError,
    UnsupportedFileError,
    environment_error,
    error_envelope,
    internal_error,
)
from mcp_server.mcp_app import build_mcp_server
from mcp_server.security import GuardMiddleware
from mcp_server.services import DATA_SUFFIXES, MODEL_SUFFIXES, Services
from mcp_server.settings import ServerSettings
from mcp_server.tools import (
    REGISTRY,
    DisplayName,
    JobInfo,
    JobStateName,
    ListJobsResult,
    ModelName,
    RegisterDataResult,
    RegisterModelResult,
    ReportResult,
    Tool,
    ToolOutput,
    register_data_result,
    register_model_result,
)
from optimizer.errors import InputError, NotFoundError, QuantTaaSError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
JobIdPath = Annotated[
    str, PathParam(min_length=16, max_length=16, pattern=r"^[0-9a-f]{16}$", description="a job id")
]


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """Every error response."""

    error: ErrorBody


class ToolSpec(BaseModel):
    """One tool as GET /tools lists it."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    read_only: bool
    long_running: bool
    idempotent: bool


class Health(BaseModel):
    """Liveness, and what is wrong with the server's storage: ``degraded`` means it serves what it can (reads,
    models, goals) while ``problems`` say what is wrong, where, and what to do."""

    status: Literal["ok", "degraded"] = "ok"
    version: str
    tools: int
    jobs_running: int | None = Field(description="null when the job database cannot be read")
    problems: list[ErrorBody] = Field(default_factory=list, description="each storage problem found at start")


def tool_spec(tool: Tool[Any, Any]) -> ToolSpec:
    return ToolSpec(
        name=tool.name,
        title=tool.title,
        description=tool.describe(),
        input_schema=tool.input_schema(),
        output_schema=tool.output_schema(),
        read_only=tool.read_only,
        long_running=tool.long_running,
        idempotent=tool.idempotent,
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in [
        (400, "bad input (a corrupt model, data that does not fit, an unusable goal)"),
        (404, "unknown model, data, job, tool or artifact"),
        (409, "the job is not in a state that allows this"),
        (413, "body over the size limit"),
        (422, "arguments that fail the schema"),
        (500, "a bug (logged on the server)"),
        (503, "the server's storage cannot serve this (read-only or full disk, damaged job database)"),
    ]
}


def _error_response(err: QuantTaaSError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="quanttaas"'} if err.http_status == 401 else None
    return JSONResponse(error_envelope(err), status_code=err.http_status, headers=headers)


def _tool_response(out: ToolOutput) -> Response:
    # serialised by pydantic: NaN becomes null instead of breaking the JSON encoder
    body = (
        '{"result": '
        + out.result.model_dump_json()
        + ', "text": '
        + TypeAdapter(str).dump_json(out.text).decode()
    )
    return Response(content=body + "}", media_type="application/json")


async def _guarded(fn: Callable[[], Awaitable[Response]]) -> Response:
    """Run a route body; QuantTaaS errors become their envelope, a storage failure a 503 that says so, anything
    else a logged 500 envelope."""
    try:
        return await fn()
    except QuantTaaSError as e:
        return _error_response(e)
    except Exception as e:
        storage = environment_error(e)
        if storage is not None:
            log.error("storage failure in a route: %s", storage.message)
            return _error_response(storage)
        log.exception("unexpected error in a route")
        return _error_response(internal_error())


def _add_tool_route(app: FastAPI, tool: Tool[Any, Any], services: Services) -> None:
    args_model = tool.args_model
    # a rule across fields (exactly one of ...) makes the body required even when no single field is
    required = any(f.is_required() for f in args_model.model_fields.values()) or bool(args_model.one_of)
    response_model = create_model(
        "".join(part.title() for part in tool.name.split("_")) + "Response",
        result=(tool.result_model, Field(description="the tool's result (MCP: structured content)")),
        text=(str, Field(description="a one-line summary for people")),
    )

    async def endpoint(request: Request, args: Any = None) -> Response:
        async def run() -> Response:
            # FastAPI has checked the body against the schema it documents; the tool parses the raw JSON once
            # more, as MCP does, so both surfaces are strict all the way down (a structured goal's fields too)
            parsed = tool.parse(await request.json() if args is not None else {})
            out = await anyio.to_thread.run_sync(tool.run, services, parsed)
            return _tool_response(out)

        return await _guarded(run)

    annotation: Any = Annotated[args_model, Body()] if required else Annotated[args_model | None, Body()]
    params = [
        inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter(
            "args",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=annotation,
            default=inspect.Parameter.empty if required else None,
        ),
    ]
    endpoint.__signature__ = inspect.Signature(params, return_annotation=Response)  # type: ignore[attr-defined]
    endpoint.__name__ = f"call_{tool.name}"
    responses = dict(_ERRORS)
    if "filename" in args_model.model_fields:  # the registering tools check the file's type by its extension
        responses[415] = {"model": ErrorEnvelope, "description": "the file name's extension is not one taken"}
    app.add_api_route(
        f"/tools/{tool.name}",
        endpoint,
        methods=["POST"],
        response_model=response_model,
        responses=responses,
        summary=tool.title,
        description=tool.describe(),
        operation_id=tool.name,
        tags=["tools"],
    )


async def _save_upload(
    request: Request, services: Services, suffixes: tuple[str, ...], what: str
) -> tuple[Path, str, str | None]:
    """Read a multipart upload (field `file`, optional `name` and, for data, `model`) into the upload folder;
    returns (path, name, model)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedFileError(
            "send the file as multipart/form-data with a `file` field",
            hint=f"curl -F file=@model{suffixes[0]} -F name=my-{what} <server>/{'models' if what == 'model' else 'data'}",
        )
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
    except QuantTaaSError:
        raise
    except Exception as e:  # the multipart parser's errors (malformed body, too many parts)
        raise InputError(f"could not read the multipart upload: {str(e)[:200]}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InputError("the form has no `file` part", hint="send the file in a form field named `file`")
        known = {"file", "name", "model"} if what == "data" else {"file", "name"}
        unknown = sorted(k for k in form if k not in known)
        if unknown:
            raise ArgumentsError(
                f"unknown form field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}",
                hint=f"a {what} upload takes the fields {', '.join(sorted(known))}",
            )
        filename = upload.filename or ""
        suffix = services.check_type(filename, suffixes, what)
        raw_name = form.get("name")
        name = Path(filename).stem
        if raw_name is not None:
            try:
                name = TypeAdapter(DisplayName).validate_python(raw_name)
            except ValidationError:
                raise ArgumentsError(
                    "`name` must be 1-64 letters, digits, spaces, '.', '_' or '-'", hint="pick a simpler name"
                ) from None
        model: str | None = None
        raw_model = form.get("model")
        if raw_model is not None:
            try:
                model = TypeAdapter(ModelName).validate_python(raw_model)
            except ValidationError:
                raise ArgumentsError(
                    "`model` must be a stored model id or a zoo name (list_models shows them)",
                    hint="leave it out to store the data unchecked",
                ) from None
        dest = services.new_upload_path(suffix)

        def copy() -> None:
            with open(dest, "wb") as out:
                shutil.copyfileobj(upload.file, out, _CHUNK)

        await anyio.to_thread.run_sync(copy)
        return dest, name, model
    finally:
        await form.close()


def upload_body(suffixes: tuple[str, ...], what: str) -> dict[str, Any]:
    """The multipart request body of an upload, as the server checks it: the file's type comes from its name's
    extension (anything else is a 415), the optional fields follow the same patterns as the tools' arguments."""
    types = " or ".join(suffixes)
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "application/octet-stream",
            "description": f"the {what} file; its file name must end in {types} (anything else is refused with 415)",
            "x-file-extensions": list(suffixes),
        },
        "name": {
            **_schema_of(DisplayName),
            "description": "a short name the id is built from (default: the file name without its extension)",
        },
    }
    if what == "data":
        properties["model"] = {
            **_schema_of(ModelName),
            "description": "check the data against this stored model or zoo name before storing it",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": properties,
                        "additionalProperties": False,
                    },
                    "encoding": {"file": {"contentType": "application/octet-stream"}},
                }
            },
        }
    }


def _schema_of(annotation: Any) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema()
    return {k: v for k, v in schema.items() if k in ("type", "minLength", "maxLength", "pattern")}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the rules across fields the tools enforce (``Args.one_of``) on their bodies."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = FastAPI.openapi(app)
    components = schema.get("components", {}).get("schemas", {})
    for tool in REGISTRY.values():
        rules = tool.args_model.one_of
        op = schema["paths"].get(f"/tools/{tool.name}", {}).get("post", {})
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        refs = [body.get("$ref")] + [b.get("$ref") for b in body.get("anyOf", [])]
        for ref in refs:
            if rules and ref and ref.rsplit("/", 1)[-1] in components:
                components[ref.rsplit("/", 1)[-1]]["oneOf"] = rules
    app.openapi_schema = schema
    return schema


def create_app(settings: ServerSettings | None = None, *, services: Services | None = None) -> FastAPI:
    """The FastAPI app: REST routes and the MCP endpoint, sharing one :class:`Services`."""
    settings = settings or (services.settings if services is not None else ServerSettings())
    services = services or Services(settings)
    mcp = build_mcp_server(services)
    mcp_http = mcp.streamable_http_app(
        streamable_http_path="/",
        # the guard in front of every route, /mcp/ included, is the one Host/Origin check: a second, different
        # parser here let REST and MCP disagree on the same Host header
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_body_size=settings.max_body_bytes,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            await anyio.to_thread.run_sync(services.close)

    app = FastAPI(
        title="QuantTaaS",
        version=mcp.version,
        summary="Compress neural networks (int8/fp16/int4) and measure the trade-off.",
        description=(
            "Every tool of the QuantTaaS registry as `POST /tools/{name}`; the same tools over MCP at `/mcp/`. "
            "Long sweeps are jobs: `run_sweep` returns a job id at once, `get_job` reports progress. Errors are "
            '`{"error": {"code", "message", "hint"}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.mcp = mcp
    _add_routes(app, services)
    app.mount("/mcp", mcp_http)
    _add_error_handlers(app)
    app.add_middleware(GuardMiddleware, settings=settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    for problem in services.problems:
        log.error("QuantTaaS starts degraded: %s. %s", problem.message, problem.hint)
    return app


def _add_routes(app: FastAPI, services: Services) -> None:
    @app.get("/health", tags=["server"])
    async def health() -> Health:
        running: int | None
        try:
            running = len(services.job_store.recent(limit=1000, states=["running"]))
        except QuantTaaSError:
            running = None
        problems = [ErrorBody(**p.to_dict()) for p in services.problems]
        return Health(
            status="degraded" if problems else "ok",
            version=app.version,
            tools=len(REGISTRY),
            jobs_running=running,
            problems=problems,
        )

    @app.get("/tools", tags=["tools"], summary="List the tools")
    async def list_tools() -> list[ToolSpec]:
        return [tool_spec(t) for t in REGISTRY.values()]

    @app.get("/tools/{name}", tags=["tools"], summary="One tool's spec", responses=_ERRORS)
    async def get_tool_spec(name: str) -> ToolSpec:
        tool = REGISTRY.get(name)
        if tool is None:
            raise UnknownToolError(
                f"no tool named {name[:100]!r}", hint="the tools are: " + ", ".join(REGISTRY)
            )
        return tool_spec(tool)

    for tool in REGISTRY.values():
        _add_tool_route(app, tool, services)

    @app.post(
        "/tools/{name}", tags=["tools"], summary="Unknown tool", responses=_ERRORS, include_in_schema=False
    )
    async def unknown_tool(name: str) -> Response:
        return _error_response(
            UnknownToolError(f"no tool named {name[:100]!r}", hint="the tools are: " + ", ".join(REGISTRY))
        )

    @app.post(
        "/models",
        tags=["uploads"],
        summary="Upload a model (.onnx or .pt2)",
        response_model=RegisterModelResult,
        responses={**_ERRORS, 415: {"model": ErrorEnvelope, "description": "not a .onnx or .pt2 file"}},
        openapi_extra=upload_body(MODEL_SUFFIXES, "model"),
    )
    async def upload_model(request: Request) -> Response:
        async def run() -> Response:
            path, name, _ = await _save_upload(request, services, MODEL_SUFFIXES, "model")
            try:
                ref = await anyio.to_thread.run_sync(services.register_model_file, path, name)
            finally:
                path.unlink(missing_ok=True)
            result = await anyio.to_thread.run_sync(register_model_result, ref)
            return Response(result.model_dump_json(), media_type="application/json")

        return await _guarded(run)

    @app.post(
        "/data",
        tags=["uploads"],
        summary="Upload a data file (.npz)",
        response_model=RegisterDataResult,
        responses={**_ERRORS, 415: {"model": ErrorEnvelope, "description": "not a .npz file"}},
        openapi_extra=upload_body(DATA_SUFFIXES, "data"),
    )
    async def upload_data(request: Request) -> Response:
        async def run() -> Response:
            path, name, model = await _save_upload(request, services, DATA_SUFFIXES, "data")
            try:
                checked = await anyio.to_thread.run_sync(
                    lambda: services.register_data_file(path, name, model=model)
                )
            finally:
                path.unlink(missing_ok=True)
            return Response(register_data_result(checked).model_dump_json(), media_type="application/json")

        return await _guarded(run)

    @app.get(
        "/models/{model}/file",
        tags=["uploads"],
        summary="Download a stored model (or a zoo model) as .onnx",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    )
    async def model_file(model: Annotated[str, PathParam(max_length=81)]) -> Response:
        async def run() -> Response:
            resolved = await anyio.to_thread.run_sync(services.resolve_model, model)  # ids are checked there
            return FileResponse(
                resolved.path, media_type="application/octet-stream", filename=f"{model}.onnx"
            )

        return await _guarded(run)

    @app.get(
        "/data/{data_id}/file",
        tags=["uploads"],
        summary="Download a registered data file (.npz)",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    )
    async def data_file(data_id: Annotated[str, PathParam(max_length=81)]) -> Response:
        async def run() -> Response:
            ref = services.data.get(data_id)  # ids are checked before they reach the file system
            return FileResponse(ref.path, media_type="application/octet-stream", filename=f"{ref.id}.npz")

        return await _guarded(run)

    async def tool_json(name: str, raw: dict[str, Any]) -> Response:
        async def run() -> Response:
            out = await anyio.to_thread.run_sync(REGISTRY[name].call, services, raw)
            return Response(out.result.model_dump_json(), media_type="application/json")

        return await _guarded(run)

    @app.get("/jobs", tags=["jobs"], response_model=ListJobsResult, responses=_ERRORS)
    async def jobs(
        state: JobStateName | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> Response:
        return await tool_json("list_jobs", {"state": state, "limit": limit})

    @app.get("/jobs/{job_id}", tags=["jobs"], response_model=JobInfo, responses=_ERRORS)
    async def job(job_id: JobIdPath, include_trials: bool = True) -> Response:
        return await tool_json("get_job", {"job_id": job_id, "include_trials": include_trials})

    @app.get("/jobs/{job_id}/report", tags=["jobs"], response_model=ReportResult, responses=_ERRORS)
    async def job_report(job_id: JobIdPath) -> Response:
        return await tool_json("get_pareto_report", {"job_id": job_id})

    @app.get(
        "/artifacts/{artifact_id:path}",
        tags=["jobs"],
        summary="Download an artifact",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    )
    async def artifact(artifact_id: str) -> Response:
        async def run() -> Response:
            job_id, name = parse_artifact_id(artifact_id)
            services.job_store.get(job_id)
            filename = Path(name).name
            local = services.artifacts.local_path(artifact_id)
            if local is not None:
                return FileResponse(local, media_type=media_type(name), filename=filename)
            data = await anyio.to_thread.run_sync(services.artifacts.read, artifact_id)
            disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
            return Response(data, media_type=media_type(name), headers=disposition)

        return await _guarded(run)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QuantTaaSError)
    async def on_quanttaas_error(request: Request, exc: QuantTaaSError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        path = request.url.path
        what = path.removeprefix("/tools/") if path.startswith("/tools/") else f"{request.method} {path}"
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            if loc[:1] == ["body"]:
                loc = loc[1:]
            errors.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
        shown = "; ".join(f"{'.'.join(e['loc']) or '(body)'}: {e['msg']}" for e in errors[:5])
        err = ArgumentsError(
            f"invalid arguments for {what}: {shown}",
            hint=f"See the input schema of {what!r} (GET /tools); unknown fields are refused.",
            details={"errors": errors[:20]},
        )
        return _error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, QuantTaaSError):
            return _error_response(exc.__cause__)
        if exc.status_code == 404:
            err: QuantTaaSError = NotFoundError(
                f"no route {request.method} {request.url.path[:200]}",
                hint="GET /tools lists the tools; the API is documented at /docs",
            )
        elif exc.status_code == 405:
            allowed = _allowed_methods(request)
            err = MethodNotAllowedError(
                f"{request.method} is not allowed on {request.url.path[:200]}",
                hint=f"this route takes {', '.join(allowed)}; the routes are documented at /docs",
            )
            response = _error_response(err)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        else:
            err = HTTPStatusError(str(exc.detail)[:300], status=exc.status_code)
        return _error_response(err)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        storage = environment_error(exc)
        if storage is not None:
            log.error("storage failure on %s %s: %s", request.method, request.url.path, storage.message)
            return _error_response(storage)
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error_response(internal_error())


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path (HEAD wherever GET is: the guard answers it)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, BaseRoute) and not isinstance(route, Mount):
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match != Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
