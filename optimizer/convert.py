"""PyTorch ``torch.export`` programs (``.pt2``) to ONNX, on the way into the model store.

``torch.export.load`` may fall back to ``torch.load(weights_only=False)`` for some payloads, which would unpickle
untrusted code. The conversion therefore runs in a child process with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``, which
makes every ``torch.load`` inside it weights-only, and a crash or hang in the exporter cannot take the caller down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from optimizer.errors import ModelLoadError

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
    code = "import sys; from optimizer.convert import _child; _child(sys.argv[1], sys.argv[2])"
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
