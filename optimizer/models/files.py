"""A model as the files it is made of: the ``.onnx`` and the external data files it names (models over 2 GB keep
their weights beside the graph; protobuf cannot hold them). Copy, move, save and ship them together.

:func:`pack_model` turns a model into bytes a Ray trial can carry (the plain file when it has no external data,
else a tar of its files), :func:`unpack_model` writes them back; :func:`save_model` writes external data when a
model is too large for one file.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import onnx

#: a single protobuf cannot exceed 2 GB; save weights beside the graph from this size on
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
_TAR_MAGIC = b"QTTAR1\n"


def external_files(path: str | Path) -> list[str]:
    """The external data file names (relative to the model's folder) that the model at ``path`` uses."""
    model = onnx.load(str(path), load_external_data=False)
    names: list[str] = []
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR
    ]
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc and loc not in names:
                names.append(loc)
    return names


def model_files(path: str | Path) -> list[Path]:
    """The model file and its external data files (those that exist)."""
    p = Path(path)
    return [p, *(p.parent / n for n in external_files(p) if (p.parent / n).is_file())]


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """Copy a model and its external data files (kept under their names, beside ``dst``)."""
    s, d = Path(src), Path(dst)
    d.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s, d)
    for name in external_files(s):
        if (s.parent / name).is_file():
            (d.parent / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.parent / name, d.parent / name)
    return d


def move_model(src: str | Path, dst: str | Path) -> Path:
    """Move a model and its external data files."""
    s, d = Path(src), Path(dst)
    d.parent.mkdir(parents=True, exist_ok=True)
    names = external_files(s)
    shutil.move(str(s), d)
    for name in names:
        if (s.parent / name).is_file():
            (d.parent / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(s.parent / name), d.parent / name)
    return d


def is_large(model: onnx.ModelProto) -> bool:
    """Whether ``model`` must keep its weights in external data (too large for one protobuf)."""
    total = 0
    for t in model.graph.initializer:
        total += len(t.raw_data) or 4 * len(t.float_data) or 8 * len(t.int64_data)
        if total > EXTERNAL_DATA_THRESHOLD:
            return True
    return False


def save_model(model: onnx.ModelProto, path: str | Path, *, external: bool | None = None) -> Path:
    """Save ``model``; its weights go to ``<name>.data`` beside it when it is too large for one file (or
    ``external`` says so)."""
    p = Path(path)
    ext = is_large(model) if external is None else external
    if ext:
        onnx.save(
            model, str(p), save_as_external_data=True, all_tensors_to_one_file=True, location=p.name + ".data"
        )
    else:
        onnx.save(model, str(p))
    return p


def _set_locations(model: onnx.ModelProto, renamed: dict[str, str]) -> None:
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR
    ]
    for t in tensors:
        for e in t.external_data:
            if e.key == "location" and e.value in renamed:
                e.value = renamed[e.value]


def data_names(model_name: str, old: list[str]) -> dict[str, str]:
    """External data files named after their model (``m.onnx.data``, ``m.onnx.1.data``...): models that share a
    folder (a sweep's candidates) never collide."""
    return {o: f"{model_name}.data" if i == 0 else f"{model_name}.{i}.data" for i, o in enumerate(old)}


def name_data_after(path: str | Path, model_name: str) -> Path:
    """Rename the external data files of the model at ``path`` after ``model_name`` (in place; the graph's
    references follow), so that the model can later be stored as ``model_name`` beside others byte for byte."""
    p = Path(path)
    old = external_files(p)
    renamed = data_names(model_name, old)
    if not old or all(k == v for k, v in renamed.items()):
        return p
    model = onnx.load(str(p), load_external_data=False)
    _set_locations(model, renamed)
    for o, n in renamed.items():
        if (p.parent / o).is_file():
            shutil.move(str(p.parent / o), p.parent / n)
    p.write_bytes(model.SerializeToString())
    return p


def pack_model(path: str | Path) -> bytes:
    """The model as bytes: the file itself, or (with external data) a tar of the model and its data files."""
    p = Path(path)
    names = external_files(p)
    if not names:
        return p.read_bytes()
    buf = io.BytesIO()
    buf.write(_TAR_MAGIC)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(p, arcname="model.onnx")
        for n in names:
            if (p.parent / n).is_file():
                tar.add(p.parent / n, arcname=n)
    return buf.getvalue()


def unpack_model(blob: bytes, path: str | Path) -> Path:
    """Write what :func:`pack_model` made to ``path`` (external data files beside it); returns ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not blob.startswith(_TAR_MAGIC):
        p.write_bytes(blob)
        return p
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob[len(_TAR_MAGIC) :]), mode="r") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None and not m.name.startswith("/") and ".." not in Path(m.name).parts:
                files[m.name] = f.read()
    graph = files.pop("model.onnx")
    # the data files are renamed after the model (candidates share a folder: their data must not collide)
    renamed = data_names(p.name, list(files))
    if any(k != v for k, v in renamed.items()):
        model = onnx.load_from_string(graph)
        _set_locations(model, renamed)
        graph = model.SerializeToString()
    p.write_bytes(graph)
    for old, data in files.items():
        (p.parent / renamed[old]).write_bytes(data)
    return p
