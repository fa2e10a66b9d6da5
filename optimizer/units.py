"""Quantities written for people, one way everywhere: the CLI, the tool summaries, the reports, the charts, the
assistant's answers.

A pure formatting module: it imports nothing beyond the standard library, so every floor may use it (the assistant
included, which otherwise reaches the library only through the tools: formatting is presentation, not the library).
"""

from __future__ import annotations

import math

__all__ = ["format_bytes"]

_UNITS = (("B", 1.0), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12))


def _written(v: float, unit: str) -> str:
    """``v`` with three significant digits (whole bytes), trailing zeros dropped."""
    if unit == "B":
        return str(round(v))
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_bytes(n: float | None, *, missing: str = "-") -> str:
    """A byte count in decimal units (1 KB = 1000 B) with three significant digits: ``512`` -> ``"512 B"``,
    ``40000`` -> ``"40 KB"``, ``52100`` -> ``"52.1 KB"``, ``36979`` -> ``"37 KB"``, ``1500000`` -> ``"1.5 MB"``.

    A value that rounds up to 1000 of a unit is written in the next one (``999999`` -> ``"1 MB"``). ``None`` (and a
    value that is not finite) gives ``missing``. Raises nothing.
    """
    if n is None or isinstance(n, bool):
        return missing
    value = float(n)
    if not math.isfinite(value):
        return missing
    for unit, scale in _UNITS[:-1]:
        text = _written(value / scale, unit)
        if abs(float(text)) < 1000:
            return f"{text} {unit}"
    unit, scale = _UNITS[-1]
    return f"{_written(value / scale, unit)} {unit}"
