""".npz data files checked against a model's inputs: every mismatch is a DataError that names the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimizer.errors import DataError
from optimizer.measure.data import load_data, save_data
from optimizer.types import TensorInfo

INPUTS = [
    TensorInfo(name="x", dtype="float32", shape=["N", 4]),
    TensorInfo(name="ids", dtype="int64", shape=["N", 6]),
]


def _good(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((n, 4)).astype(np.float32),
        "ids": rng.integers(0, 100, (n, 6)).astype(np.int64),
    }


def _npz(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_load_data_returns_dataset_when_file_matches(tmp_path: Path) -> None:
    arrays = _good()
    labels = np.array([0, 1, 2, 1, 0])
    path = _npz(tmp_path, **arrays, labels=labels)

    data = load_data(path, INPUTS)

    assert data.samples == 5
    assert data.metric == "top1"
    np.testing.assert_array_equal(data.inputs["x"], arrays["x"])
    np.testing.assert_array_equal(data.inputs["ids"], arrays["ids"])
    np.testing.assert_array_equal(data.labels, labels)
    summary = data.summary()
    assert summary.samples == 5 and summary.has_labels and summary.metric == "top1"
    assert [t.name for t in summary.inputs] == ["x", "ids"]


def test_load_data_defaults_to_fidelity_by_output_kind_when_no_labels(tmp_path: Path) -> None:
    data = load_data(_npz(tmp_path, **_good()), INPUTS)

    assert data.labels is None
    assert data.metric == "fidelity"


def test_load_data_casts_same_kind_dtypes(tmp_path: Path) -> None:
    arrays = _good()
    path = _npz(tmp_path, x=arrays["x"].astype(np.float64), ids=arrays["ids"].astype(np.int32))

    data = load_data(path, INPUTS)

    assert data.inputs["x"].dtype == np.float32
    assert data.inputs["ids"].dtype == np.int64


def test_load_data_metric_argument_overrides_file(tmp_path: Path) -> None:
    path = _npz(tmp_path, **_good(), labels=np.zeros(5, np.int64), metric=np.asarray("top1"))

    assert load_data(path, INPUTS).metric == "top1"
    assert load_data(path, INPUTS, metric="agreement").metric == "agreement"


def test_load_data_head_keeps_first_samples(tmp_path: Path) -> None:
    data = load_data(_npz(tmp_path, **_good()), INPUTS)

    head = data.head(2)

    assert head.samples == 2
    np.testing.assert_array_equal(head.inputs["x"], data.inputs["x"][:2])


def _bad_cases() -> list[Any]:
    g = _good()
    return [
        pytest.param({"x": g["x"]}, "'ids'", id="missing_input"),
        pytest.param({**g, "extra": g["x"]}, "extra", id="extra_array"),
        pytest.param({**g, "x": g["x"][:, :, None]}, "rank", id="wrong_rank"),
        pytest.param({**g, "x": np.zeros((5, 5), np.float32)}, "axis 1 is 5", id="wrong_fixed_dim"),
        pytest.param({**g, "x": g["ids"][:, :4]}, "dtype int64", id="int_for_float"),
        pytest.param({**g, "ids": g["ids"].astype(np.float32)}, "dtype float32", id="float_for_int"),
        pytest.param({**g, "ids": g["ids"][:3]}, "3 samples", id="sample_counts_differ"),
        pytest.param({"x": g["x"][:0], "ids": g["ids"][:0]}, "no samples", id="zero_samples"),
        pytest.param({**g, "metric": np.asarray("bleu")}, "unknown metric 'bleu'", id="unknown_metric"),
        pytest.param({**g, "metric": np.asarray("top1")}, "needs a `labels` array", id="metric_needs_labels"),
        pytest.param({**g, "labels": np.zeros(3, np.int64)}, "3 labels for 5 samples", id="label_count"),
    ]


@pytest.mark.parametrize(("arrays", "needle"), _bad_cases())
def test_load_data_raises_data_invalid_when_file_does_not_match(
    tmp_path: Path, arrays: dict[str, np.ndarray], needle: str
) -> None:
    path = _npz(tmp_path, **arrays)

    with pytest.raises(DataError) as exc:
        load_data(path, INPUTS)

    assert exc.value.code == "data_invalid"
    assert needle in exc.value.message


def test_load_data_raises_data_invalid_when_metric_argument_unknown(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown metric"):
        load_data(_npz(tmp_path, **_good()), INPUTS, metric="nope")


@pytest.mark.parametrize(
    "content",
    [b"x,ids\n1,2\n", b"PK\x03\x04 not really a zip"],
    ids=["text", "broken_zip"],
)
def test_load_data_raises_data_invalid_when_file_is_not_npz(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)

    with pytest.raises(DataError) as exc:
        load_data(path, INPUTS)

    assert exc.value.code == "data_invalid"
    assert "data.npz" in exc.value.message


def test_load_data_raises_data_invalid_when_file_is_single_npy_array(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, _good()["x"])

    with pytest.raises(DataError, match=r"x\.npy"):
        load_data(path, INPUTS)


def test_load_data_raises_data_invalid_when_file_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "nope.npz", INPUTS)


def test_load_data_refuses_pickled_object_array(tmp_path: Path) -> None:
    g = _good()
    objects = np.empty(5, dtype=object)
    objects[:] = [{"evil": i} for i in range(5)]
    path = _npz(tmp_path, **g, labels=objects)

    with pytest.raises(DataError, match="holds Python objects"):
        load_data(path, INPUTS)


def test_save_data_round_trips_inputs_labels_metric_and_meta(tmp_path: Path) -> None:
    g = _good()
    labels = np.array(["ab", "c", "", "d", "ee"])
    charset = np.array(["-", "a", "b"])
    path = save_data(
        tmp_path / "sub" / "d.npz", g, labels, metric="ctc_exact_match", meta={"charset": charset}
    )

    data = load_data(path, INPUTS)

    assert path.is_file()
    assert not list(path.parent.glob("*.tmp.npz"))
    assert data.metric == "ctc_exact_match"
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.meta["charset"], charset)
    np.testing.assert_array_equal(data.inputs["x"], g["x"])
    np.testing.assert_array_equal(data.inputs["ids"], g["ids"])


# --------------------------------------------------------------------------- archives numpy would trust blindly

OUTPUTS = [TensorInfo(name="y", dtype="float32", shape=["N", 3])]


def _zip(tmp_path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return path


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic string, length and header


def test_read_npz_refuses_member_that_is_not_a_npy_array(tmp_path: Path) -> None:
    from optimizer.measure.data import read_npz

    path = _zip(tmp_path, {"x.npy": b"hello, not an array at all"})

    with pytest.raises(DataError, match=r"'x\.npy' is not a valid \.npy array"):
        read_npz(path)
    with pytest.raises(DataError, match=r"'notes\.txt' is not a \.npy array"):
        read_npz(_zip(tmp_path, {"notes.txt": b"hi"}))


def test_read_npz_refuses_header_that_declares_more_than_it_holds(tmp_path: Path) -> None:
    from optimizer.measure.data import read_npz

    # a 4 TiB shape in a few bytes: numpy would try to allocate it
    path = _zip(tmp_path, {"x.npy": _npy_header((1 << 40,)) + b"\x00" * 16})

    with pytest.raises(DataError, match=r"declares shape \[1099511627776\].*holds 16 bytes"):
        read_npz(path)


def test_load_data_refuses_nan_and_infinite_inputs(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        g = _good()
        g["x"][3, 1] = bad
        with pytest.raises(
            DataError, match=r"input 'x' holds 1 NaN or infinite value\(s\) \(first in sample 3\)"
        ):
            load_data(_npz(tmp_path, **g), INPUTS)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1, np.nan, 1, 0]), "NaN or infinite"),
        (np.array([0, 1, 2**63 - 1, 1, 0], dtype=np.int64), "names a class the model does not have"),
        (np.array([0, 1, 3, 1, 0]), r"label 3 \(sample 2\) names a class .* 3 classes \(0..2\)"),
        (np.array([0, -1, 2, 1, 0]), r"label -1 \(sample 1\) is negative"),
        (np.array([0, 0.5, 2, 1, 0]), "whole class indices"),
        (np.array([0, 1, 2]), "3 labels for 5 samples"),
    ],
    ids=["nan", "int64-max", "one-past-the-classes", "negative", "fraction", "count"],
)
def test_load_data_refuses_top1_labels_the_model_cannot_be_scored_on(
    tmp_path: Path, labels: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        load_data(_npz(tmp_path, **_good(), labels=labels), INPUTS, model_outputs=OUTPUTS)


def test_load_data_accepts_whole_float_labels_within_the_model_classes(tmp_path: Path) -> None:
    data = load_data(
        _npz(tmp_path, **_good(), labels=np.array([0.0, 1, 2, 1, 0])), INPUTS, model_outputs=OUTPUTS
    )

    assert data.labels is not None and data.labels.tolist() == [0, 1, 2, 1, 0]


def test_num_classes_reads_the_first_output_class_axes() -> None:
    from optimizer.measure.data import num_classes

    assert num_classes(OUTPUTS) == 3
    assert num_classes([TensorInfo(name="y", dtype="float32", shape=["N", 2, 5])]) == 10
    assert num_classes([TensorInfo(name="y", dtype="float32", shape=["N"])]) == 2  # a binary score
    assert num_classes([TensorInfo(name="y", dtype="float32", shape=["N", "C"])]) is None


def test_load_data_hints_labels_and_ctc_metric_when_given_a_text_array(tmp_path: Path) -> None:
    arrays = _good()
    arrays["texts"] = np.asarray(["hello"] * arrays["x"].shape[0])
    with pytest.raises(DataError) as err:
        load_data(_npz(tmp_path, **arrays), INPUTS)
    assert "name it `labels`" in err.value.hint and "ctc_exact_match" in err.value.hint


def test_load_data_refuses_text_labels_for_top1_with_a_ctc_hint(tmp_path: Path) -> None:
    arrays = _good()
    arrays["labels"] = np.asarray(["hello"] * arrays["x"].shape[0])
    with pytest.raises(DataError) as err:
        load_data(_npz(tmp_path, **arrays), INPUTS)
    assert "ctc_exact_match" in err.value.hint


def test_batch_axis_is_the_first_when_the_data_contradicts_the_one_free_axis() -> None:
    from optimizer.measure.data import batch_axis

    # an image exported with a fixed batch of 1 and a free width: the width is not the batch
    assert batch_axis([1, 1, 64, "W"], 4, (64, 1, 64, 170)) == 0
    # recurrent states keep their batch on the free axis, a one-layer state [1, B, H] too
    assert batch_axis([2, "B", 128], 3, (10, 2, 128)) == 1
    assert batch_axis([1, "B", 128], 3, (10, 1, 128)) == 1
    assert batch_axis([2, "B", 128], 3) == 1  # without the data's shape, as before


def test_load_data_feeds_a_batch_1_model_with_a_free_width_sample_by_sample(tmp_path: Path) -> None:
    model_inputs = [TensorInfo(name="img", dtype="float32", shape=[1, 1, 8, "width"])]
    x = np.random.default_rng(0).random((5, 1, 8, 30), dtype=np.float32)

    data = load_data(save_data(tmp_path / "d.npz", {"img": x}), model_inputs)

    assert data.samples == 5 and data.batch_axes.get("img", 0) == 0
    np.testing.assert_array_equal(data.feed(2, 3)["img"], x[2:3])
