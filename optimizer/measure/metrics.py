"""Task metrics: pure functions from a model's outputs (and the data) to one higher-is-better number.

A metric is registered under a name; a data file names the metric it is scored by in a 0-d ``metric`` array
(default: ``top1`` with labels, ``agreement`` without). Metric functions get the model outputs concatenated over
all samples, the labels (or ``None``) and the ``meta__*`` arrays of the data file, and - for ``agreement`` - the
reference model's outputs.

A metric may declare its ``floor``: what a model that has learned nothing scores (0 for accuracy-like metrics and
correlations). The original model's score is checked against it before anything is compared with it
(:func:`check_baseline`): a drop measured from a baseline at the floor, or at chance level, is no measurement.

Chance level for class labels (``top1``): a model that guesses uniformly among ``K`` classes scores ``1/K`` on
average, with a spread of ``sqrt(p(1-p)/n)`` over ``n`` samples. The baseline is refused when its accuracy is at or
below ``1/K + 3 * sqrt(p(1-p)/n)``: a guesser exceeds that about once in 700 runs, while a model that really learned
something, even a weak one (5% top-1 on 1000 classes, 15% on 10 classes with 1000 samples), stays above it. More
samples lower the bar, so a real but hard task is refused only when the data is too small to tell it from guessing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from optimizer.errors import DataError, EvaluationError


@dataclass(frozen=True)
class MetricInput:
    outputs: list[np.ndarray]  # every model output, samples on the first axis
    labels: np.ndarray | None
    meta: Mapping[str, np.ndarray]  # the data file's meta__* arrays, prefix removed
    inputs: Mapping[str, np.ndarray]  # the model inputs (e.g. an attention mask for pooling)
    reference_outputs: list[np.ndarray] | None = None  # the baseline model's outputs, when comparing


MetricFn = Callable[[MetricInput], float]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: MetricFn
    needs_labels: bool
    needs_reference: bool
    description: str
    floor: float | None = None  # what a model that learned nothing scores; None: no such level is known


_METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    *,
    needs_labels: bool,
    needs_reference: bool = False,
    description: str = "",
    floor: float | None = None,
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` as the metric ``name`` (a model brings its own task metric this way). ``floor`` is the score
    of a model that learned nothing (see :func:`check_baseline`); leave it None when there is no such level."""

    def wrap(fn: MetricFn) -> MetricFn:
        _METRICS[name] = MetricSpec(
            name, fn, needs_labels, needs_reference, description or (fn.__doc__ or ""), floor
        )
        return fn

    return wrap


def get_metric(name: str) -> MetricSpec:
    """Return the registered metric; raises :class:`DataError` for an unknown name."""
    try:
        return _METRICS[name]
    except KeyError:
        raise DataError(
            f"unknown metric {name!r}",
            hint=f"use one of: {', '.join(sorted(_METRICS))}",
        ) from None


def metric_names() -> list[str]:
    return sorted(_METRICS)


def _class_predictions(output: np.ndarray) -> np.ndarray:
    if output.ndim == 1:
        return (output > 0).astype(np.int64)
    return np.asarray(output.reshape(output.shape[0], -1).argmax(axis=1))


def output_classes(output: np.ndarray) -> int:
    """How many classes ``top1`` chooses among for this output (a 1-d output is a binary score)."""
    return 2 if output.ndim == 1 else max(1, math.prod(output.shape[1:]))


@register_metric(
    "top1", needs_labels=True, floor=0.0, description="top-1 accuracy of the first output against labels"
)
def top1_accuracy(m: MetricInput) -> float:
    from optimizer.measure.data import check_labels

    if m.labels is None:
        raise EvaluationError("top1 needs labels", hint="add a `labels` array to the data file")
    pred = _class_predictions(m.outputs[0])
    labels = np.asarray(m.labels)
    # a label the output cannot name is never right: refuse it rather than count it as a miss
    check_labels(labels, "top1", pred.shape[0], output_classes(m.outputs[0]))
    return float((pred == labels.reshape(-1).astype(np.int64)).mean())


@register_metric(
    "agreement",
    needs_labels=False,
    needs_reference=True,
    description="share of samples whose top-1 class matches the original model's (for data without labels)",
)
def top1_agreement(m: MetricInput) -> float:
    if m.reference_outputs is None:
        raise EvaluationError("agreement needs the original model's outputs", hint="pass a baseline model")
    return float((_class_predictions(m.outputs[0]) == _class_predictions(m.reference_outputs[0])).mean())


def ctc_greedy_decode(logits: np.ndarray, charset: list[str], blank: int = 0) -> list[str]:
    """Greedy CTC: best class per time step, merge repeats, drop the blank. ``charset[i]`` is class ``i``."""
    best = logits.argmax(axis=-1)  # [N, T]
    texts = []
    for row in best:
        keep = np.ones(row.shape[0], dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != blank
        texts.append("".join(charset[int(i)] for i in row[keep] if int(i) < len(charset)))
    return texts


@register_metric(
    "ctc_exact_match",
    needs_labels=True,
    floor=0.0,
    description="share of text lines whose greedy CTC decoding equals the label (meta__charset: class -> char)",
)
def ctc_exact_match(m: MetricInput) -> float:
    if "charset" not in m.meta:
        raise DataError("ctc_exact_match needs a `meta__charset` array (the character of each class)")
    if m.labels is None:
        raise EvaluationError("ctc_exact_match needs labels", hint="add the text of each line as `labels`")
    charset = [str(c) for c in m.meta["charset"].tolist()]
    texts = ctc_greedy_decode(m.outputs[0], charset)
    labels = [str(t) for t in m.labels.tolist()]
    return float(np.mean([a == b for a, b in zip(texts, labels, strict=True)]))


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # average ranks of ties, as Spearman's rho defines them
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _rank(np.asarray(a, dtype=np.float64)), _rank(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom else 0.0


def mean_pooled_embeddings(hidden: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Mean over tokens (masked) then L2 normalisation: sentence-transformers' pooling, outside the graph."""
    if hidden.ndim == 2:
        emb = hidden.astype(np.float64)
    else:
        w = np.ones(hidden.shape[:2]) if mask is None else mask.astype(np.float64)
        emb = (hidden * w[..., None]).sum(axis=1) / np.clip(w.sum(axis=1, keepdims=True), 1e-9, None)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.asarray(emb / np.clip(norm, 1e-12, None))


@register_metric(
    "spearman_pairs",
    needs_labels=True,
    floor=0.0,
    description=(
        "Spearman correlation between the cosine similarity of embedding pairs (meta__pair_index, [P,2]) and "
        "the human scores in labels [P]; averaged over meta__pair_group when present"
    ),
)
def spearman_pairs(m: MetricInput) -> float:
    if "pair_index" not in m.meta or m.labels is None:
        raise DataError(
            "spearman_pairs needs `meta__pair_index` ([P,2] sample indices) and `labels` ([P] scores)"
        )
    emb = mean_pooled_embeddings(m.outputs[0], m.inputs.get("attention_mask"))
    pairs = np.asarray(m.meta["pair_index"], dtype=np.int64)
    cos = (emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(axis=1)
    scores = np.asarray(m.labels, dtype=np.float64)
    groups = m.meta.get("pair_group")
    if groups is None:
        return spearman(cos, scores)
    return float(np.mean([spearman(cos[groups == g], scores[groups == g]) for g in np.unique(groups)]))


#: how many standard deviations above uniform guessing a top-1 baseline must be (see the module docstring)
CHANCE_Z = 3.0


def chance_ceiling(classes: int, samples: int) -> float:
    """The highest top-1 accuracy still read as guessing among ``classes`` over ``samples`` samples."""
    p = 1.0 / max(classes, 1)
    return p + CHANCE_Z * math.sqrt(p * (1.0 - p) / max(samples, 1))


def check_baseline(metric: str, value: float, m: MetricInput) -> None:
    """Refuse an original model whose score cannot anchor a comparison: not a number, at the metric's floor, or (for
    class labels) at chance level.

    Raises:
        DataError: saying which, with the numbers.
    """
    spec = get_metric(metric)
    hint = (
        "check that the labels belong to these inputs and are in the model's output order (class i = output i), "
        "that the inputs are preprocessed as in training, and that there are enough samples; without labels the "
        "sweep measures agreement with the original instead"
    )
    if not math.isfinite(value):
        raise DataError(
            f"the original model's {metric} on this data is {value}: it cannot be measured", hint=hint
        )
    if spec.floor is not None and value <= spec.floor:
        raise DataError(
            f"the original model scores {metric} {value:.4f} on this data, the level of a model that learned "
            "nothing: no accuracy drop can be measured against it",
            hint=hint,
            details={"metric": metric, "baseline": value},
        )
    if metric == "top1" and m.outputs:
        classes = output_classes(m.outputs[0])
        samples = int(m.outputs[0].shape[0])
        ceiling = chance_ceiling(classes, samples)
        if classes > 1 and value <= ceiling:
            raise DataError(
                f"the original model scores top1 {value:.4f} on this data, at chance level for {classes} classes "
                f"over {samples} samples (guessing reaches up to {ceiling:.4f}): no accuracy drop can be "
                "measured against it",
                hint=hint,
                details={"metric": metric, "baseline": value, "chance_ceiling": round(ceiling, 6)},
            )
