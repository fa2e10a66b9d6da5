"""Server-side leaves of the error tree (optimizer.errors) and the one wire form every surface renders.

::

    InputError (400)
    ├── ArgumentsError        input_invalid   422  arguments that fail a tool's schema
    ├── UnknownToolError      not_found       404  (a NotFoundError) no tool of that name
    ├── JobStateError         job_state       409  the job is not in a state that allows this (yet)
    ├── PayloadTooLargeError  payload_too_large 413 an upload or body over the configured limit
    └── UnsupportedFileError  file_type       415  an upload that is not a model / data file we take
    QuantTaaSError
    ├── AuthError             unauthorized    401  missing or wrong bearer token
    ├── HostError             host_not_allowed 421 Host header refused (DNS-rebinding protection)
    ├── OriginError           origin_not_allowed 403 a browser Origin that is not this server
    └── StorageError          storage_unavailable 503 the server's own files cannot be read or written (a read-only
                                                       or full disk, wrong permissions, a damaged job database):
                                                       an environment problem for the operator, never a bug

Every surface renders an error as ``{"error": {"code", "message", "hint"}}`` (:func:`error_envelope`); HTTP uses
``http_status``, MCP returns a tool error whose text is that JSON. Nothing else reaches a client: an unexpected
exception becomes ``internal_error`` with no traceback.
"""

from __future__ import annotations

import errno
import json
import sqlite3
from typing import Any

from pydantic import ValidationError

from optimizer.errors import InputError, NotFoundError, QuantTaaSError

__all__ = [
    "ArgumentsError",
    "AuthError",
    "HTTPStatusError",
    "HostError",
    "JobStateError",
    "MethodNotAllowedError",
    "OriginError",
    "PayloadTooLargeError",
    "StorageError",
    "UnknownToolError",
    "UnsupportedFileError",
    "environment_error",
    "error_envelope",
    "error_json",
    "internal_error",
]


class ArgumentsError(InputError):
    code = "input_invalid"
    http_status = 422
    default_hint = "Check the arguments against the tool's input schema (GET /tools or MCP tools/list)."


class UnknownToolError(NotFoundError):
    default_hint = "List the tools first (GET /tools or MCP tools/list)."


class JobStateError(InputError):
    code = "job_state"
    http_status = 409
    default_hint = "Call get_job to see the job's state; wait for it to finish or resume it."


class PayloadTooLargeError(InputError):
    code = "payload_too_large"
    http_status = 413
    default_hint = "Send a smaller file, or raise QUANTTAAS_MAX_UPLOAD_BYTES on the server."


class UnsupportedFileError(InputError):
    code = "file_type"
    http_status = 415
    default_hint = "Models are .onnx files or torch.export programs (.pt2); data files are .npz archives."


class AuthError(QuantTaaSError):
    code = "unauthorized"
    http_status = 401
    default_hint = "Send the header `Authorization: Bearer <QUANTTAAS_TOKEN>`."


class HostError(QuantTaaSError):
    code = "host_not_allowed"
    http_status = 421
    default_hint = "Call the server by 127.0.0.1/localhost, or add the name to QUANTTAAS_ALLOWED_HOSTS."


class OriginError(QuantTaaSError):
    code = "origin_not_allowed"
    http_status = 403
    default_hint = (
        "Browsers may call this server only from pages it serves itself (or QUANTTAAS_ALLOWED_HOSTS)."
    )


class StorageError(QuantTaaSError):
    """The server's own storage failed: what is wrong, where, and what the operator can do about it."""

    code = "storage_unavailable"
    http_status = 503
    default_hint = (
        "This is a problem with the server's storage, not with the request: check that QUANTTAAS_HOME is writable "
        "and has free space; GET /health shows what the server found at start."
    )


# errnos that describe the machine, not the request or the code
_ENVIRONMENT_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EIO: "an input/output error from the disk",
}


def environment_error(exc: BaseException) -> StorageError | None:
    """The :class:`StorageError` an exception stands for when it is the machine's fault (a read-only or full disk,
    permissions, a damaged or locked SQLite file); None for anything else (then it is a bug)."""
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        what = _ENVIRONMENT_ERRNOS[exc.errno]
        hint = {
            errno.EROFS: "Mount QUANTTAAS_HOME read-write (reads keep working meanwhile).",
            errno.ENOSPC: "Free disk space under QUANTTAAS_HOME (old jobs live in server/jobs/).",
            errno.EDQUOT: "Free disk space under QUANTTAAS_HOME (old jobs live in server/jobs/).",
        }.get(exc.errno, "Give the server's user write access to QUANTTAAS_HOME (chown/chmod), then retry.")
        return StorageError(f"the server could not write its files: {what}{where}", hint=hint)
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return StorageError(
                f"the job database is read-only: {text}",
                hint="Give the server's user write access to QUANTTAAS_HOME/server (jobs.sqlite and its folder).",
            )
        # a damaged, locked or vanished file; a constraint or programming error stays a bug
        if type(exc) is sqlite3.DatabaseError or isinstance(exc, sqlite3.OperationalError):
            return StorageError(
                f"the job database failed: {text}",
                hint="GET /health says what is wrong with it; restore server/jobs.sqlite from a backup or move it "
                "aside (a new empty one is created at the next start).",
            )
    return None


class MethodNotAllowedError(InputError):
    code = "method_not_allowed"
    http_status = 405
    default_hint = "The routes and their methods are documented at /docs."


class HTTPStatusError(InputError):
    """Any other 4xx the HTTP framework raises itself, with its own status."""

    code = "bad_request"
    default_hint = "The routes are documented at /docs."

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.http_status = status


def internal_error() -> QuantTaaSError:
    """The error shown for anything unexpected: no exception text, no traceback (those go to the log)."""
    return QuantTaaSError(
        "the server hit an unexpected error; it is logged on the server",
        hint="This is a bug in QuantTaaS; please report it with the request you sent.",
    )


def error_envelope(err: QuantTaaSError) -> dict[str, Any]:
    """``{"error": {"code", "message", "hint"[, "details"]}}``."""
    return {"error": err.to_dict()}


def error_json(err: QuantTaaSError) -> str:
    return json.dumps(error_envelope(err), ensure_ascii=False)


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(arguments)"


def arguments_error(tool: str, exc: ValidationError, *, prefix: tuple[str, ...] = ()) -> ArgumentsError:
    """A pydantic ValidationError as an :class:`ArgumentsError` (the rejected values are not echoed back)."""
    errors = [
        {"loc": [*prefix, *[str(p) for p in e["loc"]]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    shown = "; ".join(f"{_loc(tuple(e['loc']))}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return ArgumentsError(
        f"invalid arguments for {tool}: {shown}{more}",
        hint=f"See the input schema of {tool!r} (GET /tools or MCP tools/list); unknown fields are refused.",
        details={"errors": errors[:20]},
    )
