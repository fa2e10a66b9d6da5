"""A model whose weights live in an external data file (how models over 2 GB are stored) goes through the store,
the sweep's trials, quantization and packaging; a small model saved that way stands in for a large one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx

from optimizer.measure.data import Dataset
from optimizer.models.files import external_files, model_files, pack_model, unpack_model
from optimizer.models.inspect import inspect_model
from optimizer.models.store import ModelStore
from optimizer.package import package_candidate
from optimizer.search.sweep import SweepOptions, run_sweep
from optimizer.techniques.quantize import quantize_model
from optimizer.types import Goal, StaticInt8Recipe


def _with_external_data(src: Path, dst: Path) -> Path:
    model = onnx.load(str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model,
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return dst


def test_external_data_model_goes_through_store_sweep_quantize_and_package(
    cnn_path: Path, cnn_eval: Dataset, cnn_calib: Dataset, tmp_path: Path
) -> None:
    src = _with_external_data(cnn_path, tmp_path / "src" / "cnn.onnx")
    assert external_files(src) == ["weights.bin"] and inspect_model(src).external_data_bytes > 0

    ref = ModelStore(tmp_path / "store").add(src)
    stored = Path(ref.path)
    assert [p.name for p in model_files(stored)] == ["model.onnx", "weights.bin"]
    assert ref.size_bytes == inspect_model(src).size_bytes

    blob = pack_model(stored)
    back = unpack_model(blob, tmp_path / "shipped" / "c01.onnx")
    assert external_files(back) == ["c01.onnx.data"] and (back.parent / "c01.onnx.data").is_file()

    q = quantize_model(stored, StaticInt8Recipe(), tmp_path / "q" / "q.onnx", calib=cnn_calib)
    assert q.is_file()

    report = run_sweep(
        stored,
        cnn_eval,
        calib=cnn_calib,
        goal=Goal(max_accuracy_drop_pct=5.0, objective="size"),
        out_dir=tmp_path / "sweep",
        options=SweepOptions(executor="serial", profile=False, latency_runs=3, remeasure_runs=6),
    )
    assert report.recommended is not None, report.reason
    ok = [c for c in report.candidates if c.ok]
    assert len(ok) >= 3
    for c in ok:
        assert c.model_path and inspect_model(c.model_path).size_bytes == c.metrics.size_bytes

    pkg = package_candidate(report, None, tmp_path / "pkg")
    run = subprocess.run(
        [sys.executable, str(Path(pkg.out_dir) / "run.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=pkg.out_dir,
    )
    assert run.returncode == 0, run.stderr
