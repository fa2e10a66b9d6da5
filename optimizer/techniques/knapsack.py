"""Which layers get more precision under a size budget: a 0/1 knapsack over layers.

Each layer has a *cost* (the bytes its higher-precision choice adds to the full int8 file: 3 per parameter kept
in float32, 1 per parameter with 16-bit weights, about 0 for 16-bit activations alone) and a *benefit* (the
quantization noise it adds, from the sensitivity profile: ``10^(-SQNR/10)`` of its own added noise). The
selection maximises the noise removed under the budget (the goal's size limit minus the full int8 size).

Neither top-k by sensitivity nor greedy by benefit per byte is optimal: a large layer that is slightly noisier
than two small ones can crowd both out, and a high-ratio layer can leave the rest of the budget unusable. The
dynamic programme here is exact on costs rounded UP to a budget unit (``budget / resolution`` bytes), so the
chosen set never exceeds the budget, and it is exact outright when costs are whole multiples of the unit.

Pure (numpy only): no model is loaded here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optimizer.types import SensitivityReport

#: budget units of the dynamic programme (its table is layers x (resolution + 1) booleans)
RESOLUTION = 4096


@dataclass(frozen=True)
class LayerItem:
    """One layer a knapsack may choose."""

    name: str
    cost_bytes: float
    benefit: float


@dataclass(frozen=True)
class Selection:
    """The layers chosen under a budget, and what they cost and remove."""

    names: tuple[str, ...]
    budget_bytes: float
    cost_bytes: float
    benefit: float
    total_benefit: float

    @property
    def share(self) -> float:
        """The share of all layers' benefit (noise) the chosen layers carry."""
        return self.benefit / self.total_benefit if self.total_benefit > 0 else 0.0

    def describe(self, what: str) -> str:
        """One sentence for the report: the budget, what was chosen and what it removes."""
        return (
            f"{what} for {len(self.names)} layer(s) chosen by a 0/1 knapsack under the goal's size budget of "
            f"{self.budget_bytes / 1e3:.1f} KB above full int8 (the size limit minus the full int8 size): they add "
            f"{self.cost_bytes / 1e3:.1f} KB and carry {100 * self.share:.0f}% of the profiled quantization "
            f"noise ({', '.join(self.names[:6])}{', ...' if len(self.names) > 6 else ''})"
        )


def knapsack(items: Sequence[LayerItem], budget_bytes: float, *, resolution: int = RESOLUTION) -> Selection:
    """The items of greatest total benefit whose total cost is at most ``budget_bytes`` (0/1 knapsack).

    Costs are rounded up to whole budget units (``budget_bytes / resolution``, at least one byte), so the choice
    never exceeds the budget; free items with a benefit are always taken. Ties keep the earlier item.

    Raises:
        ValueError: a negative budget, cost or benefit.
    """
    if budget_bytes < 0 or any(it.cost_bytes < 0 or it.benefit < 0 for it in items):
        raise ValueError("the budget, costs and benefits of a knapsack must be non-negative")
    total = float(sum(it.benefit for it in items))
    unit = max(1.0, budget_bytes / max(resolution, 1))
    capacity = math.floor(budget_bytes / unit + 1e-9)
    costs = [math.ceil(it.cost_bytes / unit - 1e-9) for it in items]
    # best[c]: the greatest benefit within c units; took[i, c]: item i was taken to reach best[c] after item i
    best = np.zeros(capacity + 1)
    took = np.zeros((len(items), capacity + 1), dtype=bool)
    for i, (it, w) in enumerate(zip(items, costs, strict=True)):
        if it.benefit <= 0 or w > capacity:
            continue
        with_it = np.full(capacity + 1, -np.inf)
        with_it[w:] = best[: capacity + 1 - w] + it.benefit
        better = with_it > best
        took[i] = better
        best = np.where(better, with_it, best)
    chosen: list[int] = []
    c = capacity
    for i in range(len(items) - 1, -1, -1):
        if took[i, c]:
            chosen.append(i)
            c -= costs[i]
    chosen.reverse()
    picked = [items[i] for i in chosen]
    return Selection(
        names=tuple(it.name for it in picked),
        budget_bytes=float(budget_bytes),
        cost_bytes=float(sum(it.cost_bytes for it in picked)),
        benefit=float(sum(it.benefit for it in picked)),
        total_benefit=total,
    )


#: the most noise one layer counts for: as large as its signal (SQNR 0 dB)
MAX_LAYER_NOISE = 1.0


def layer_noise(sensitivity: SensitivityReport) -> dict[str, float]:
    """Each profiled layer's own added quantization noise (``10^(-SQNR/10)``), most sensitive first, at most
    :data:`MAX_LAYER_NOISE`: a layer whose float output is about zero reads as an absurd SQNR (-322 dB on the
    PP-OCRv4 detector), and uncapped its 10^32 would drown every other layer's noise in a sum."""
    return {
        la.name: min(10.0 ** (-la.sqnr_db / 10.0), MAX_LAYER_NOISE)
        for la in sensitivity.layers
        if la.sqnr_db is not None
    }


def select_layers(
    sensitivity: SensitivityReport,
    params: dict[str, int],
    *,
    bytes_per_param: float,
    budget_bytes: float,
) -> Selection:
    """The layers whose higher-precision choice (``bytes_per_param`` more than int8 per parameter) removes the
    most profiled noise within ``budget_bytes``."""
    items = [
        LayerItem(name, bytes_per_param * params.get(name, 0), noise)
        for name, noise in layer_noise(sensitivity).items()
    ]
    return knapsack(items, max(budget_bytes, 0.0))


__all__ = ["RESOLUTION", "LayerItem", "Selection", "knapsack", "layer_noise", "select_layers"]
