"""The `quanttaas` command line: in process for the happy paths, as a real subprocess for the error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from optimizer.cli import EXIT_ERROR, main
from optimizer.models.inspect import inspect_model


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTTAAS_HOME": str(home)}
    env.pop("QUANTTAAS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "optimizer.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_inspect_json_prints_model_fields(
    quanttaas_home: Path, tiny_graph_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["inspect", str(tiny_graph_path), "--json"])

    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["opset"] == 13
    assert out["param_count"] == 64
    assert out["constant_param_count"] == 24
    assert out["size_bytes"] == tiny_graph_path.stat().st_size
    assert out["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 4]}]
    assert out["op_counts"]["Gemm"] == 1
    assert out["quantized"] is False
    assert [layer["name"] for layer in out["layers"]] == ["fc1", "fc2"]


def test_cli_inspect_prints_human_summary(
    quanttaas_home: Path, tiny_graph_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["inspect", str(tiny_graph_path)])

    out = capsys.readouterr().out
    assert rc == 0
    assert "opset 13" in out
    assert "64 parameters (24 in Constant nodes)" in out
    assert "already quantized: no" in out


def test_cli_quantize_writes_static_int8_model(
    quanttaas_home: Path,
    tmp_path: Path,
    cnn_path: Path,
    cnn_calib_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_path = tmp_path / "q.onnx"

    rc = main(
        [
            "quantize",
            str(cnn_path),
            "--recipe",
            "static-int8",
            "--calib",
            str(cnn_calib_path),
            "--per-tensor",
            "-o",
            str(out_path),
            "--json",
        ]
    )

    body = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert body["output"] == str(out_path)
    assert body["recipe"]["kind"] == "static_int8"
    assert body["recipe"]["per_channel"] is False
    assert body["size_bytes_before"] == cnn_path.stat().st_size
    assert body["size_bytes_after"] == out_path.stat().st_size
    assert body["size_bytes_after"] < body["size_bytes_before"]
    assert inspect_model(out_path).quantized


def test_cli_quantize_prints_summary_for_dynamic_int8(
    quanttaas_home: Path, tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "d.onnx"

    rc = main(["quantize", str(mlp_path), "--recipe", "dynamic-int8", "-o", str(out_path)])

    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("dynamic_int8[MatMul,Gemm,Gather]: wrote")
    assert "x smaller" in out
    assert inspect_model(out_path).op_counts.get("MatMulInteger") == 2


def test_cli_quantize_reports_invalid_recipe_option(
    quanttaas_home: Path, tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["quantize", str(mlp_path), "--recipe", "int4", "--block-size", "48", "-o", str(tmp_path / "q.onnx")]
    )

    err = capsys.readouterr().err
    assert rc == EXIT_ERROR
    assert err.startswith("error [recipe_invalid]: invalid recipe:")
    assert "block_size must be a power of two" in err
    assert not (tmp_path / "q.onnx").exists()


def test_cli_evaluate_json_reports_metrics_and_baseline(
    quanttaas_home: Path,
    tmp_path: Path,
    cnn_path: Path,
    cnn_eval_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    q = tmp_path / "q.onnx"
    assert main(["quantize", str(cnn_path), "--recipe", "dynamic-int8", "-o", str(q)]) == 0
    capsys.readouterr()

    rc = main(
        [
            "evaluate",
            str(q),
            "--data",
            str(cnn_eval_path),
            "--baseline",
            str(cnn_path),
            "--runs",
            "5",
            "--threads",
            "1",
            "--json",
        ]
    )

    body = json.loads(capsys.readouterr().out)
    assert rc == 0
    m, base = body["metrics"], body["baseline"]
    assert body["model"] == str(q)
    assert m["metric_name"] == base["metric_name"] == "top1"
    assert m["size_bytes"] == q.stat().st_size
    assert base["size_bytes"] == cnn_path.stat().st_size
    assert m["latency_runs"] == base["latency_runs"] == 5
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"]
    assert m["threads"] == 1
    assert m["samples"] == 48
    assert m["accuracy_drop_pct"] == pytest.approx((base["metric"] - m["metric"]) * 100)


# --------------------------------------------------------------------------- errors, as a user sees them


def test_cli_reports_model_load_error_without_traceback(quanttaas_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 64)

    proc = _cli("inspect", str(bad), home=quanttaas_home)

    assert proc.returncode == 2
    assert proc.stderr.startswith("error [model_load]")
    assert "corrupt.onnx" in proc.stderr
    assert "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_reports_data_error_without_traceback(
    quanttaas_home: Path, tmp_path: Path, tiny_graph_path: Path
) -> None:
    import numpy as np

    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.zeros((3, 5), np.float32))

    proc = _cli("evaluate", str(tiny_graph_path), "--data", str(data), "--runs", "3", home=quanttaas_home)

    assert proc.returncode == 2
    assert proc.stderr.startswith("error [data_invalid]")
    assert "axis 1 is 5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_unknown_recipe_choice(
    quanttaas_home: Path, tiny_graph_path: Path, tmp_path: Path
) -> None:
    proc = _cli(
        "quantize",
        str(tiny_graph_path),
        "--recipe",
        "int3",
        "-o",
        str(tmp_path / "q.onnx"),
        home=quanttaas_home,
    )

    assert proc.returncode == 2
    assert "invalid choice: 'int3'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "q.onnx").exists()


def test_cli_reports_not_found_for_unknown_model(
    quanttaas_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(["inspect", str(tmp_path / "missing.onnx")])

    err = capsys.readouterr().err
    assert rc == EXIT_ERROR
    assert err.startswith("error [not_found]")
    assert "missing.onnx" in err


def test_cli_inspect_of_external_data_model_reports_total_size(
    quanttaas_home: Path, tmp_path: Path, make_tiny_graph: object, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save(make_tiny_graph(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)  # type: ignore[operator]

    assert main(["inspect", str(path), "--json"]) == 0

    body = json.loads(capsys.readouterr().out)
    assert body["external_data_bytes"] == (tmp_path / "w.bin").stat().st_size
    assert body["size_bytes"] == path.stat().st_size + body["external_data_bytes"]
