"""Evaluation and calibration data: a ``.npz`` whose arrays are named after the model's inputs.

Layout (first axis = samples everywhere):

- one array per model input, named exactly as the input;
- ``labels`` (optional): class ids, text, or scores, depending on the metric;
- ``metric`` (optional, 0-d string): the registered metric that scores this data (default ``top1`` with labels,
  ``fidelity`` without: chosen by the kind of output, see :mod:`optimizer.measure.metrics`), or a user's own
  ``package.module:function`` / ``/path/file.py:function``;
- ``meta__NAME`` (optional): extra arrays a metric needs (a CTC charset, sentence-pair indices);
- ``output`` (optional, 0-d string or int): the model output the metric reads (default: the first).

Inputs that are not batched the usual way: an input the model declares with rank 0 (a sample rate, an int64
scalar) is given as a 0-d array and fed whole to every batch; an input whose batch axis is not the first (a
recurrent state ``[2, B, 128]``: the one symbolic axis) is stored samples-first (``[N, 2, 128]``) and moved into
place when fed (:meth:`Dataset.feed`).

What is refused (a :class:`~optimizer.errors.DataError` that names the array and the problem), because a number
measured on it would mean nothing:

- an archive member that is not a ``.npy`` array, a ``.npy`` header whose shape declares more (or fewer) bytes
  than the member holds (a 4 TiB shape in a 1 KB file), object (pickled) arrays;
- NaN or infinite values in a floating-point input or in float labels;
- ``top1`` labels that are not whole non-negative numbers, or (given the model's outputs) that name a class the
  model does not have: a label of 2**63-1 can never be predicted, so the original scores 0% and every candidate
  "drops 0 points".
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from optimizer.errors import DataError
from optimizer.measure.metrics import FIDELITY, get_metric
from optimizer.types import DataSummary, TensorInfo

META_PREFIX = "meta__"
RESERVED = ("labels", "metric", "output")

# ONNX element type names (as inspect reports them) -> numpy dtypes
ONNX_TO_NUMPY: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "float64": np.dtype(np.float64),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class Dataset:
    """Validated arrays, ready to feed a session."""

    path: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    metric: str
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    #: input name -> the axis of the model input that holds the batch (None: fed whole, never sliced); inputs
    #: not named here are batched on axis 0
    batch_axes: dict[str, int | None] = field(default_factory=dict)
    #: the model output the metric reads (a name or an index); None: the first
    output: str | int | None = None

    def batched(self, name: str) -> bool:
        return self.batch_axes.get(name, 0) is not None

    @property
    def samples(self) -> int:
        batched = [v for k, v in self.inputs.items() if self.batched(k)]
        return int(batched[0].shape[0]) if batched else 1

    def feed(self, start: int, stop: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """The model feed for samples ``start:stop``: each input sliced on its sample axis and moved to the
        model's batch axis; an unbatched input (a scalar) whole."""
        out: dict[str, np.ndarray] = {}
        for k in names if names is not None else list(self.inputs):
            v = self.inputs[k]
            axis = self.batch_axes.get(k, 0)
            if axis is None:
                out[k] = v
            elif axis == 0:
                out[k] = v[start:stop]
            else:
                out[k] = np.ascontiguousarray(np.moveaxis(v[start:stop], 0, axis))
        return out

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples (calibration uses a bounded slice). Meta and labels are kept whole."""
        inputs = {k: (v[:n] if self.batched(k) else v) for k, v in self.inputs.items()}
        return replace(self, inputs=inputs)

    def take(self, n: int) -> Dataset:
        """The first ``n`` samples with their labels (a shorter evaluation). Labels are cut only when there is
        one per sample (pair scores and other per-metric labels stay whole)."""
        labels = self.labels
        if labels is not None and labels.shape[:1] == (self.samples,):
            labels = labels[:n]
        return replace(self.head(n), labels=labels)

    def summary(self) -> DataSummary:
        return DataSummary(
            path=self.path,
            samples=self.samples,
            inputs=[
                TensorInfo(name=k, dtype=str(v.dtype), shape=list(v.shape)) for k, v in self.inputs.items()
            ],
            has_labels=self.labels is not None,
            metric=self.metric,
        )


_WRITE_HINT = "write it with numpy.savez(path, input_name=array, labels=array); object arrays are refused"


def _check_members(path: Path) -> None:
    """Read every member's .npy header (never its data) and check it declares what the member holds.

    numpy trusts the header: a member that is not a .npy comes back as raw bytes, and a header that declares a
    4 TiB shape makes it try to allocate 4 TiB. Both are refused here, before anything is loaded.
    """
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename
                if info.is_dir():
                    continue
                if not name.endswith(".npy"):
                    raise DataError(
                        f"{path.name}: archive member {name[:100]!r} is not a .npy array", hint=_WRITE_HINT
                    )
                with z.open(info) as f:
                    try:
                        version = np.lib.format.read_magic(f)
                        if version == (1, 0):
                            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                        elif version == (2, 0):
                            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                        else:
                            raise ValueError(f"unsupported .npy format version {version}")
                    except (ValueError, SyntaxError, EOFError) as e:
                        raise DataError(
                            f"{path.name}: archive member {name[:100]!r} is not a valid .npy array ({e})",
                            hint=_WRITE_HINT,
                        ) from None
                    header = f.tell()
                if dtype.hasobject:
                    raise DataError(
                        f"{path.name}: array {name[:-4][:100]!r} holds Python objects (pickled data)",
                        hint=_WRITE_HINT,
                    )
                declared = math.prod(int(d) for d in shape) * dtype.itemsize
                held = info.file_size - header
                if declared != held:
                    raise DataError(
                        f"{path.name}: array {name[:-4][:100]!r} declares shape {list(shape)[:8]} of {dtype} "
                        f"({declared:,} bytes) but holds {held:,} bytes",
                        hint="the file is damaged or was not written by numpy; " + _WRITE_HINT,
                    )
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path.name} is a damaged .npz archive ({e.__class__.__name__}: {e})") from e


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a .npz archive, each checked before it is read (see the module docstring).

    Raises:
        DataError: missing, not a zip archive, a member that is not a .npy array, a header that does not match
            its data, object arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}", hint="give the path of an existing .npz file")
    if not zipfile.is_zipfile(path):  # np.load would return a bare ndarray for a .npy file, not an archive
        raise DataError(
            f"{path.name} is not a .npz archive",
            hint="write it with numpy.savez(path, input_name=array, labels=array), not numpy.save",
        )
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(
            f"{path.name} is not a readable .npz file ({e.__class__.__name__}: {e})", hint=_WRITE_HINT
        ) from e


def num_classes(outputs: list[TensorInfo]) -> int | None:
    """How many classes ``top1`` can predict from the first output: its non-sample axes flattened (a 1-d output
    is a binary score, two classes); None when an axis is not fixed."""
    if not outputs:
        return None
    shape = outputs[0].shape
    if len(shape) <= 1:
        return 2
    dims = [d for d in shape[1:] if isinstance(d, int) and d > 0]
    return math.prod(dims) if len(dims) == len(shape) - 1 else None


def check_finite(name: str, arr: np.ndarray, what: str = "input") -> None:
    """Raises DataError when a floating-point array holds NaN or infinite values."""
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad)[0][0]) if arr.ndim else 0
        raise DataError(
            f"{what} {name!r} holds {int(bad.sum()):,} NaN or infinite value(s) (first in sample {first})",
            hint="drop or repair those samples: NaN/Inf cannot be calibrated, quantized or scored",
        )


def check_labels(labels: np.ndarray, metric: str, samples: int, classes: int | None = None) -> None:
    """Labels that a metric can score: for ``top1``, one whole class index >= 0 per sample (below ``classes``
    when the model's class count is known); float labels of any metric must be finite.

    Raises:
        DataError: naming the first offending label.
    """
    check_finite("labels", labels, "array")
    if metric != "top1":
        return
    flat = labels.reshape(-1) if labels.ndim else labels.reshape(1)
    if flat.shape[0] != samples:
        raise DataError(
            f"{flat.shape[0]} labels for {samples} samples", hint="give one class index per sample"
        )
    if flat.dtype.kind not in "iub" and not (flat.dtype.kind == "f" and np.all(flat == np.round(flat))):
        raise DataError(
            f"top1 labels must be whole class indices; these are {flat.dtype}",
            hint="store the class index of each sample (0, 1, 2, ...) as integers",
        )
    if flat.size == 0:
        return
    low, high = flat.min(), flat.max()
    if low < 0:
        i = int(np.argmax(flat < 0))
        raise DataError(
            f"label {flat[i]} (sample {i}) is negative: top1 labels are class indices 0, 1, 2, ...",
            hint="store the class index of each sample in the model's output order",
        )
    if classes is not None and high >= classes:
        i = int(np.argmax(flat >= classes))
        raise DataError(
            f"label {flat[i]} (sample {i}) names a class the model does not have: its output has {classes} "
            f"classes (0..{classes - 1})",
            hint="labels must be indices into the model's output (the first output's class axis)",
            details={
                "num_classes": classes,
                "max_label": int(high) if flat.dtype.kind in "iub" else float(high),
            },
        )


def load_data(
    path: str | Path,
    model_inputs: list[TensorInfo],
    *,
    metric: str | None = None,
    model_outputs: list[TensorInfo] | None = None,
) -> Dataset:
    """Load ``path`` and check it against ``model_inputs`` (and, when given, the labels against the classes of
    ``model_outputs``).

    Raises:
        DataError: a malformed archive, missing or extra arrays, mismatched shapes, dtypes or sample counts, NaN or
            infinite values, labels the metric cannot score or that name a class the model lacks, an unknown
            metric, or a metric that needs labels when there are none.
    """
    p = Path(path)
    arrays = read_npz(p)
    expected = {t.name: t for t in model_inputs}
    missing = [n for n in expected if n not in arrays]
    if missing:
        raise DataError(
            f"{p.name} has no array for model input(s) {missing}; it has {sorted(arrays)}",
            hint=f"name the arrays after the model inputs: {sorted(expected)}",
        )
    unknown = [k for k in arrays if k not in expected and k not in RESERVED and not k.startswith(META_PREFIX)]
    if unknown:
        raise DataError(
            f"{p.name} has arrays that are not model inputs: {unknown}",
            hint=_hint_for_unknown(arrays, unknown, expected),
        )
    inputs: dict[str, np.ndarray] = {}
    axes: dict[str, int | None] = {}
    n_samples: int | None = None
    for name, info in expected.items():
        arr = arrays[name]
        axis = batch_axis(info.shape, arr.ndim, arr.shape)
        axes[name] = axis
        want = ONNX_TO_NUMPY.get(info.dtype)
        if want is not None and arr.dtype != want:
            if np.can_cast(arr.dtype, want, casting="same_kind") and arr.dtype.kind == want.kind:
                arr = arr.astype(want)
            else:
                raise DataError(
                    f"input {name!r}: dtype {arr.dtype} does not match the model's {info.dtype}",
                    hint=f"convert it with array.astype('{info.dtype}')",
                )
        check_finite(name, arr)
        if axis is None:
            if arr.size != 1:
                raise DataError(
                    f"input {name!r} is a scalar in the model (shape {info.shape}); the data holds {arr.size} "
                    "values",
                    hint=f"store it as a 0-d array, e.g. numpy.array({arr.reshape(-1)[0] if arr.size else 0})",
                )
            inputs[name] = arr.reshape(())
            continue
        want_shape = [info.shape[axis], *info.shape[:axis], *info.shape[axis + 1 :]]
        _check_shape(name, arr.shape, want_shape)
        if n_samples is None:
            n_samples = arr.shape[0]
        elif arr.shape[0] != n_samples:
            raise DataError(f"input {name!r} has {arr.shape[0]} samples, the others {n_samples}")
        inputs[name] = arr
    if n_samples == 0 or (n_samples is None and not inputs):
        raise DataError(f"{p.name} holds no samples", hint="the first axis of every input counts the samples")
    n_samples = n_samples or 1

    labels = arrays.get("labels")
    metric_name = metric or (
        str(arrays["metric"]) if "metric" in arrays else ("top1" if labels is not None else FIDELITY)
    )
    spec = get_metric(metric_name)
    if labels is not None and labels.dtype.kind in "US" and metric_name == "top1":
        raise DataError(
            f"{p.name}: the labels are text ({labels.dtype}) and the metric is top1, which needs class ids",
            hint="for a text recogniser (CTC output) set metric ctc_exact_match (or ctc_cer) and add the "
            "character of each class as meta__charset; for classes, store their integer ids as labels",
        )
    if (
        labels is not None
        and labels.dtype.kind == "f"
        and metric_name == "top1"
        and labels.shape[0] != n_samples
    ):
        raise DataError(
            f"{p.name}: {labels.shape[0]} float labels for {n_samples} samples, and the metric is top1",
            hint="scores of sentence pairs? set metric spearman_pairs and give meta__pair_index ([P, 2] sample "
            "indices)",
        )
    if spec.needs_labels and labels is None:
        raise DataError(f"metric {metric_name!r} needs a `labels` array and {p.name} has none")
    meta = {k[len(META_PREFIX) :]: v for k, v in arrays.items() if k.startswith(META_PREFIX)}
    output: str | int | None = None
    if "output" in arrays:
        raw = arrays["output"]
        output = int(raw) if raw.dtype.kind in "iu" else str(raw)
    if labels is not None:
        classes = num_classes(_scored_outputs(model_outputs, output)) if model_outputs is not None else None
        try:
            check_labels(labels, metric_name, n_samples, classes)
        except DataError as e:
            raise DataError(f"{p.name}: {e.message}", hint=e.hint, details=e.details) from None
    return Dataset(
        str(p),
        inputs,
        labels,
        metric_name,
        meta,
        batch_axes={k: a for k, a in axes.items() if a != 0},
        output=output,
    )


def _scored_outputs(outputs: list[TensorInfo], output: str | int | None) -> list[TensorInfo]:
    """The model outputs with the one the metric reads first (the data's ``output``; default the first)."""
    if output is None:
        return outputs
    if isinstance(output, int):
        picked = outputs[output : output + 1] if 0 <= output < len(outputs) else []
    else:
        picked = [o for o in outputs if o.name == output]
    return picked or outputs


def batch_axis(
    model_shape: list[int | str | None], data_rank: int, data_shape: tuple[int, ...] | None = None
) -> int | None:
    """The axis of a model input that holds the batch: None for a rank-0 input (fed whole), the first axis when
    it is symbolic (or the data has one axis more than the model declares fixed), else the one symbolic axis
    (a recurrent state ``[2, B, 128]``) unless the data's shape (samples first) contradicts it and fits the
    first axis: an image exported with a fixed batch of 1 and a free width ``[1, 1, 64, W]``; 0 when nothing
    says otherwise."""
    if not model_shape:
        return None
    first = model_shape[0]
    if not (isinstance(first, int) and first > 0):
        return 0
    symbolic = [i for i, d in enumerate(model_shape) if not (isinstance(d, int) and d > 0)]
    if len(symbolic) == 1 and data_rank == len(model_shape):
        axis = symbolic[0]
        if (
            data_shape is not None
            and not _fits(data_shape, model_shape, axis)
            and _fits(data_shape, model_shape, 0)
        ):
            return 0
        return axis
    return 0


def _fits(data_shape: tuple[int, ...], model_shape: list[int | str | None], axis: int) -> bool:
    """Whether data (samples first) matches the model's fixed sizes when ``axis`` is the model's batch axis."""
    rest = [*model_shape[:axis], *model_shape[axis + 1 :]]
    return len(data_shape) == len(model_shape) and all(
        not (isinstance(w, int) and w > 0) or g == w for g, w in zip(data_shape[1:], rest, strict=True)
    )


def _hint_for_unknown(
    arrays: dict[str, np.ndarray], unknown: list[str], expected: dict[str, TensorInfo]
) -> str:
    """A hint that fits what was given: text next to the inputs is most likely the labels of a recogniser, one
    value per sample the labels of a classifier, a name close to an input a typo."""
    n = next((arrays[k].shape[0] for k in expected if k in arrays and arrays[k].ndim), None)
    for k in unknown:
        a = arrays[k]
        if a.dtype.kind in "US" and a.ndim == 1 and "labels" not in arrays:
            return (
                f"`{k}` holds text: if it is the text of each sample, name it `labels` and set `metric` to "
                "ctc_exact_match (a text recogniser; add meta__charset, the character of each class)"
            )
        if (
            a.ndim == 1
            and n is not None
            and a.shape[0] == n
            and a.dtype.kind in "iu"
            and "labels" not in arrays
        ):
            return (
                f"`{k}` has one integer per sample: if these are the classes, name it `labels` (metric top1)"
            )
        close = [e for e in expected if e.lower() == k.lower() or e.replace("_", "") == k.replace("_", "")]
        if close:
            return f"`{k}` looks like the model input `{close[0]}`: name it exactly so"
    return f"the model's inputs are {sorted(expected)}; extra arrays must be `labels`, `metric`, `output` or meta__*"


def _check_shape(name: str, got: tuple[int, ...], want: list[int | str | None]) -> None:
    if len(got) != len(want):
        raise DataError(
            f"input {name!r}: array has shape {list(got)} (rank {len(got)}), the model expects rank {len(want)} {want}",
            hint="the first axis is the sample axis; the rest must match the model input",
        )
    for axis, (g, w) in enumerate(zip(got[1:], want[1:], strict=True), start=1):
        if isinstance(w, int) and w > 0 and g != w:
            raise DataError(
                f"input {name!r}: axis {axis} is {g}, the model expects {w} (model shape {want}, data {list(got)})",
                hint="resize or reshape the data to the model's input shape",
            )


def save_data(
    path: str | Path,
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    metric: str | None = None,
    meta: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a data file in the layout above (atomically: a half-written file never replaces a good one)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = dict(inputs)
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    if metric is not None:
        arrays["metric"] = np.asarray(metric)
    for k, v in (meta or {}).items():
        arrays[META_PREFIX + k] = np.asarray(v)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(p)
    return p
