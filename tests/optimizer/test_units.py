"""The one byte formatter every surface uses (CLI, tool summaries, reports, charts, the assistant's answers)."""

from __future__ import annotations

import pytest

from optimizer.units import format_bytes


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (999.6, "1 KB"),  # rounds up to 1000 B: written in the next unit
        (36_979, "37 KB"),
        (40_000, "40 KB"),
        (52_100, "52.1 KB"),
        (105_486, "105 KB"),
        (999_999, "1 MB"),
        (1_500_000, "1.5 MB"),
        (22_812_345, "22.8 MB"),
        (123_456_789, "123 MB"),
        (4_200_000_000, "4.2 GB"),
        (-52_100, "-52.1 KB"),
    ],
)
def test_format_bytes_writes_decimal_units_with_three_significant_digits(n: float, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_says_missing_for_no_value_and_for_values_that_are_not_numbers() -> None:
    assert format_bytes(None) == "-"
    assert format_bytes(None, missing="unknown size") == "unknown size"
    assert format_bytes(float("nan")) == "-" and format_bytes(float("inf"), missing="?") == "?"


def test_format_bytes_is_the_formatter_the_reports_use() -> None:
    from optimizer.search import pareto

    assert pareto.format_bytes is format_bytes
