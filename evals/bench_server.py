"""Benchmark: round trips of one tool call over each surface of the server, and concurrent HTTP load.

Starts ``quanttaas serve`` (uvicorn) and ``quanttaas mcp`` (stdio) as subprocesses on a fresh home that shares the
zoo cache, then measures ``inspect_model(digits-cnn)``:

- p50/p95 round trip over plain HTTP (``POST /tools/inspect_model``, one keep-alive connection),
- p50/p95 over MCP streamable HTTP (``/mcp/`` of the same server) and over MCP stdio,
- 50 concurrent HTTP calls: errors (must be zero), wall time, p50/p95 under load.

Writes ``out/bench/server.md`` (and prints it). Run with ``python -m evals.bench_server [--calls N]``; not part of CI.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
from mcp import Client, StdioServerParameters

OUT = Path("out/bench")
ARGS = {"model": "digits-cnn"}
CONCURRENT = 50


def _pct(samples_ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 95))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quanttaas() -> list[str]:
    exe = Path(sys.executable).with_name("quanttaas")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "optimizer.cli"]


async def _timed(call: Callable[[], Awaitable[Any]], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def bench_http(url: str, n: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as h:

        async def call() -> None:
            r = await h.post("/tools/inspect_model", json=ARGS)
            r.raise_for_status()

        return await _timed(call, n)


async def bench_mcp(server: Any, n: int) -> list[float]:
    async with Client(server, read_timeout_seconds=120) as c:

        async def call() -> None:
            r = await c.call_tool("inspect_model", ARGS)
            if r.is_error:
                raise RuntimeError(r.content)

        return await _timed(call, n)


async def bench_concurrent(url: str) -> tuple[int, float, list[float]]:
    """CONCURRENT calls at once on separate connections: (errors, wall seconds, per-call ms)."""
    times: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as h:

        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                r = await h.post("/tools/inspect_model", json=ARGS)
                if r.status_code != 200 or "result" not in r.json():
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            times.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENT):
                tg.start_soon(one)
        wall = time.perf_counter() - t0
    return errors, wall, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100, help="sequential calls per surface (default 100)")
    args = parser.parse_args(argv)

    from optimizer import zoo
    from optimizer.settings import get_settings

    zoo_dir = Path(os.environ.get("QUANTTAAS_ZOO_DIR") or get_settings().zoo_dir)
    zoo.get_zoo_case("digits-cnn", root=zoo_dir)  # built once, outside the timings
    home = Path(tempfile.mkdtemp(prefix="quanttaas-bench-"))
    env = {
        **os.environ,
        "QUANTTAAS_HOME": str(home),
        "QUANTTAAS_ZOO_DIR": str(zoo_dir),
        "QUANTTAAS_SWEEP_EXECUTOR": "serial",
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(home / "serve.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [*_quanttaas(), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {home / 'serve.log'}")
            time.sleep(0.2)

        stdio = StdioServerParameters(command=_quanttaas()[0], args=[*_quanttaas()[1:], "mcp"], env=env)
        rows = [
            ("HTTP POST /tools/inspect_model", anyio.run(bench_http, url, args.calls)),
            ("MCP streamable HTTP (/mcp/)", anyio.run(bench_mcp, f"{url}/mcp/", args.calls)),
            ("MCP stdio (quanttaas mcp)", anyio.run(bench_mcp, stdio, args.calls)),
        ]
        errors, wall, load = anyio.run(bench_concurrent, url)
    finally:
        server.terminate()
        server.wait(30)
        log.close()

    lines = [
        f"# Server round trips: inspect_model(digits-cnn), {args.calls} sequential calls per surface",
        "",
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "",
        "| surface | p50 ms | p95 ms | mean ms |",
        "|---|---:|---:|---:|",
    ]
    for name, times in rows:
        p50, p95 = _pct(times)
        lines.append(f"| {name} | {p50:.1f} | {p95:.1f} | {statistics.fmean(times):.1f} |")
    p50, p95 = _pct(load)
    lines += [
        "",
        f"## {CONCURRENT} concurrent HTTP calls",
        "",
        f"errors: {errors}; wall time {wall:.2f} s ({CONCURRENT / wall:.0f} calls/s); "
        f"per call p50 {p50:.1f} ms, p95 {p95:.1f} ms",
    ]
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "server.md").write_text(text)
    print(text)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
