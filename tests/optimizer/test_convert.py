"""torch.export programs (.pt2) into the store: converted in a child process, checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimizer.errors import ModelLoadError
from optimizer.models.convert import convert_pt2_to_onnx
from optimizer.models.store import ModelStore, sha256_file


def _tiny_torch_model() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def test_model_store_add_converts_pt2_to_onnx_matching_torch(quanttaas_home: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    model = _tiny_torch_model()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a small shared machine torch's thread pool only adds contention
    try:
        program = torch.export.export(
            model, (torch.randn(2, 8),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},)
        )
    finally:
        torch.set_num_threads(threads)
    src = tmp_path / "tiny.pt2"
    torch.export.save(program, str(src))

    ref = ModelStore().add(src)

    assert ref.id.startswith("tiny-")
    assert ref.sha256 == sha256_file(ref.path)
    assert ref.size_bytes == Path(ref.path).stat().st_size
    sess = ort.InferenceSession(ref.path, providers=["CPUExecutionProvider"])
    x = (
        np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    )  # a batch it was not exported with
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert ModelStore().list() == [ref]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x80\x04garbage that is not an archive" * 20, b"PK\x03\x04 truncated zip header" * 20],
    ids=["empty", "garbage", "broken_zip"],
)
def test_model_store_add_raises_model_load_and_stores_nothing_when_pt2_corrupt(
    quanttaas_home: Path, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "broken.pt2"
    bad.write_bytes(content)
    store = ModelStore()

    with pytest.raises(ModelLoadError) as exc:
        store.add(bad)

    assert exc.value.code == "model_load"
    # refused before a converter process is started (that alone costs seconds of torch import)
    assert exc.value.message == "broken.pt2 is not a torch.export archive (not a zip file)"
    assert list(store.root.iterdir()) == []


def test_convert_pt2_to_onnx_raises_model_load_when_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        convert_pt2_to_onnx(tmp_path / "nope.pt2", tmp_path / "out.onnx")
