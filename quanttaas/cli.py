"""``quanttaas``: one command line over the floors, each of which owns its commands.

- the library (:mod:`optimizer.cli`): zoo, inspect, quantize, package, evaluate, goal, profile, optimize, demo;
- the server (:mod:`mcp_server.cli`): mcp, serve;
- the assistant (:mod:`assistant.cli`): ask, chat.

This is the only place that knows every floor, so it is where the page's chart writer (:mod:`ui.charts`) is handed
to the floors below, which never import the page.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _chart_writer() -> Any:
    """``ui.charts.save_charts_html``; None when the page's packages are missing (the chart is a bonus)."""
    try:
        from ui.charts import save_charts_html
    except ImportError:
        return None

    def write(report: Any, path: Path) -> None:
        save_charts_html(report, path)

    return write


def build_parser() -> argparse.ArgumentParser:
    from assistant.cli import add_commands as assistant_commands
    from mcp_server.cli import add_commands as server_commands
    from optimizer.cli import add_commands as library_commands

    p = argparse.ArgumentParser(
        prog="quanttaas", description="Compress neural networks and measure the trade-off."
    )
    sub = p.add_subparsers(dest="command", required=True)
    charts = _chart_writer()
    library_commands(sub, chart_writer=charts)
    server_commands(sub, chart_writer=charts)
    assistant_commands(sub, chart_writer=charts)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from optimizer.cli import main as run

    return run(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
