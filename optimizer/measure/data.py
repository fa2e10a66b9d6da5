"""Evaluation and calibration data: a ``.npz`` whose arrays are named after the model's inputs.

Layout (first axis = samples everywhere):

- one array per model input, named exactly as the input;
- ``labels`` (optional): class ids, text, or scores, depending on the metric;
- ``metric`` (optional, 0-d string): the registered metric that scores this data (default ``top1`` with labels,
  ``agreement`` without);
- ``meta__NAME`` (optional): extra arrays a metric needs (a CTC charset, sentence-pair indices).

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizer.errors import DataError
from optimizer.measure.metrics import get_metric
from optimizer.types import DataSummary, TensorInfo

META_PREFIX = "meta__"
RESERVED = ("labels", "metric")

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

    @property
    def samples(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples (calibration uses a bounded slice). Meta and labels are kept whole."""
        return Dataset(
            self.path, {k: v[:n] for k, v in self.inputs.items()}, self.labels, self.metric, self.meta
        )

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
            hint=f"the model's inputs are {sorted(expected)}; extra arrays must be `labels`, `metric` or meta__*",
        )
    inputs: dict[str, np.ndarray] = {}
    n_samples: int | None = None
    for name, info in expected.items():
        arr = arrays[name]
        want = ONNX_TO_NUMPY.get(info.dtype)
        if want is not None and arr.dtype != want:
            if np.can_cast(arr.dtype, want, casting="same_kind") and arr.dtype.kind == want.kind:
                arr = arr.astype(want)
            else:
                raise DataError(
                    f"input {name!r}: dtype {arr.dtype} does not match the model's {info.dtype}",
                    hint=f"convert it with array.astype('{info.dtype}')",
                )
        _check_shape(name, arr.shape, info.shape)
        check_finite(name, arr)
        if n_samples is None:
            n_samples = arr.shape[0]
        elif arr.shape[0] != n_samples:
            raise DataError(f"input {name!r} has {arr.shape[0]} samples, the others {n_samples}")
        inputs[name] = arr
    if not n_samples:
        raise DataError(f"{p.name} holds no samples", hint="the first axis of every input counts the samples")

    labels = arrays.get("labels")
    metric_name = metric or (
        str(arrays["metric"]) if "metric" in arrays else ("top1" if labels is not None else "agreement")
    )
    spec = get_metric(metric_name)
    if spec.needs_labels and labels is None:
        raise DataError(f"metric {metric_name!r} needs a `labels` array and {p.name} has none")
    meta = {k[len(META_PREFIX) :]: v for k, v in arrays.items() if k.startswith(META_PREFIX)}
    if labels is not None:
        classes = num_classes(model_outputs) if model_outputs is not None else None
        try:
            check_labels(labels, metric_name, n_samples, classes)
        except DataError as e:
            raise DataError(f"{p.name}: {e.message}", hint=e.hint, details=e.details) from None
    return Dataset(str(p), inputs, labels, metric_name, meta)


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
