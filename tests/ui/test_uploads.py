"""Uploads: safe names, a private folder, and the file sent inline to a remote server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from sessionkit import fake_assistant, record

from ui.uploads import register_upload, safe_filename, save_upload


def test_safe_filename_keeps_the_extension_and_drops_paths_and_odd_characters() -> None:
    assert safe_filename("../../etc/my model (v2).ONNX") == "my-model-v2.onnx"
    assert safe_filename("...npz") == "upload.npz"
    assert safe_filename("ok_name-1.pt2") == "ok_name-1.pt2"


def test_save_upload_writes_into_a_private_folder(tmp_path: Path) -> None:
    path = save_upload(tmp_path / "uploads", "a b.npz", b"data")
    assert path == tmp_path / "uploads" / "a-b.npz" and path.read_bytes() == b"data"
    assert (path.parent.stat().st_mode & 0o077) == 0


def test_register_upload_sends_the_file_inline_to_a_remote_server(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    a = fake_assistant()
    a.inner.tools.transport = "http http://127.0.0.1:8000/mcp/"
    a.call_tool = lambda name, args, cid: calls.append((name, args)) or record(name, {"data": {"id": "d"}})
    path = save_upload(tmp_path, "eval.npz", b"\x00" * 10)
    assert register_upload(a, path, "data").ok
    name, args = calls[0]
    assert name == "register_data" and args["filename"] == "eval.npz"
    assert base64.b64decode(args["content_base64"]) == b"\x00" * 10 and "path" not in args
