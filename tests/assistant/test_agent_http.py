"""The assistant driving a running server over MCP streamable HTTP (a real uvicorn), with its bearer token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from assistant.agent import Assistant
from assistant.settings import AssistantSettings


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_assistant_talks_to_a_server_over_streamable_http_with_its_token(server_settings: Any) -> None:
    from mcp_server.http_app import create_app

    settings_with_token = type(server_settings)(
        home=server_settings.home, zoo_dir=server_settings.zoo_dir, sweep_executor="serial", token="s3cret"
    )
    app = create_app(settings_with_token)
    with _serve(app) as url:
        settings = AssistantSettings(llm="offline", mcp_url=f"{url}/mcp/", mcp_command=None, token="s3cret")
        with Assistant(settings) as a:
            reply = a.ask("why not int4?")
            transport = a.inner.tools.transport
    assert transport == f"http {url}/mcp/"
    assert [r.name for r in reply.tool_calls] == ["list_zoo", "list_models"] and all(
        r.ok for r in reply.tool_calls
    )
    assert reply.outcome == "needs_input" and "not run a sweep" in reply.text
