"""Uploads: an uploaded model or data file is written to a private temporary folder and stored on the server through
the ``register_model``/``register_data`` tools (in process by path, to a remote server inline).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ui.chat import exception_text
from ui.session import transport_of

if TYPE_CHECKING:
    from assistant.agent import Assistant
    from assistant.events import ToolRecord

__all__ = [
    "DATA_TYPES",
    "MODEL_TYPES",
    "check_data_fits",
    "inspection_markdown",
    "inspection_rows",
    "register_upload",
    "safe_filename",
    "save_upload",
]

MODEL_TYPES = ("onnx", "pt2")
DATA_TYPES = ("npz",)
_INLINE_UPLOAD_LIMIT = 12_000_000  # register_* take at most 12 MB inline (base64); bigger files need a path


def safe_filename(name: str, default: str = "upload") -> str:
    """A file name the tools accept: letters, digits, ``._-``, starting with a letter or digit."""
    base = Path(name).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("._-")[:60] or default
    suffix = re.sub(r"[^a-z0-9.]", "", suffix)[:10]
    return stem + suffix


def save_upload(folder: Path, filename: str, data: bytes) -> Path:
    """Write an uploaded file into ``folder`` (created private to this user) and return its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / safe_filename(filename)
    path.write_bytes(data)
    return path


def _failed(name: str, message: str, hint: str, code: str = "upload_failed") -> ToolRecord:
    from assistant.events import ToolRecord

    error = {"code": code, "message": message, "hint": hint}
    return ToolRecord(call_id="ui-upload", name=name, ok=False, text=message, error=error)


def register_upload(assistant: Assistant, path: Path, kind: Literal["model", "data"]) -> ToolRecord:
    """Store an uploaded file on the server (``register_model`` / ``register_data``); a bad file comes back as
    a record with ``ok=False`` and the server's ``{code, message, hint}``. Raises nothing.

    In process the server reads the file by path; a remote server gets it inline (base64, up to 12 MB).
    """
    tool = "register_model" if kind == "model" else "register_data"
    name = re.sub(r"[^A-Za-z0-9 ._-]+", "-", path.stem).strip("._- ")[:60] or kind
    args: dict[str, Any] = {"name": name}
    if transport_of(assistant) == "in-process":
        args["path"] = str(path)
    else:
        size = path.stat().st_size
        if size > _INLINE_UPLOAD_LIMIT:
            return _failed(
                tool,
                f"{path.name} is {size:,} bytes; the chat sends files of up to {_INLINE_UPLOAD_LIMIT:,} bytes "
                "to a remote server",
                "upload it with HTTP POST /models (or /data) and name its id in the chat",
                code="payload_too_large",
            )
        args["content_base64"] = base64.b64encode(path.read_bytes()).decode()
        args["filename"] = path.name
    try:
        return assistant.call_tool(tool, args, f"ui-{tool}")
    except Exception as e:  # the tool session itself failed: the page shows it like a tool error
        return _failed(
            tool, exception_text(e), "reload the page to start a new session", code="session_error"
        )


def check_data_fits(
    path: Path, inspection: dict[str, Any], *, calibration: bool = False
) -> dict[str, str] | None:
    """Whether the data file at ``path`` fits the model of ``inspection`` (the inspection ``register_model``
    returned): None when it does, else the error ``{code, message, hint}``. The library's own data reader does
    the check, so the page refuses at upload what the sweep would refuse later, and names the file the user
    chose. ``calibration`` data needs no labels. Raises nothing.
    """
    from optimizer.errors import QuantTaaSError
    from optimizer.measure.data import load_data
    from optimizer.types import TensorInfo

    try:
        inputs = [TensorInfo.model_validate(t) for t in inspection.get("inputs") or []]
        load_data(path, inputs, metric="agreement" if calibration else None)
    except QuantTaaSError as e:
        return {"code": e.code, "message": e.message, "hint": e.hint or ""}
    except (ValueError, TypeError) as e:  # an inspection that does not read back: let the server decide
        return {"code": "input_invalid", "message": str(e)[:300], "hint": "upload the model again"}
    return None


def inspection_rows(inspection: dict[str, Any]) -> list[dict[str, str]]:
    """The inputs and outputs of an inspection as table rows (``kind``, ``name``, ``dtype``, ``shape``)."""
    rows: list[dict[str, str]] = []
    for kind in ("inputs", "outputs"):
        for t in inspection.get(kind) or []:
            rows.append(
                {
                    "kind": kind[:-1],
                    "name": str(t.get("name", "")),
                    "dtype": str(t.get("dtype", "")),
                    "shape": str(t.get("shape", "")),
                }
            )
    return rows


def inspection_markdown(inspection: dict[str, Any]) -> str:
    """The inputs and outputs of an inspection as a short markdown list."""
    lines = [
        f"- {row['kind']} `{row['name']}`: {row['dtype']} {row['shape']}"
        for row in inspection_rows(inspection)
    ]
    return "\n".join(lines)
