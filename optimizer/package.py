"""Package one measured candidate so it can be shipped as it is.

:func:`package_candidate` writes into a new folder::

    model.onnx        the candidate's model, byte for byte
    run.py            a small runnable example with onnxruntime (numpy + onnxruntime only)
    contract.json     the input/output contract: names, dtypes, shapes (symbolic axes named), the metric, opset
    metrics.json      what the sweep measured: the candidate, the original, and each step of a chain
    recipe.json       the recipe that made it (kind, version, every field), to reproduce it
    requirements.txt  what run.py needs
    README.md         the same, for people
    sample.npz        (when sample data is given) the first samples, so run.py runs on real inputs

A candidate is named by a sweep's output folder or ``report.json`` and an id: ``RUN_DIR#ID``,
``RUN_DIR/report.json#ID``, ``RUN_DIR/candidates/ID.onnx``, or just ``RUN_DIR`` (the recommended candidate).
The folder is written next to its target and renamed into place, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from optimizer.errors import InputError, NotFoundError
from optimizer.measure.data import load_data, save_data
from optimizer.models.files import copy_model
from optimizer.models.inspect import default_opset, inspect_model, load_onnx
from optimizer.search.pareto import ParetoReport
from optimizer.types import Candidate, Frozen
from optimizer.units import format_bytes

__all__ = ["PackageResult", "load_report", "package_candidate", "resolve_candidate"]

REPORT_FILE = "report.json"
SAMPLE_FILE = "sample.npz"
SAMPLE_SIZE = 8


class PackageResult(Frozen):
    """What :func:`package_candidate` wrote."""

    out_dir: str
    candidate_id: str
    recipe: str
    files: list[str]
    model_sha256: str
    size_bytes: int


def load_report(path: str | Path) -> ParetoReport:
    """A sweep's ``report.json`` (or the folder that holds it).

    Raises:
        NotFoundError: there is no report there. InputError: the file is not a sweep report.
    """
    p = Path(path)
    if p.is_dir():
        p = p / REPORT_FILE
    if not p.is_file():
        raise NotFoundError(
            f"no sweep report at {p}",
            hint="give the output folder of `quanttaas optimize` (it holds report.json)",
        )
    try:
        return ParetoReport.model_validate_json(p.read_text())
    except ValueError as e:
        raise InputError(f"{p} is not a sweep report: {str(e)[:300]}") from e


def resolve_candidate(spec: str) -> tuple[Path, str | None]:
    """Split a candidate spec into (report.json path, candidate id or None for the recommended one).

    Forms: ``RUN_DIR#ID``, ``REPORT.json#ID``, ``RUN_DIR/candidates/ID.onnx``, ``RUN_DIR/best.onnx``,
    ``RUN_DIR``, ``REPORT.json``.

    Raises:
        NotFoundError: the spec names no sweep output.
    """
    where, _, cid = spec.partition("#")
    p = Path(where)
    if p.suffix == ".onnx":
        run_dir = p.parent.parent if p.parent.name == "candidates" else p.parent
        report = run_dir / REPORT_FILE
        if not report.is_file():
            raise NotFoundError(
                f"{p} is not inside a sweep output folder (no {report})",
                hint="package a candidate of `quanttaas optimize`: RUN_DIR#CANDIDATE_ID",
            )
        return report, (cid or (None if p.name == "best.onnx" else p.stem))
    report = p / REPORT_FILE if p.is_dir() else p
    if not report.is_file():
        raise NotFoundError(
            f"no sweep report at {report}",
            hint="give RUN_DIR#CANDIDATE_ID, where RUN_DIR is the output folder of `quanttaas optimize`",
        )
    return report, (cid or None)


def _candidate_model(report_path: Path, cand: Candidate) -> Path:
    # the report names absolute paths; a moved run folder still holds the file under candidates/
    for p in (
        Path(cand.model_path) if cand.model_path else None,
        report_path.parent / "candidates" / f"{cand.id}.onnx",
    ):
        if p is not None and p.is_file():
            return p
    raise NotFoundError(
        f"the model file of candidate {cand.id} is missing ({cand.model_path})",
        hint="package from the sweep's own output folder, with its candidates/ folder",
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _contract(model_path: Path, cand: Candidate, report: ParetoReport) -> dict[str, Any]:
    info = inspect_model(model_path)
    import onnxruntime

    def tensors(ts: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in ts]

    return {
        "format": "onnx",
        "opset": default_opset(load_onnx(model_path, load_external_data=False)),
        "inputs": tensors(info.inputs),
        "outputs": tensors(info.outputs),
        "axes": "integers are fixed; strings name symbolic axes (the first is the batch: any size >= 1)",
        "metric": report.baseline.metric_name,
        "runtime": {
            "onnxruntime_measured_with": onnxruntime.__version__,
            "provider": cand.metrics.backend if cand.metrics else "CPUExecutionProvider",
        },
        "quantized": info.quantized,
        "quantization_markers": info.quantization_markers,
    }


def _metrics(cand: Candidate, report: ParetoReport) -> dict[str, Any]:
    assert cand.metrics is not None
    m, b = cand.metrics, report.baseline
    ratios: dict[str, float | None] = {
        "size_vs_original": round(m.size_bytes / b.size_bytes, 4) if b.size_bytes else None,
        "speedup_p50": round(b.latency_ms_p50 / m.latency_ms_p50, 3)
        if m.latency_ms_p50 and b.latency_ms_p50
        else None,
    }
    if m.compressed_size_bytes and b.compressed_size_bytes:
        ratios["compressed_size_vs_original"] = round(m.compressed_size_bytes / b.compressed_size_bytes, 4)
    return {
        "candidate_id": cand.id,
        "model": report.model,
        "candidate": m.model_dump(mode="json"),
        "original": b.model_dump(mode="json"),
        "ratios": ratios,
        "steps": cand.detail.get("steps", []),
        "detail": {k: v for k, v in cand.detail.items() if k != "steps"},
        "goal": report.goal.model_dump(mode="json") if report.goal else None,
        "recommended": report.recommended == cand.id,
        "on_front": cand.id in report.front,
    }


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _readme(cand: Candidate, report: ParetoReport, contract: dict[str, Any], has_sample: bool) -> str:
    assert cand.metrics is not None
    m, b = cand.metrics, report.baseline
    lines = [
        f"# {cand.id}",
        "",
        f"`{cand.recipe.label}` applied to `{report.model}`, measured on onnxruntime "
        f"({m.backend}, {m.threads} thread(s), batch {m.batch_size}, {m.samples} samples).",
        "",
        "| | size | compressed (gzip -6) | " + m.metric_name + " | drop (pt) | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in (("original", b), ("this model", m)):
        comp = format_bytes(x.compressed_size_bytes) if x.compressed_size_bytes else "-"
        lines.append(
            f"| {name} | {format_bytes(x.size_bytes)} | {comp} | {_fmt(x.metric, '.4f')} | "
            f"{_fmt(x.accuracy_drop_pct, '+.2f')} | {_fmt(x.latency_ms_p50, '.3f')} | {_fmt(x.latency_ms_p95, '.3f')} |"
        )
    steps = cand.detail.get("steps") or []
    if steps:
        lines += [
            "",
            "Steps, in order (each measured after it ran):",
            "",
            "| step | size | compressed | metric | fine-tuned |",
            "|---|---|---|---|---|",
        ]
        for s in steps:
            lines.append(
                f"| {s.get('step')}. {s.get('label')} | {format_bytes(s.get('size_bytes') or 0)} | "
                f"{format_bytes(s.get('compressed_size_bytes') or 0)} | {_fmt(s.get('metric'), '.4f')} | "
                f"{'yes' if s.get('finetuned') else 'no'}: {s.get('finetune', '')} |"
            )
    for key in ("note", "limits"):
        if key in cand.detail:
            lines += ["", f"Note: {cand.detail[key]}."]
    lines += ["", "## Inputs and outputs", ""]
    for kind in ("inputs", "outputs"):
        for t in contract[kind]:
            lines.append(f"- {kind[:-1]} `{t['name']}`: {t['dtype']} {t['shape']}")
    lines += [
        "",
        contract["axes"].capitalize() + ".",
        "",
        "## Run it",
        "",
        "```bash",
        "pip install -r requirements.txt",
        "python run.py"
        + (
            "                 # runs the bundled sample.npz"
            if has_sample
            else "   # random inputs of the contract's shape"
        ),
        "python run.py --data DATA.npz   # arrays named after the inputs; `labels` for top-1",
        "```",
        "",
        "`metrics.json` holds every number above, `recipe.json` the recipe that made the model, `contract.json` the "
        "interface.",
        "",
    ]
    return "\n".join(lines)


RUN_PY = '''#!/usr/bin/env python3
"""Run the packaged model with onnxruntime.

    python run.py                      # sample.npz when bundled, else random inputs of the contract's shape
    python run.py --data DATA.npz      # arrays named after the inputs; an integer `labels` array adds top-1
    python run.py --json               # machine-readable summary

Needs only numpy and onnxruntime (requirements.txt).
"""

import argparse
import json
import pathlib
import time

import numpy as np
import onnxruntime as ort

HERE = pathlib.Path(__file__).resolve().parent
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64,
          "int32": np.int32, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def inputs_for(contract, data_path, batch):
    """The feed dict (and labels, when the data has them)."""
    if data_path is not None:
        with np.load(data_path, allow_pickle=False) as z:
            feeds = {t["name"]: z[t["name"]] for t in contract["inputs"]}
            labels = z["labels"] if "labels" in z.files else None
        return feeds, labels
    rng = np.random.default_rng(0)
    feeds = {}
    for t in contract["inputs"]:
        shape = [batch if i == 0 and not isinstance(d, int) else d if isinstance(d, int) and d > 0 else 1
                 for i, d in enumerate(t["shape"])]
        dtype = DTYPES.get(t["dtype"], np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[t["name"]] = rng.random(shape).astype(dtype)
        else:
            feeds[t["name"]] = np.zeros(shape, dtype=dtype)
    return feeds, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a .npz whose arrays are named after the model inputs")
    parser.add_argument("--batch", type=int, default=4, help="batch size of random inputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    contract = json.loads((HERE / "contract.json").read_text())
    data = args.data or (str(HERE / "sample.npz") if (HERE / "sample.npz").is_file() else None)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(HERE / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])
    feeds, labels = inputs_for(contract, data, args.batch)
    start = time.perf_counter()
    outputs = session.run(None, feeds)
    ms = (time.perf_counter() - start) * 1000
    summary = {"data": data or "random", "samples": int(next(iter(feeds.values())).shape[0]), "ms": round(ms, 3),
               "outputs": {t["name"]: list(o.shape) for t, o in zip(contract["outputs"], outputs)}}
    first = outputs[0]
    if first.ndim == 2:
        summary["predictions"] = first.argmax(axis=1).tolist()[:16]
    if labels is not None and first.ndim == 2 and np.issubdtype(labels.dtype, np.integer):
        summary["top1"] = float((first.argmax(axis=1) == labels[: first.shape[0]]).mean())
    if args.json:
        print(json.dumps(summary))
        return
    print(f"ran model.onnx on {summary['samples']} sample(s) from {summary['data']} in {ms:.2f} ms")
    for name, shape in summary["outputs"].items():
        print(f"  output {name}: shape {shape}")
    if "predictions" in summary:
        print(f"  predicted classes: {summary['predictions']}")
    if "top1" in summary:
        print(f"  top-1 against the labels: {summary['top1']:.4f}")


if __name__ == "__main__":
    main()
'''


def package_candidate(
    report: ParetoReport | str | Path,
    candidate_id: str | None,
    out_dir: str | Path,
    *,
    sample_data: str | Path | None = None,
    sample_size: int = SAMPLE_SIZE,
    overwrite: bool = False,
) -> PackageResult:
    """Write the deployable package of one candidate into ``out_dir`` (see the module docstring).

    ``report`` is a loaded report or the path of a ``report.json`` (or its folder); ``candidate_id`` None means
    the recommended candidate. ``sample_data`` (a .npz matching the model) adds its first ``sample_size``
    samples as ``sample.npz``.

    Raises:
        NotFoundError: no such report or candidate, no recommendation, or the model file is gone.
        InputError: the candidate failed (there is no model), or ``out_dir`` exists and is not empty (pass
            ``overwrite=True`` to replace it).
        DataError: ``sample_data`` does not fit the model.
    """
    report_path = Path("report.json")
    if not isinstance(report, ParetoReport):
        report_path = Path(report) / REPORT_FILE if Path(report).is_dir() else Path(report)
        report = load_report(report_path)
    if candidate_id is None:
        if report.recommended is None:
            raise NotFoundError(
                "the sweep recommended no candidate, so there is no default to package",
                hint="name one: RUN_DIR#CANDIDATE_ID (`quanttaas optimize` lists the ids)",
            )
        candidate_id = report.recommended
    cand = report.candidate(candidate_id)
    if not cand.ok or cand.metrics is None:
        msg = cand.error.message if cand.error else "it was never measured"
        raise InputError(f"candidate {cand.id} failed ({msg}); there is no model to package")
    model = _candidate_model(report_path, cand)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InputError(
            f"{out} already exists and is not empty",
            hint="choose a new folder, or pass --force to replace it",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.package-", dir=out.parent))
    try:
        copy_model(model, tmp / "model.onnx")  # with its external data files
        contract = _contract(tmp / "model.onnx", cand, report)
        has_sample = False
        if sample_data is not None:
            info = inspect_model(tmp / "model.onnx")
            data = load_data(sample_data, info.inputs, metric=report.baseline.metric_name)
            n = min(sample_size, data.samples)
            labels = data.labels[:n] if data.labels is not None and len(data.labels) == data.samples else None
            save_data(tmp / SAMPLE_FILE, {k: v[:n] for k, v in data.inputs.items()}, labels)
            has_sample = True
        import onnxruntime

        files = {
            "contract.json": json.dumps(contract, indent=2) + "\n",
            "metrics.json": json.dumps(_metrics(cand, report), indent=2) + "\n",
            "recipe.json": json.dumps(
                {"label": cand.recipe.label, **cand.recipe.model_dump(mode="json")}, indent=2
            )
            + "\n",
            "requirements.txt": f"onnxruntime>={'.'.join(onnxruntime.__version__.split('.')[:2])}\nnumpy\n",
            "run.py": RUN_PY,
            "README.md": _readme(cand, report, contract, has_sample),
        }
        for name, text in files.items():
            (tmp / name).write_text(text)
        os.chmod(tmp / "run.py", 0o755)
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    written = sorted(p.name for p in out.iterdir())
    return PackageResult(
        out_dir=str(out),
        candidate_id=cand.id,
        recipe=cand.recipe.label,
        files=written,
        model_sha256=_sha256(out / "model.onnx"),
        size_bytes=(out / "model.onnx").stat().st_size,
    )
