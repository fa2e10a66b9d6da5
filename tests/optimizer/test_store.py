"""ModelStore: content-named, validated, never changed; ids never reach the file system unchecked."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from optimizer.errors import ModelLoadError, NotFoundError
from optimizer.models.store import ModelStore, sha256_file, slug
from optimizer.optimize import resolve_model


def test_model_store_defaults_to_quanttaas_home(quanttaas_home: Path) -> None:
    assert ModelStore().root == quanttaas_home / "models"


def test_model_store_add_stores_identical_copy_named_by_content(
    quanttaas_home: Path, cnn_path: Path, sha256: Callable[[Path], str]
) -> None:
    store = ModelStore()

    ref = store.add(cnn_path, name="My CNN v1")

    digest = sha256(cnn_path)
    assert re.fullmatch(r"my-cnn-v1-[0-9a-f]{12}", ref.id)
    assert ref.id == f"my-cnn-v1-{digest[:12]}"
    assert ref.sha256 == digest == sha256_file(cnn_path)
    assert ref.size_bytes == cnn_path.stat().st_size
    assert ref.format == "onnx"
    stored = Path(ref.path)
    assert stored == quanttaas_home / "models" / ref.id / "model.onnx"
    assert stored.read_bytes() == cnn_path.read_bytes()
    assert store.get(ref.id) == ref
    assert store.list() == [ref]
    # no temporary folders left behind
    assert sorted(p.name for p in (quanttaas_home / "models").iterdir()) == [ref.id]


def test_model_store_add_names_model_after_file_when_no_name(quanttaas_home: Path, cnn_path: Path) -> None:
    ref = ModelStore().add(cnn_path)

    assert ref.id.startswith("cnn-")


def test_model_store_add_returns_same_ref_when_added_twice(quanttaas_home: Path, cnn_path: Path) -> None:
    store = ModelStore()

    first = store.add(cnn_path)
    second = store.add(cnn_path)

    assert second == first
    assert len(store.list()) == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"definitely not onnx" * 30],
    ids=["empty", "garbage"],
)
def test_model_store_add_raises_model_load_and_stores_nothing_when_file_corrupt(
    quanttaas_home: Path, tmp_path: Path, cnn_path: Path, content: bytes
) -> None:
    store = ModelStore()
    good = store.add(cnn_path)
    before = sorted(p.name for p in store.root.iterdir())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)

    with pytest.raises(ModelLoadError):
        store.add(bad)

    assert sorted(p.name for p in store.root.iterdir()) == before == [good.id]
    assert store.list() == [good]


def test_model_store_add_raises_model_load_when_file_missing(quanttaas_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        ModelStore().add(tmp_path / "nope.onnx")


def test_model_store_add_keeps_the_external_data_files_with_the_model(
    quanttaas_home: Path, tmp_path: Path, make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(make_tiny_graph(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    store = ModelStore()

    ref = store.add(path)
    stored = Path(ref.path)
    assert (stored.parent / "w.bin").read_bytes() == (tmp_path / "w.bin").read_bytes()
    assert ref.size_bytes == path.stat().st_size + (tmp_path / "w.bin").stat().st_size
    assert store.list() == [ref]


def test_model_store_add_refuses_a_model_whose_external_data_file_is_missing(
    quanttaas_home: Path, tmp_path: Path, make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(make_tiny_graph(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    (tmp_path / "w.bin").unlink()
    store = ModelStore()

    with pytest.raises(ModelLoadError, match="external data"):
        store.add(path)
    assert store.list() == []


@pytest.mark.parametrize(
    "model_id",
    ["../../etc", "a/b", "", "..", "cnn-000000000000", "/etc/passwd", "UPPER", "x" * 200],
)
def test_model_store_get_raises_not_found_for_unknown_or_malicious_id(
    quanttaas_home: Path, model_id: str
) -> None:
    with pytest.raises(NotFoundError) as exc:
        ModelStore().get(model_id)
    assert exc.value.code == "not_found"
    assert exc.value.http_status == 404


def test_model_store_get_refuses_id_that_escapes_root_even_when_target_exists(
    quanttaas_home: Path, tmp_path: Path, cnn_path: Path
) -> None:
    store = ModelStore(tmp_path / "root" / "models")
    ref = ModelStore(tmp_path / "elsewhere").add(cnn_path)

    with pytest.raises(NotFoundError):
        store.get(f"../../elsewhere/{ref.id}")


def test_model_store_list_is_empty_when_root_missing(tmp_path: Path) -> None:
    assert ModelStore(tmp_path / "none").list() == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My Model", "my-model"),
        ("../../x", "x"),
        ("...", "model"),
        ("a" * 60, "a" * 40),
        ("ResNet_50.v2", "resnet_50.v2"),
    ],
)
def test_slug_makes_safe_id_prefix(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_resolve_model_returns_existing_onnx_path_and_stored_id(quanttaas_home: Path, cnn_path: Path) -> None:
    ref = ModelStore().add(cnn_path)

    assert resolve_model(str(cnn_path)) == cnn_path
    assert resolve_model(ref.id) == Path(ref.path)


def test_resolve_model_raises_not_found_for_unknown_id(quanttaas_home: Path) -> None:
    with pytest.raises(NotFoundError):
        resolve_model("no-such-model-123")


def test_model_store_add_refuses_a_graph_with_a_cycle_and_stores_nothing(
    quanttaas_home: Path, tmp_path: Path, make_tiny_graph: Callable[[], onnx.ModelProto]
) -> None:
    model = make_tiny_graph()
    model.graph.node.extend(
        [
            onnx.helper.make_node("Add", ["x", "z"], ["w"], name="a"),
            onnx.helper.make_node("Relu", ["w"], ["z"], name="b"),
        ]
    )
    path = tmp_path / "cycle.onnx"
    onnx.save(model, str(path))
    store = ModelStore()

    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model.*topologically sorted"):
        store.add(path)
    assert store.list() == [] and [p.name for p in store.root.iterdir()] == []
