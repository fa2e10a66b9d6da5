"""Evaluation and calibration data: a ``.npz`` whose arrays are named after the model's inputs.

Layout (first axis = samples everywhere):

- one array per model input, named exactly as the input;
- ``labels`` (optional): class ids, text, or scores, depending on the metric;
- ``metric`` (optional, 0-d string): the registered metric that scores this data (default ``top1`` with labels,
  ``agreement`` without);
- ``meta__NAME`` (optional): extra arrays a metric needs (a CTC charset, sentence-pair indices).
"""

from __future__ import annotations

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


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}", hint="give the path of an existing .npz file")
    if not zipfile.is_zipfile(path):  # np.load would return a bare ndarray for a .npy file, not an archive
        raise DataError(
            f"{path.name} is not a .npz archive",
            hint="write it with numpy.savez(path, input_name=array, labels=array), not numpy.save",
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(
            f"{path.name} is not a readable .npz file ({e.__class__.__name__}: {e})",
            hint="write it with numpy.savez(path, input_name=array, labels=array); object arrays are refused",
        ) from e


def load_data(path: str | Path, model_inputs: list[TensorInfo], *, metric: str | None = None) -> Dataset:
    """Load ``path`` and check it against ``model_inputs``.

    Raises:
        DataError: missing or extra arrays, mismatched shapes, dtypes or sample counts, an unknown metric,
            or a metric that needs labels when there are none.
    """
    p = Path(path)
    arrays = _read_npz(p)
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
    if labels is not None and metric_name in ("top1",) and labels.shape[0] != n_samples:
        raise DataError(f"{labels.shape[0]} labels for {n_samples} samples in {p.name}")
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
