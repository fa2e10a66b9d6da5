"""Task metrics: pure functions from a model's outputs (and the data) to one number.

A metric is registered under a name with its *direction* (higher or lower is better: WER and CER are lower) and
its *scale* (the width of its range: 1 for 0-1 metrics, 100 for percentages); the accuracy drop of a candidate is
computed from both (:func:`drop_points`), always in points of a 0-100 scale, positive = worse.

A data file names the metric it is scored by in a 0-d ``metric`` array (default: ``top1`` with labels,
``fidelity`` without). ``fidelity`` is chosen by the kind of output (:func:`choose_fidelity`): top-1 agreement for
class logits, cosine similarity for embeddings and maps, sequence agreement for CTC/sequence outputs, box
agreement for detector heads, decision agreement for a single probability; never argmax agreement on an
embedding. A user's own metric is named ``package.module:function`` or ``/path/to/file.py:function`` and is
imported where it is scored (a Ray worker too: :func:`get_metric`).

Metric functions get the model outputs concatenated over all samples (the output the data names first), the
labels (or ``None``), the ``meta__*`` arrays of the data file, and - for fidelity metrics - the reference model's
outputs.

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

import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizer.errors import DataError, EvaluationError, QuantTaaSError


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
    #: False for error rates (WER, CER): a candidate's drop is then its increase
    higher_is_better: bool = True
    #: the width of the metric's range: 1.0 for 0-1 metrics, 100.0 for percentages
    scale: float = 1.0
    #: what a model that learned nothing scores; None: no such level is known
    floor: float | None = None


_METRICS: dict[str, MetricSpec] = {}

#: the metric chosen by the kind of output when there are no labels
FIDELITY = "fidelity"


def register_metric(
    name: str,
    *,
    needs_labels: bool,
    needs_reference: bool = False,
    description: str = "",
    higher_is_better: bool = True,
    scale: float = 1.0,
    floor: float | None = None,
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` as the metric ``name`` (a model brings its own task metric this way), with its direction
    and the width of its range (``scale``: 1 for 0-1, 100 for percentages). ``floor`` is the score of a model that
    learned nothing (see :func:`check_baseline`); leave it None when there is no such level."""

    def wrap(fn: MetricFn) -> MetricFn:
        _METRICS[name] = MetricSpec(
            name,
            fn,
            needs_labels,
            needs_reference,
            description or (fn.__doc__ or ""),
            higher_is_better,
            scale,
            floor,
        )
        return fn

    return wrap


def drop_points(spec: MetricSpec, baseline: float, value: float) -> float:
    """How many points of a 0-100 scale ``value`` is worse than ``baseline`` (negative = better), from the
    metric's direction and scale: 0.90 -> 0.85 accuracy is 5 points; 12% -> 15% WER (scale 100) is 3 points."""
    worse = (baseline - value) if spec.higher_is_better else (value - baseline)
    return round(worse * 100.0 / spec.scale, 6)


_USER_METRIC = re.compile(r"^(?P<target>[^:]+(?:\.py)?|[A-Za-z_][\w.]*):(?P<fn>[A-Za-z_]\w*)$")


def _load_user_metric(name: str) -> MetricSpec:
    """Import ``module:function`` or ``file.py:function`` and wrap the function as a metric. The function takes
    a :class:`MetricInput`; attributes on it may declare ``higher_is_better``, ``scale``, ``needs_labels`` and
    ``needs_reference`` (defaults: True, 1.0, False, False)."""
    target, _, fn_name = name.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target).expanduser().resolve()
            if not path.is_file():
                raise DataError(f"metric file not found: {path}", hint="give an existing .py file")
            mod_name = "quanttaas_user_metric_" + re.sub(r"\W", "_", str(path))
            module = sys.modules.get(mod_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise DataError(f"cannot import {path} as a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except QuantTaaSError:
        raise
    except Exception as e:
        raise DataError(
            f"cannot import the metric {name!r}: {e.__class__.__name__}: {e}",
            hint="name an importable module (package.module:function) or a file (/path/metric.py:function)",
        ) from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise DataError(
            f"{target} has no function {fn_name!r}", hint="name a function that takes a MetricInput"
        )
    spec_ = MetricSpec(
        name,
        fn,
        bool(getattr(fn, "needs_labels", False)),
        bool(getattr(fn, "needs_reference", False)),
        (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else f"user metric {name}",
        bool(getattr(fn, "higher_is_better", True)),
        float(getattr(fn, "scale", 1.0)),
    )
    _METRICS[name] = spec_
    return spec_


def get_metric(name: str) -> MetricSpec:
    """The registered metric, or a user's ``module:function`` / ``file.py:function`` imported here.

    Raises:
        DataError: an unknown name, or a user metric that cannot be imported.
    """
    if name in _METRICS:
        return _METRICS[name]
    if ":" in name and _USER_METRIC.match(name):
        return _load_user_metric(name)
    raise DataError(
        f"unknown metric {name!r}",
        hint=f"use one of: {', '.join(sorted(_METRICS))}, or your own as package.module:function or "
        "/path/metric.py:function",
    )


def metric_names() -> list[str]:
    return sorted(_METRICS)


def _single_score(output: np.ndarray) -> bool:
    """One value per sample ([N] or [N, 1, ...]): a binary score (a probability or a logit), not class scores."""
    return output.ndim == 1 or (output.ndim > 1 and math.prod(output.shape[1:]) == 1)


def binary_threshold(score: np.ndarray) -> float:
    """Where a single score splits the two classes: 0.5 when every value is a probability, else 0 (a logit)."""
    return 0.5 if score.size and float(score.min()) >= 0.0 and float(score.max()) <= 1.0 else 0.0


def _class_predictions(output: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The class of each sample: argmax of class scores, or a single score thresholded (at ``threshold``, else
    at :func:`binary_threshold` of the output itself)."""
    if _single_score(output):
        score = np.asarray(output).reshape(-1)
        return (score > (binary_threshold(score) if threshold is None else threshold)).astype(np.int64)
    return np.asarray(output.reshape(output.shape[0], -1).argmax(axis=1))


def output_classes(output: np.ndarray) -> int:
    """How many classes ``top1`` chooses among for this output (one value per sample is a binary score)."""
    return 2 if _single_score(output) else max(1, math.prod(output.shape[1:]))


@register_metric(
    "top1",
    needs_labels=True,
    floor=0.0,
    description="top-1 accuracy of the first output against labels (one score per sample: above 0.5 for a "
    "probability, above 0 for a logit, is class 1)",
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
    ref = np.asarray(m.reference_outputs[0])
    # a single score is split where the original's is: a quantized probability may stray just outside [0, 1]
    threshold = binary_threshold(ref.reshape(-1)) if _single_score(ref) else None
    return float((_class_predictions(m.outputs[0], threshold) == _class_predictions(ref, threshold)).mean())


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
    description="share of text lines whose greedy CTC decoding equals the label, whitespace normalised "
    "(meta__charset: class -> char)",
)
def ctc_exact_match(m: MetricInput) -> float:
    texts, labels = _decoded_and_labels(m)
    return float(np.mean([a == b for a, b in zip(texts, labels, strict=True)]))


def normalize_text(text: str) -> str:
    """Whitespace collapsed and trimmed: a padded line that decodes " Divided thus" reads "Divided thus"."""
    return " ".join(str(text).split())


def _decoded_and_labels(m: MetricInput) -> tuple[list[str], list[str]]:
    if "charset" not in m.meta:
        raise DataError("this metric needs a `meta__charset` array (the character of each class)")
    if m.labels is None:
        raise EvaluationError("this metric needs labels", hint="add the text of each line as `labels`")
    charset = [str(c) for c in m.meta["charset"].tolist()]
    texts = [normalize_text(t) for t in ctc_greedy_decode(m.outputs[0], charset)]
    labels = [normalize_text(t) for t in m.labels.tolist()]
    if len(labels) != len(texts):
        raise DataError(f"{len(labels)} text labels for {len(texts)} samples")
    return texts, labels


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two sequences (characters or words)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _error_rate(pairs: list[tuple[Sequence[str], Sequence[str]]]) -> float:
    errors = sum(edit_distance(hyp, ref) for hyp, ref in pairs)
    total = sum(len(ref) for _, ref in pairs)
    return float(errors / max(total, 1))


@register_metric(
    "ctc_cer",
    needs_labels=True,
    higher_is_better=False,
    description="character error rate of greedy CTC decoding against the label text (lower is better; "
    "whitespace normalised)",
)
def ctc_cer(m: MetricInput) -> float:
    texts, labels = _decoded_and_labels(m)
    return _error_rate([(list(t), list(r)) for t, r in zip(texts, labels, strict=True)])


@register_metric(
    "ctc_wer",
    needs_labels=True,
    higher_is_better=False,
    description="word error rate of greedy CTC decoding against the label text (lower is better)",
)
def ctc_wer(m: MetricInput) -> float:
    texts, labels = _decoded_and_labels(m)
    return _error_rate([(t.split(), r.split()) for t, r in zip(texts, labels, strict=True)])


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


# --------------------------------------------------------------------------- fidelity without labels


def _reference(m: MetricInput, what: str) -> np.ndarray:
    if m.reference_outputs is None:
        raise EvaluationError(f"{what} needs the original model's outputs", hint="pass a baseline model")
    return np.asarray(m.reference_outputs[0])


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)


@register_metric(
    "cosine",
    needs_labels=False,
    needs_reference=True,
    description="mean cosine similarity of each sample's output to the original model's (embeddings, maps)",
)
def cosine_fidelity(m: MetricInput) -> float:
    ref = _flat(_reference(m, "cosine"))
    out = _flat(m.outputs[0])
    finite = np.isfinite(ref) & np.isfinite(out)
    ref, out = np.where(finite, ref, 0.0), np.where(finite, out, 0.0)
    num = (ref * out).sum(axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    both_zero = (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(out, axis=1) == 0)
    cos = np.where(both_zero, 1.0, num / np.clip(den, 1e-30, None))
    return float(np.clip(cos, -1.0, 1.0).mean())


@register_metric(
    "sqnr_db",
    needs_labels=False,
    needs_reference=True,
    scale=100.0,
    description="signal-to-quantization-noise ratio of the output against the original's, in dB (higher is "
    "better; a drop of 1 point = 1 dB)",
)
def sqnr_db(m: MetricInput) -> float:
    ref = _flat(_reference(m, "sqnr_db"))
    noise = float(((_flat(m.outputs[0]) - ref) ** 2).sum())
    signal = float((ref**2).sum())
    return float(10.0 * np.log10(max(signal, 1e-30) / max(noise, 1e-30)))


def ctc_collapse(ids: np.ndarray, blank: int = 0) -> tuple[int, ...]:
    """A greedy CTC path with repeats merged and blanks dropped."""
    keep = np.ones(ids.shape[0], dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    keep &= ids != blank
    return tuple(int(i) for i in ids[keep])


@register_metric(
    "sequence_agreement",
    needs_labels=False,
    needs_reference=True,
    description="share of samples whose greedy CTC sequence (argmax per step, repeats merged, blank 0 dropped) "
    "equals the original model's",
)
def sequence_agreement(m: MetricInput) -> float:
    ref = _reference(m, "sequence_agreement")
    a, b = np.asarray(m.outputs[0]).argmax(axis=-1), ref.argmax(axis=-1)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return float(np.mean([ctc_collapse(x) == ctc_collapse(y) for x, y in zip(a, b, strict=True)]))


@register_metric(
    "decision_agreement",
    needs_labels=False,
    needs_reference=True,
    description="share of single-score outputs (a probability, or a logit) on the same side of the threshold "
    "(0.5 for probabilities, 0 otherwise) as the original model's",
)
def decision_agreement(m: MetricInput) -> float:
    ref = _flat(_reference(m, "decision_agreement"))
    out = _flat(m.outputs[0])
    threshold = binary_threshold(ref)
    return float(((out > threshold) == (ref > threshold)).mean())


def _yolo_boxes(head: np.ndarray, conf: float = 0.25, iou: float = 0.45) -> list[tuple[int, np.ndarray]]:
    """Boxes of one sample of a YOLO-style head [4 + classes, anchors] (cx, cy, w, h, class scores): the
    confident ones after class-wise non-maximum suppression, as (class, xyxy)."""
    if head.shape[0] > head.shape[1]:
        head = head.T
    xywh, scores = head[:4].T, head[4:].T
    cls = scores.argmax(axis=1)
    best = scores.max(axis=1)
    keep = best > conf
    xywh, cls, best = xywh[keep], cls[keep], best[keep]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    out: list[tuple[int, np.ndarray]] = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0][np.argsort(-best[cls == c])]
        while idx.size:
            i, idx = idx[0], idx[1:]
            out.append((int(c), xyxy[i]))
            if idx.size:
                idx = idx[_iou(xyxy[i], xyxy[idx]) < iou]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:2], b[:, :2])
    rb = np.minimum(a[2:], b[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    return np.asarray(inter / np.clip(area(a) + area(b) - inter, 1e-9, None))


@register_metric(
    "box_agreement",
    needs_labels=False,
    needs_reference=True,
    description="F1 of the detector's boxes (score > 0.25, NMS) against the original model's boxes (same class, "
    "IoU >= 0.5), averaged over samples; for YOLO-style heads [N, 4 + classes, anchors]",
)
def box_agreement(m: MetricInput) -> float:
    ref = _reference(m, "box_agreement")
    out = np.asarray(m.outputs[0])
    scores = []
    for a, b in zip(out, ref, strict=True):
        got, want = _yolo_boxes(np.asarray(a, np.float64)), _yolo_boxes(np.asarray(b, np.float64))
        if not got and not want:
            scores.append(1.0)
            continue
        used: set[int] = set()
        hits = 0
        for c, box in got:
            cands = [j for j, (c2, _) in enumerate(want) if c2 == c and j not in used]
            if not cands:
                continue
            ious = _iou(box, np.stack([want[j][1] for j in cands]))
            k = int(ious.argmax())
            if ious[k] >= 0.5:
                used.add(cands[k])
                hits += 1
        scores.append(2.0 * hits / (len(got) + len(want)))
    return float(np.mean(scores))


_EMBEDDING_NAMES = ("emb", "hidden", "pool", "feat", "vec", "sentence", "encod", "last_hidden_state")


def choose_fidelity(reference: np.ndarray, output_name: str = "") -> tuple[str, str]:
    """The fidelity metric for an output with no labels, and why, from the output's shape, values and name.

    Class logits or probabilities ``[N, C]`` -> ``agreement`` (top-1); one score per sample -> decision
    agreement; a sequence of class scores ``[N, T, C]`` whose rows are distributions -> ``sequence_agreement``;
    a YOLO-style head ``[N, 4 + C, anchors]`` (no negative value) -> ``box_agreement``; embeddings (named like one, or unit-norm
    rows, or hidden states) and maps ``[N, C, H, W]`` -> ``cosine``. Never argmax agreement on an embedding.
    """
    shape = tuple(reference.shape)
    desc = f"output {output_name!r} {list(shape)}" if output_name else f"the output {list(shape)}"
    name = output_name.lower()
    ref = np.asarray(reference)
    if ref.dtype.kind not in "fc":
        return "agreement", f"{desc} holds integers (class ids): top-1 agreement with the original"
    per_sample = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    embedding_named = any(k in name for k in _EMBEDDING_NAMES)
    if per_sample == 1:
        return "decision_agreement", f"{desc} is one score per sample: agreement of the decisions"
    if len(shape) == 2:
        rows = ref.astype(np.float64)
        norms = np.linalg.norm(rows, axis=1)
        unit = bool(np.all(np.abs(norms - 1.0) < 1e-2))
        if embedding_named or unit:
            why = "is named like an embedding" if embedding_named else "has unit-norm rows"
            return "cosine", f"{desc} {why}: cosine similarity to the original's (argmax means nothing there)"
        return "agreement", f"{desc} looks like class scores: top-1 agreement with the original"
    if len(shape) == 3:
        a, b = shape[1], shape[2]
        dist = bool(np.all(ref >= -1e-6) and np.allclose(ref.sum(axis=-1), 1.0, atol=1e-2) and b > 2)
        if not embedding_named and dist:
            return "sequence_agreement", (
                f"{desc} is a sequence of class distributions (CTC-like): agreement of the decoded sequences"
            )
        small, large = min(a, b), max(a, b)
        # a decoded detector head holds pixel boxes and sigmoid scores, never a negative value; CTC logits
        # [N, T, classes] have the same proportions but are signed
        if (
            not embedding_named
            and 5 <= small <= 128
            and large >= 500
            and large >= 8 * small
            and float(ref.min()) >= 0.0
        ):
            return (
                "box_agreement",
                f"{desc} is a detector head (4 box values + class scores per anchor): box F1",
            )
        return "cosine", f"{desc} holds hidden states or features: cosine similarity to the original's"
    return "cosine", f"{desc} is a map: cosine similarity to the original's"


register_metric(
    FIDELITY,
    needs_labels=False,
    needs_reference=True,
    description="chosen by the kind of output when there are no labels (see choose_fidelity)",
)(lambda m: get_metric(choose_fidelity(_reference(m, FIDELITY))[0]).fn(m))
