"""``quanttaas ask`` (one message) and ``quanttaas chat`` (a session in the terminal).

The answer goes to stdout; tool calls, sweep progress and everything the libraries print go to stderr, so
``quanttaas ask "..." > answer.md`` keeps only the answer. Exit codes of ``ask``: 0 answered (goal met), 3 the goal
cannot be met, 2 more input is needed, 1 an error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from assistant.events import Event, Final, Progress, Reply, TextEvent, ToolFinished, ToolStarted

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INPUT = 2
EXIT_GOAL_UNMET = 3
_EXIT = {
    "met": EXIT_OK,
    "answered": EXIT_OK,
    "not_met": EXIT_GOAL_UNMET,
    "needs_input": EXIT_INPUT,
    "error": EXIT_ERROR,
}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Send fd 1 to stderr while the tools run (libraries print to stdout); yields a stream to the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w", encoding="utf-8", errors="replace")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real.flush()
        real.close()


class _Printer:
    """Tool calls and progress on stderr, one line each (rewritten in place on a terminal)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._open = False

    def _line(self, text: str, *, transient: bool = False) -> None:
        if self.quiet:
            return
        if self.tty and transient:
            sys.stderr.write("\r\033[K" + text[:160])
            self._open = True
        else:
            if self._open:
                sys.stderr.write("\r\033[K")
                self._open = False
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextEvent):
            self._line(f"! {event.text}")
        elif isinstance(event, ToolStarted):
            args = ", ".join(f"{k}={v!r}" for k, v in event.arguments.items())
            self._line(f"> {event.name}({args[:140]})")
        elif isinstance(event, ToolFinished):
            r = event.record
            status = "ok" if r.ok else "refused"
            self._line(f"  {r.name} {status} in {r.seconds:.1f} s: {r.text[:140]}", transient=r.ok)
        elif isinstance(event, Progress):
            total = f"/{event.planned}" if event.planned else ""
            self._line(
                f"  sweep {event.job_id} {event.state}: {event.phase} {event.done}{total} {event.message[:90]}",
                transient=True,
            )

    def close(self) -> None:
        if self._open and not self.quiet:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False


def _run_turn(assistant: Any, text: str, printer: _Printer, **context: str | None) -> Reply:
    reply: Reply | None = None
    try:
        for event in assistant.stream(text, **context):
            printer(event)
            if isinstance(event, Final):
                reply = event.reply
    finally:
        printer.close()
    if reply is None:
        raise RuntimeError("the assistant gave no answer")
    return reply


def _render(reply: Reply) -> str:
    head = f"{reply.notice}\n\n" if reply.notice else ""
    return head + reply.text


def _make(args: argparse.Namespace) -> Any:
    from assistant.agent import Assistant

    return Assistant(
        save_dir=Path(args.out) if getattr(args, "out", None) else None,
        chart_writer=getattr(args, "chart_writer", None),
    )


def _context(args: argparse.Namespace) -> dict[str, str | None]:
    model = args.model
    if model and (os.sep in model or model.lower().endswith((".onnx", ".pt2"))):
        model = str(Path(model).expanduser().resolve())
    data = str(Path(args.data).expanduser().resolve()) if args.data else None
    return {"model": model, "data": data}


def run_ask(args: argparse.Namespace) -> int:
    """One message, one answer."""
    printer = _Printer(quiet=args.quiet)
    with stdout_to_stderr() as out:
        with _make(args) as assistant:
            if not args.quiet:
                print(
                    f"QuantTaaS assistant ({assistant.brain_name}, tools {assistant.inner.tools.transport})",
                    file=sys.stderr,
                )
            reply = _run_turn(assistant, args.text, printer, **_context(args))
        if args.json:
            out.write(reply.model_dump_json(indent=2) + "\n")
        else:
            out.write(_render(reply) + "\n")
    return _EXIT.get(reply.outcome, EXIT_ERROR)


def run_chat(args: argparse.Namespace) -> int:
    """A session in the terminal: ``exit`` or Ctrl-D ends it; Ctrl-C stops a running sweep."""
    printer = _Printer(quiet=args.quiet)
    context = _context(args)
    with stdout_to_stderr() as out, _make(args) as assistant:
        out.write(
            f'QuantTaaS assistant ({assistant.brain_name}). Name a model and a goal, e.g. "make digits-cnn under '
            '40 KB with less than 1% accuracy loss", then follow up ("I can accept 2%", "why not int4?"). '
            "Type exit to leave.\n"
        )
        while True:
            out.write("you> ")
            out.flush()
            line = sys.stdin.readline()
            if not line or line.strip().lower() in ("exit", "quit", ":q"):
                break
            if not line.strip():
                continue
            try:
                reply = _run_turn(assistant, line.strip(), printer, **context)
            except KeyboardInterrupt:
                out.write("\n(stopped; a running sweep was cancelled)\n")
                continue
            context = {"model": None, "data": None}  # --model/--data name the model of the first request
            out.write("\n" + _render(reply) + "\n\n")
            out.flush()
    return EXIT_OK


def add_commands(sub: Any, *, chart_writer: Any = None) -> None:
    """Register ``ask`` and ``chat`` on ``sub``; ``chart_writer`` reaches the in-process tools' sweeps."""
    for name, func, what in (
        ("ask", run_ask, "ask the assistant once"),
        ("chat", run_chat, "talk to the assistant"),
    ):
        a = sub.add_parser(name, help=f"{what} (offline planner unless QUANTTAAS_LLM names an LLM)")
        if name == "ask":
            a.add_argument("text", help='e.g. "make digits-cnn under 40 KB with less than 1%% accuracy loss"')
            a.add_argument("--json", action="store_true", help="the whole reply (tool calls, checks) as JSON")
        a.add_argument("--model", help="a zoo name, a stored model id, or an .onnx/.pt2 file")
        a.add_argument("--data", help="evaluation .npz (inputs named after the model's, plus labels)")
        a.add_argument("--out", help="download the recommended model and the report into this folder")
        a.add_argument("-q", "--quiet", action="store_true", help="no tool calls or progress on stderr")
        a.set_defaults(func=func, chart_writer=chart_writer)
