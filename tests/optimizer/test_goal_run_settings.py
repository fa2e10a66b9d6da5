"""How the model will run, read from the goal's words: threads and batch size (issue 13's rules of the reader)."""

from __future__ import annotations

import pytest

from optimizer.goals.parse import parse_goal
from optimizer.types import Goal


@pytest.mark.parametrize(
    ("text", "threads", "batch"),
    [
        ("at least 1.3x faster on 4 threads, batch 32", 4, 32),
        ("batch size of 8, under 5 MB", None, 8),
        ("on a 4-core laptop with batches of 16", 4, 16),
        ("single-threaded, as fast as possible", 1, None),
        ("two threads and batch 8 with at most 1% loss", 2, 8),
        ("32 images per batch", None, 32),
        ("threads: 2, batch-size=4", 2, 4),
        ("on four cores", 4, None),
        ("one image at a time", None, 1),
        ("under 5 MB, <1% accuracy loss", None, None),
    ],
)
def test_parse_goal_reads_threads_and_batch_size(text: str, threads: int | None, batch: int | None) -> None:
    goal = parse_goal(text)
    assert (goal.threads, goal.batch_size) == (threads, batch)
    assert not {"threads", "batch", "cores", "size"} & set(goal.unparsed_words)


def test_parse_goal_keeps_the_other_limits_when_reading_threads_and_batch() -> None:
    goal = parse_goal("at least 1.3x faster on 4 threads, batch 32, at most 1% accuracy loss")
    assert goal.min_speedup == pytest.approx(1.3)
    assert goal.max_accuracy_drop_pct == pytest.approx(1.0)
    assert (goal.threads, goal.batch_size) == (4, 32)


@pytest.mark.parametrize(
    "text", ["on 4 threads or 8 threads", "batch 0", "batch size 1000000", "on 999 cores"]
)
def test_parse_goal_leaves_contradicting_or_impossible_run_settings_unparsed(text: str) -> None:
    goal = parse_goal(text)
    assert goal.threads is None and goal.batch_size is None
    assert goal.unparsed_words, "the words that were not used must be reported"


def test_goal_threads_and_batch_are_bounded() -> None:
    with pytest.raises(ValueError):
        Goal(threads=0)
    with pytest.raises(ValueError):
        Goal(batch_size=5000)
    assert (
        Goal(threads=256, batch_size=4096)
        .describe()
        .endswith("threads: 256, batch: 4096, objective: balanced")
    )


def test_goal_follow_up_changes_threads_and_keeps_batch() -> None:
    first = parse_goal("at least 1.3x faster on 4 threads, batch 32")
    merged = parse_goal("make it 2 threads", prior=first)
    assert (merged.threads, merged.batch_size) == (2, 32)
    assert merged.min_speedup == pytest.approx(1.3)


def test_goal_threads_and_batch_set_no_limit() -> None:
    goal = parse_goal("on 4 threads, batch 8")
    assert not goal.has_constraints and not goal.has_target
