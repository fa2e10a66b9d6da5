"""Latency compared side by side, and a speed-up that is claimed only beyond the noise.

On a shared machine two latencies measured minutes apart differ by more than most int8 speed-ups: the load of the
moment dominates. So models are compared *interleaved in blocks*: every block runs each model a few times (the
order rotates from block to block, so no model always follows the same one), and both sides of a comparison see
the same background load. From block ``b`` comes one paired ratio

    r_b = median(original's times in block b) / median(candidate's times in block b)

(medians, so a single preempted run does not move a block). The speed-up is the geometric mean of the ``r_b``,
and its confidence interval is a Student-t interval on ``log r_b`` (``B - 1`` degrees of freedom), mapped back
with ``exp``: a block disturbed by a burst of load widens the interval instead of moving the estimate. A candidate
counts as *faster* only when the whole interval is above 1.0x, *slower* only when it is below 1.0x, and as *the
same speed* otherwise (:class:`~optimizer.types.SpeedComparison`).

p50 and p95 of each model are taken over all its timed runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optimizer.errors import EvaluationError
from optimizer.measure.data import Dataset
from optimizer.types import SpeedComparison

__all__ = [
    "CONFIDENCE",
    "SPEEDUP_METHOD",
    "BlockTimes",
    "block_counts",
    "compare_speedup",
    "interleaved_latency",
    "latency_feed",
    "measure_side_by_side",
    "speedups",
    "t_quantile",
]

#: the two-sided confidence of the speed-up interval
CONFIDENCE = 0.95
SPEEDUP_METHOD = (
    "models run interleaved in blocks (order rotated per block); per block the ratio of the original's median to "
    "the candidate's; speed-up = geometric mean of the block ratios, with a 95% Student-t interval on their logs"
)

# two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30 (beyond: the normal 1.96 is within 2%)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (the half-width factor of a 95% interval).

    Raises:
        ValueError: ``df`` < 1.
    """
    if df < 1:
        raise ValueError("a t interval needs at least 2 blocks (1 degree of freedom)")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


@dataclass(frozen=True)
class BlockTimes:
    """One model's timed runs, in milliseconds, grouped by block."""

    blocks: tuple[tuple[float, ...], ...]

    @property
    def all(self) -> list[float]:
        return [t for b in self.blocks for t in b]

    @property
    def p50(self) -> float:
        return float(np.percentile(self.all, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.all, 95))

    @property
    def block_medians(self) -> list[float]:
        return [float(np.median(b)) for b in self.blocks]


def _sig(x: float) -> float:
    """Six significant digits (a fixed number of decimals would round a tiny interval end to 0)."""
    return float(f"{x:.6g}")


def compare_speedup(original: BlockTimes, candidate: BlockTimes) -> SpeedComparison:
    """The candidate's speed-up over the original from paired blocks (see the module docstring).

    Raises:
        ValueError: the two were not measured in the same number of blocks, or in fewer than 2.
    """
    if len(original.blocks) != len(candidate.blocks):
        raise ValueError("a paired comparison needs the same blocks for both models")
    n = len(original.blocks)
    if n < 2:
        raise ValueError("a speed-up interval needs at least 2 blocks")
    logs = np.log(np.array(original.block_medians) / np.array(candidate.block_medians))
    mean = float(logs.mean())
    half = t_quantile(n - 1) * float(logs.std(ddof=1)) / math.sqrt(n)
    low, high = math.exp(mean - half), math.exp(mean + half)
    verdict: Literal["faster", "slower", "same"] = (
        "faster" if low > 1.0 else "slower" if high < 1.0 else "same"
    )
    return SpeedComparison(
        speedup=_sig(math.exp(mean)),
        low=_sig(low),
        high=_sig(high),
        confidence=CONFIDENCE,
        verdict=verdict,
        blocks=n,
        runs_per_block=min(len(b) for b in candidate.blocks),
        original_p50_ms=original.p50,
    )


def latency_feed(session: Any, data: Dataset, batch_size: int) -> dict[str, np.ndarray]:
    """The batch every latency run feeds: the first ``batch_size`` samples (repeated when the data holds fewer),
    each input on its own batch axis (a scalar input whole); a model whose batch axis is fixed gets exactly that
    many."""
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    bs = max(1, batch_size)
    batched = [i for i in inputs if data.batch_axes.get(i.name, 0) is not None]
    if batched:
        axis = data.batch_axes.get(batched[0].name, 0) or 0
        shape = batched[0].shape or []
        dim = shape[axis] if axis < len(shape) else None
        if isinstance(dim, int) and dim > 0:
            bs = dim
    n = data.samples
    if n >= bs:
        return data.feed(0, bs, names)
    reps = -(-bs // max(1, n))
    feed = {}
    for k, v in data.feed(0, n, names).items():
        at = data.batch_axes.get(k, 0)
        if at is None:
            feed[k] = v
        else:
            feed[k] = np.take(np.concatenate([v] * reps, axis=at), np.arange(bs), axis=at)
    return feed


def interleaved_latency(
    sessions: Mapping[str, Any],
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    *,
    blocks: int = 8,
    runs_per_block: int = 5,
    warmup: int = 3,
) -> dict[str, BlockTimes]:
    """Time every session on its feed, interleaved: ``blocks`` blocks, each running every model
    ``runs_per_block`` times in an order that rotates by one per block. Each session first gets ``warmup``
    untimed runs.

    Raises:
        EvaluationError: a model fails to run.
    """
    keys = list(sessions)
    times: dict[str, list[list[float]]] = {k: [] for k in keys}

    def run(k: str) -> float:
        try:
            t0 = time.perf_counter_ns()
            sessions[k].run(None, dict(feeds[k]))
            return (time.perf_counter_ns() - t0) / 1e6
        except Exception as e:
            raise EvaluationError(f"running {k} for the latency comparison failed: {str(e)[:300]}") from e

    for k in keys:
        for _ in range(warmup):
            run(k)
    for b in range(blocks):
        shift = b % len(keys) if keys else 0
        for k in keys[shift:] + keys[:shift]:
            times[k].append([run(k) for _ in range(runs_per_block)])
    return {k: BlockTimes(tuple(tuple(bl) for bl in v)) for k, v in times.items()}


def measure_side_by_side(
    paths: Mapping[str, str | Path],
    data: Dataset,
    *,
    threads: int,
    batch_size: int,
    provider: str | None = None,
    blocks: int = 8,
    runs_per_block: int = 5,
    warmup: int = 3,
) -> dict[str, BlockTimes]:
    """Open every model and time them interleaved (:func:`interleaved_latency`) on the same batch.

    Raises:
        EvaluationError: a model does not load or run.
    """
    from optimizer.measure.evaluate import make_session

    sessions = {k: make_session(p, threads=threads, provider=provider) for k, p in paths.items()}
    feeds = {k: latency_feed(s, data, batch_size) for k, s in sessions.items()}
    return interleaved_latency(sessions, feeds, blocks=blocks, runs_per_block=runs_per_block, warmup=warmup)


def speedups(times: Mapping[str, BlockTimes], original: str) -> dict[str, SpeedComparison]:
    """Every model's speed-up over ``original`` (not the original's own)."""
    return {k: compare_speedup(times[original], t) for k, t in times.items() if k != original}


def block_counts(runs: int, blocks: int = 8) -> tuple[int, int]:
    """``(blocks, runs_per_block)`` for about ``runs`` timed runs per model: at least 3 blocks of 2 runs."""
    blocks = max(3, min(blocks, runs // 2 if runs >= 6 else 3))
    return blocks, max(2, math.ceil(runs / blocks))
