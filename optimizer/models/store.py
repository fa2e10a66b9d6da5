"""The model store: models are copied in once, validated, named by content, and never changed afterwards.

Layout: ``<home>/models/<id>/model.onnx`` plus ``ref.json``. An id is ``<name>-<sha256[:12]>``. Adding writes into a
temporary folder beside the target and renames it into place, so a failed or concurrent add never leaves a
half-written model, and a bad file never replaces a stored one.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path

from optimizer.errors import ModelLoadError, NotFoundError
from optimizer.models.convert import PT2_SUFFIXES, convert_pt2_to_onnx
from optimizer.models.files import copy_model, external_files, model_files
from optimizer.models.inspect import validate_model
from optimizer.settings import get_settings
from optimizer.types import ModelRef

MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return s[:40] or "model"


class ModelStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else get_settings().home / "models"

    def add(self, path: str | Path, name: str | None = None) -> ModelRef:
        """Validate ``path`` (.onnx, or .pt2 converted to ONNX) and store it; returns its reference.

        Adding the same content twice returns the stored reference.

        Raises:
            ModelLoadError: the file is not a valid model: unreadable, a malformed graph (onnx.checker's full
                check), tensors whose declared size their bytes do not back, missing external data (nothing is
                stored then).
        """
        src = Path(path)
        if not src.is_file():
            raise ModelLoadError(f"model file not found: {src}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=self.root))
        try:
            staged = tmp / "model.onnx"
            if src.suffix.lower() in PT2_SUFFIXES:
                convert_pt2_to_onnx(src, staged)
                info = validate_model(staged)  # raises ModelLoadError before anything is stored
            else:
                # inspected where it lies: a staged copy has no external data files beside it, so a model that
                # keeps its weights in one looked weight-free and was stored without them
                info = validate_model(src)  # a file that is not a model is refused before anything else
                missing = [n for n in external_files(src) if not (src.parent / n).is_file()]
                if missing:
                    raise ModelLoadError(
                        f"{src.name} keeps its weights in external data files that are missing: {missing}",
                        hint="put the data files the model names next to it (same folder, same names)",
                    )
                copy_model(src, staged)  # with its external data files (models over 2 GB keep weights beside)
            digest = sha256_file(staged)
            for extra in model_files(staged)[1:]:
                digest = hashlib.sha256((digest + sha256_file(extra)).encode()).hexdigest()
            model_id = f"{slug(name or src.stem)}-{digest[:12]}"
            final = self.root / model_id
            ref = ModelRef(
                id=model_id, path=str(final / "model.onnx"), sha256=digest, size_bytes=info.size_bytes
            )
            if final.exists():
                return self.get(model_id)
            (tmp / "ref.json").write_text(ref.model_dump_json(indent=2))
            try:
                tmp.rename(final)
            except OSError:  # another process stored the same content first
                return self.get(model_id)
            return ref
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get(self, model_id: str) -> ModelRef:
        """Raises NotFoundError for an unknown or malformed id (ids never reach the file system unchecked)."""
        if not MODEL_ID_RE.match(model_id) or ".." in model_id:
            raise NotFoundError(
                f"no stored model {model_id!r}", hint="list the stored models to get a valid id"
            )
        ref_file = self.root / model_id / "ref.json"
        if not ref_file.is_file():
            raise NotFoundError(
                f"no stored model {model_id!r}", hint="list the stored models to get a valid id"
            )
        return ModelRef.model_validate_json(ref_file.read_text())

    def list(self) -> list[ModelRef]:
        if not self.root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(self.root.iterdir()) if (p / "ref.json").is_file()]
