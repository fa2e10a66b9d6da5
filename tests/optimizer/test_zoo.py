"""The built-in zoo: real builds (no mocks), the fp32 quality floor of each case, and the cache's behaviour.

The real builds go to the normal zoo cache (``QUANTTAAS_HOME``, when the environment sets it, else the default
home) so that the suite reuses them; the cache-behaviour tests build into a private temporary home.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from optimizer import zoo
from optimizer.errors import NotFoundError, TechniqueError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.metrics import MetricInput, get_metric
from optimizer.settings import get_settings
from optimizer.types import TensorInfo

# sentence-transformers (torch) on the same 487 texts at max_seq_length 64: WordSim 0.7289, Lee 0.4903
MINILM_TORCH_REFERENCE = 0.6096
ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64"}


# --------------------------------------------------------------------------- helpers and fixtures


def _session(model_path: str) -> ort.InferenceSession:
    return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])


def _model_inputs(sess: ort.InferenceSession) -> list[TensorInfo]:
    return [TensorInfo(name=i.name, dtype=ORT_TYPES[i.type], shape=list(i.shape)) for i in sess.get_inputs()]


def _fp32_metric(case: zoo.ZooCase, batch: int = 32) -> tuple[float, Dataset, float]:
    """Run the case's model over its eval data with onnxruntime; ``(metric, data, seconds)``."""
    sess = _session(case.model_path)
    data = load_data(case.eval_path, _model_inputs(sess))
    assert data.metric == case.metric
    start = time.perf_counter()
    chunks = [
        sess.run(None, {k: v[i : i + batch] for k, v in data.inputs.items()})
        for i in range(0, data.samples, batch)
    ]
    seconds = time.perf_counter() - start
    outputs = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
    value = get_metric(data.metric).fn(MetricInput(outputs, data.labels, data.meta, data.inputs))
    return value, data, seconds


def _check_files(case: zoo.ZooCase) -> ort.InferenceSession:
    """The case's files exist, the model is one self-contained file, and both .npz files match its inputs."""
    for path in (case.model_path, case.calib_path, case.eval_path):
        assert Path(path).is_file() and Path(path).parent == Path(case.dir)
    assert not list(Path(case.dir).glob("*.data"))
    onnx.checker.check_model(case.model_path)
    sess = _session(case.model_path)
    inputs = _model_inputs(sess)
    assert all(isinstance(t.shape[0], str) for t in inputs), "the batch axis must be dynamic"
    calib = load_data(case.calib_path, inputs)
    assert calib.labels is None and calib.samples >= 32
    return sess


@pytest.fixture(scope="session")
def zoo_root() -> Path:
    """The shared zoo cache: QUANTTAAS_HOME's when the environment sets it, else the default home's."""
    return get_settings().zoo_dir


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh QUANTTAAS_HOME (inherited by spawned processes) for the cache-behaviour tests."""
    home = tmp_path / "home"
    monkeypatch.setenv("QUANTTAAS_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _tiny_builder(out: Path) -> zoo.BuildResult:
    """A real, instant builder for cache tests: a one-node model and its data."""
    from onnx import TensorProto, helper

    from optimizer.measure.data import save_data

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(out / zoo.MODEL_FILE)
    )
    x = np.ones((4, 2), np.float32)
    save_data(out / zoo.CALIB_FILE, {"x": x})
    save_data(out / zoo.EVAL_FILE, {"x": x}, np.zeros(4, np.int64), metric="top1")
    return zoo.BuildResult()


def _failing_builder(out: Path) -> zoo.BuildResult:
    (out / zoo.MODEL_FILE).write_bytes(b"half a model")
    raise RuntimeError("the export crashed")


def _register(monkeypatch: pytest.MonkeyPatch, name: str, builder: Any, version: int = 1) -> None:
    entry = zoo.ZooEntry(name=name, description="test case", task="test", metric="top1", source="tests")
    monkeypatch.setitem(zoo._REGISTRY, name, zoo._Spec(entry, builder, version))


def _build_in_child(name: str) -> dict[str, Any]:
    """Run in a spawned process: get the case (from QUANTTAAS_HOME) and report what it sees."""
    from optimizer import zoo as child_zoo

    case = child_zoo.get_zoo_case(name)
    record = json.loads((Path(case.dir) / child_zoo.CASE_FILE).read_text())
    return {"case": case.model_dump(), "record": record, "model": Path(case.model_path).read_bytes()}


# --------------------------------------------------------------------------- listing and names


def test_list_zoo_names_the_three_cases() -> None:
    entries = zoo.list_zoo()
    assert [e.name for e in entries] == ["digits-cnn", "minilm-l6", "ppocr-rec"]
    assert {e.name: e.metric for e in entries} == {
        "digits-cnn": "top1",
        "minilm-l6": "spearman_pairs",
        "ppocr-rec": "ctc_exact_match",
    }
    assert all(e.description and e.task and e.source for e in entries)


def test_is_zoo_name_tells_cases_from_other_names() -> None:
    assert zoo.is_zoo_name("digits-cnn") and zoo.is_zoo_name("ppocr-rec")
    assert not zoo.is_zoo_name("resnet-50") and not zoo.is_zoo_name("model.onnx")


@pytest.mark.parametrize(
    "call",
    [zoo.get_zoo_case, lambda n: zoo.export_zoo_case(n, "/nonexistent/out")],
    ids=["get_zoo_case", "export_zoo_case"],
)
def test_get_zoo_case_raises_not_found_when_name_unknown(call: Any) -> None:
    with pytest.raises(NotFoundError) as err:
        call("no-such-model")
    assert err.value.code == "not_found"
    assert "digits-cnn" in err.value.hint


def test_import_zoo_is_light_when_nothing_is_built() -> None:
    heavy = ["torch", "transformers", "sentence_transformers", "rapidocr_onnxruntime", "gensim", "sklearn"]
    code = f"import sys, optimizer.zoo; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- real builds


def test_get_zoo_case_builds_digits_cnn_above_95pct(zoo_root: Path) -> None:
    import torch

    from optimizer.zoo.digits import DigitsCNN

    case = zoo.get_zoo_case("digits-cnn", root=zoo_root)
    sess = _check_files(case)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    accuracy, data, _ = _fp32_metric(case)
    assert accuracy >= 0.95
    assert data.samples == 360 and data.inputs["input"].shape[1:] == (1, 8, 8)
    assert data.inputs["input"].min() >= 0.0 and data.inputs["input"].max() <= 1.0

    assert case.train_path is not None and case.torch_source is not None
    train = load_data(case.train_path, _model_inputs(sess))
    assert train.samples == 1437 and train.labels is not None
    model = DigitsCNN()
    model.load_state_dict(torch.load(case.torch_source, weights_only=True))
    model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(data.inputs["input"])).numpy()
    onnx_logits = sess.run(None, {"input": data.inputs["input"]})[0]
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_get_zoo_case_builds_minilm_l6_close_to_torch(zoo_root: Path) -> None:
    case = zoo.get_zoo_case("minilm-l6", root=zoo_root)
    sess = _check_files(case)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(isinstance(i.shape[1], str) for i in sess.get_inputs()), "the sequence axis must be dynamic"
    assert case.torch_source is None and case.train_path is None
    spearman, data, _ = _fp32_metric(case)
    assert abs(spearman - MINILM_TORCH_REFERENCE) < 0.05
    groups = data.meta["pair_group"]
    assert data.samples == 487 and data.inputs["input_ids"].shape[1] == 64
    assert (groups == 0).sum() == 353 and (groups == 1).sum() == 1225
    assert data.meta["pair_index"].shape == (1578, 2) and data.meta["pair_index"].max() < data.samples


@pytest.mark.slow
def test_get_zoo_case_builds_ppocr_rec_reading_above_90pct(zoo_root: Path) -> None:
    case = zoo.get_zoo_case("ppocr-rec", root=zoo_root)
    sess = _check_files(case)
    assert [i.name for i in sess.get_inputs()] == ["x"]
    source = onnx.load(case.model_path)
    assert any(n.op_type == "Constant" for n in source.graph.node), (
        "the model must be the unmodified original"
    )
    exact, data, _ = _fp32_metric(case)
    assert exact >= 0.9
    assert data.samples == 200 and data.inputs["x"].shape[1:] == (3, 48, 320)
    charset = data.meta["charset"]
    assert charset[0] == "blank" and charset[-1] == " " and len(charset) == sess.get_outputs()[0].shape[2]
    assert data.labels is not None and all(5 <= len(t) <= 25 for t in data.labels.tolist())


@pytest.mark.slow
def test_ppocr_lines_read_the_same_when_rapidocr_reads_them() -> None:
    from rapidocr_onnxruntime import RapidOCR

    from optimizer.zoo import ppocr

    texts, images = ppocr.make_lines(ppocr.EVAL_LINES, ppocr.EVAL_SEED)
    engine = RapidOCR()
    read = []
    for img in images[:8]:
        bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
        result, _ = engine(bgr, use_det=False, use_cls=False, use_rec=True)
        read.append(result[0][0])
    assert sum(a == b for a, b in zip(read, texts[:8], strict=True)) >= 7, list(
        zip(read, texts[:8], strict=True)
    )


# --------------------------------------------------------------------------- the cache


def test_get_zoo_case_reuses_the_cache_when_called_twice(zoo_root: Path) -> None:
    first = zoo.get_zoo_case("digits-cnn", root=zoo_root)
    record = Path(first.dir) / zoo.CASE_FILE
    before = (record.stat().st_mtime_ns, record.read_text(), Path(first.model_path).stat().st_mtime_ns)
    start = time.perf_counter()
    second = zoo.get_zoo_case("digits-cnn", root=zoo_root)
    assert time.perf_counter() - start < 0.5
    assert second == first
    assert (
        record.stat().st_mtime_ns,
        record.read_text(),
        Path(first.model_path).stat().st_mtime_ns,
    ) == before
    meta = json.loads(before[1])
    assert meta["build_seconds"] > 0 and meta["build_version"] and meta["name"] == "digits-cnn"


def test_export_zoo_case_writes_the_three_files(zoo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "export" / "digits"
    case = zoo.export_zoo_case("digits-cnn", out, root=zoo_root)
    assert case.dir == str(out)
    for path in (case.model_path, case.calib_path, case.eval_path):
        assert Path(path).parent == out and Path(path).stat().st_size > 0
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "calib.npz", "eval.npz"}
    source = zoo.get_zoo_case("digits-cnn", root=zoo_root)
    assert Path(case.model_path).read_bytes() == Path(source.model_path).read_bytes()


def test_get_zoo_case_builds_once_when_two_processes_ask_at_once(private_home: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_build_in_child, ["digits-cnn", "digits-cnn"])
    a, b = results
    assert a["case"] == b["case"]
    assert a["record"] == b["record"], "the second process must reuse the first one's build, not rebuild"
    assert a["model"] == b["model"]
    root = private_home / "zoo"
    assert Path(a["case"]["dir"]) == root / "digits-cnn"
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["digits-cnn"]
    # the parent process now finds the same, cached case
    assert zoo.get_zoo_case("digits-cnn").model_dump() == a["case"]


def test_get_zoo_case_rebuilds_when_the_build_version_changes(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, "tiny-test", _tiny_builder, version=1)
    first = zoo.get_zoo_case("tiny-test")
    built_at = json.loads((Path(first.dir) / zoo.CASE_FILE).read_text())["build_version"]
    assert zoo.get_zoo_case("tiny-test") == first
    _register(monkeypatch, "tiny-test", _tiny_builder, version=2)
    second = zoo.get_zoo_case("tiny-test")
    assert json.loads((Path(second.dir) / zoo.CASE_FILE).read_text())["build_version"] != built_at
    assert second.dir == first.dir and Path(second.model_path).is_file()


def test_get_zoo_case_leaves_nothing_when_the_build_fails(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, "broken-test", _failing_builder)
    with pytest.raises(TechniqueError) as err:
        zoo.get_zoo_case("broken-test")
    assert err.value.code == "technique_failed" and "the export crashed" in err.value.message
    assert isinstance(err.value.__cause__, RuntimeError)
    root = private_home / "zoo"
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []


def test_get_zoo_case_moves_with_the_cache_folder(
    private_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, "tiny-test", _tiny_builder)
    case = zoo.get_zoo_case("tiny-test")
    moved = private_home.parent / "moved-zoo"
    os.replace(private_home / "zoo", moved)
    again = zoo.get_zoo_case("tiny-test", root=moved)
    assert again.dir == str(moved / "tiny-test") and Path(again.model_path).is_file()
    assert again.model_path != case.model_path
