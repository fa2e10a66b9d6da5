"""One way to fetch an artifact, whatever its size: inline through get_artifact when it fits the server's inline
limit, over the server's download route when it does not (in process and over HTTP), and a clear error (never a
silent skip) when no route is known (stdio)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GOAL_MET
from test_agent_http import _serve

from assistant.agent import Assistant
from assistant.connection import DownloadError
from assistant.settings import AssistantSettings

INLINE_LIMIT = 1024  # far below the digits-cnn models (~37 KB int8): every model must take the download route


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, zoo_dir: Path) -> Iterator[dict[str, Any]]:
    """A sweep run in process by an assistant that saves its result, on a server with a tiny inline limit."""
    from mcp_server.settings import ServerSettings

    home = tmp_path_factory.mktemp("download-home")
    server = ServerSettings(
        home=home, zoo_dir=zoo_dir, sweep_executor="serial", max_inline_artifact_bytes=INLINE_LIMIT
    )
    settings = AssistantSettings(llm="offline", mcp_url=None, mcp_command=None, poll_interval_s=0.2)
    save_dir = tmp_path_factory.mktemp("saved")
    with Assistant(settings, server_settings=server, save_dir=save_dir) as a:
        reply = a.ask(GOAL_MET)
        best = reply.files["model_artifact"]
        info = a.call_tool("get_artifact", {"artifact_id": best, "inline": True})
        yield {"reply": reply, "best": best, "info": info, "server": server, "home": home}


@pytest.mark.slow
def test_agent_saves_a_model_too_large_to_inline_through_the_download_route(finished: dict[str, Any]) -> None:
    reply, info = finished["reply"], finished["info"]
    assert info.ok and info.result["content_base64"] is None  # the server would not send it inline
    assert info.result["size_bytes"] > INLINE_LIMIT
    saved = Path(reply.files["saved_model"])
    assert saved.is_file() and saved.name == Path(finished["best"]).name
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == info.result["sha256"]
    assert Path(reply.files["saved_report"]).is_file() and "Not saved" not in reply.text
    assert f"model {saved}" in reply.text


@pytest.mark.slow
def test_download_takes_the_servers_http_route_with_its_token(finished: dict[str, Any]) -> None:
    from mcp_server.http_app import create_app

    server = finished["server"]
    with_token = type(server)(
        home=server.home,
        zoo_dir=server.zoo_dir,
        sweep_executor="serial",
        max_inline_artifact_bytes=INLINE_LIMIT,
        token="s3cret",
    )
    app = create_app(with_token)
    with _serve(app) as url:
        settings = AssistantSettings(llm="offline", mcp_url=f"{url}/mcp/", mcp_command=None, token="s3cret")
        with Assistant(settings) as a:
            data = a.download(finished["best"])
            with pytest.raises(DownloadError) as unknown:
                a.download(f"{'f' * 16}/best.onnx")
    assert hashlib.sha256(data).hexdigest() == finished["info"].result["sha256"]
    assert unknown.value.code == "not_found"


@pytest.mark.slow
def test_download_over_stdio_says_why_a_large_file_cannot_come_and_the_agent_names_it(
    finished: dict[str, Any], zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTTAAS_HOME", str(finished["home"]))
    monkeypatch.setenv("QUANTTAAS_ZOO_DIR", str(zoo_dir))
    monkeypatch.setenv("QUANTTAAS_MAX_INLINE_ARTIFACT_BYTES", str(INLINE_LIMIT))
    exe = Path(sys.executable).with_name("quanttaas")
    command = f"{exe} mcp" if exe.is_file() else f"{sys.executable} -m quanttaas mcp"
    settings = AssistantSettings(llm="offline", mcp_url=None, mcp_command=command)
    job_id = finished["reply"].job_id
    with Assistant(settings, save_dir=finished["home"] / "stdio-saved") as a:
        with pytest.raises(DownloadError) as too_large:
            a.download(finished["best"])
        saved, problems = a._portal.call(a.inner._save, job_id, {"model_artifact": finished["best"]})
    assert too_large.value.code == "payload_too_large" and "QUANTTAAS_MCP_URL" in too_large.value.hint
    assert "saved_model" not in saved and len(problems) >= 1 and finished["best"] in problems[0]
