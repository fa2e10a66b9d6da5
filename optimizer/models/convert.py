"""PyTorch ``torch.export`` programs (``.pt2``) to ONNX, on the way into the model store.

``torch.export.load`` may fall back to ``torch.load(weights_only=False)`` for some payloads, which would unpickle
untrusted code. The conversion therefore runs in a child process with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``, which
makes every ``torch.load`` inside it weights-only, and a crash or hang in the exporter cannot take the caller down.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from optimizer.errors import ModelLoadError

log = logging.getLogger(__name__)

PT2_SUFFIXES = (".pt2",)
CONVERT_TIMEOUT_S = 600


def _child(src: str, dst: str) -> None:  # pragma: no cover - runs in the child process
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    ep = torch.export.load(src)
    torch.onnx.export(ep, f=dst, dynamo=True, external_data=False, verbose=False)


def convert_pt2_to_onnx(src: str | Path, dst: str | Path) -> Path:
    """Convert the torch.export program at ``src`` to a self-contained ONNX file at ``dst``.

    Raises:
        ModelLoadError: ``src`` is not a loadable ``.pt2`` program, or the ONNX exporter fails on it.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ModelLoadError(f"model file not found: {src}")
    if not zipfile.is_zipfile(src):  # every torch.export.save archive is a zip: refuse others without a child
        raise ModelLoadError(
            f"{src.name} is not a torch.export archive (not a zip file)",
            hint="save it with torch.export.save(torch.export.export(model, args), 'model.pt2')",
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
    code = "import sys; from optimizer.models.convert import _child; _child(sys.argv[1], sys.argv[2])"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(src), str(dst)],
            env=env,
            capture_output=True,
            text=True,
            timeout=CONVERT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ModelLoadError(f"converting {src.name} to ONNX took over {CONVERT_TIMEOUT_S} s") from e
    if proc.returncode != 0 or not dst.is_file():
        dst.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelLoadError(
            f"{src.name} could not be converted from torch.export to ONNX: {last[:300]}",
            hint="save it with torch.export.save(torch.export.export(model, args), 'model.pt2'), "
            "or export ONNX yourself with torch.onnx.export",
        )
    return dst


def torch_to_onnx(
    module: Any,
    example_inputs: tuple[Any, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = 17,
) -> None:
    """Export a torch module to one self-contained ONNX file (weights inside, no ``.data`` side file).

    Uses the TorchScript exporter (``dynamo=False``: 0.2 s for the digits CNN, 2 s for MiniLM against 4 s and
    9 s for the dynamo exporter here) and falls back to the dynamo exporter when the former is unavailable.
    Used by the zoo's builders and the torch techniques; imports torch.

    Raises:
        Exception: whatever ``torch.onnx.export`` raises when both exporters fail (the caller wraps it).
    """
    import warnings

    import torch

    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module,
                example_inputs,
                str(path),
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,  # type: ignore[arg-type]
                opset_version=opset,
            )
    except Exception as legacy_error:  # pragma: no cover - only when the TorchScript exporter is gone
        log.info("TorchScript ONNX export failed (%s); using the dynamo exporter", legacy_error)
        dims: dict[str, Any] = {}
        shapes: dict[str, dict[int, Any]] = {}
        for name in input_names:
            shapes[name] = {
                axis: dims.setdefault(sym, torch.export.Dim(sym.replace(" ", "_"), min=1, max=65536))
                for axis, sym in dynamic_axes.get(name, {}).items()
            }
        for stale in (path, path.with_name(path.name + ".data")):
            stale.unlink(missing_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example_inputs,
                str(path),
                dynamo=True,
                external_data=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=tuple(shapes[name] for name in input_names),
                opset_version=max(opset, 18),
            )
