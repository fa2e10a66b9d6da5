"""Pre-processing that every quantizer needs, done once per model and never in place.

- weights held in ``Constant`` nodes (Paddle2ONNX and others) move into initializers, where quantizers see them;
- the default opset is raised to 13 when per-channel QDQ needs it (older opsets give invalid models);
- onnxruntime's ``quant_pre_process`` runs shape inference and graph clean-up (falls back to plain ONNX shape
  inference when the symbolic pass cannot handle a model).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import version_converter

from optimizer.errors import TechniqueError
from optimizer.models.files import is_large, save_model
from optimizer.models.inspect import _INDEX_TYPES, default_opset, load_onnx

log = logging.getLogger(__name__)

QDQ_MIN_OPSET = 13
_cwd_lock = threading.Lock()


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Run with ``folder`` as the working directory. onnxruntime's symbolic shape inference dumps
    ``sym_shape_infer_temp.onnx`` (+ a data file) into the working directory when it gives up; this keeps those
    dumps in a private folder. The lock serialises the (process-wide) directory change between threads."""
    with _cwd_lock:
        old = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(old)


def constants_to_initializers(model: onnx.ModelProto, min_elements: int = 2) -> int:
    """Move non-index ``Constant`` tensors with at least ``min_elements`` values into initializers (in place).

    Returns the number of Constant nodes moved.
    """
    keep: list[onnx.NodeProto] = []
    moved = 0
    for node in model.graph.node:
        tensor = None
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = node.attribute[0].t
            n = 1
            for d in t.dims:
                n *= d
            if t.data_type not in _INDEX_TYPES and n >= min_elements:
                tensor = t
        if tensor is None:
            keep.append(node)
            continue
        init = onnx.TensorProto()
        init.CopyFrom(tensor)
        init.name = node.output[0]
        model.graph.initializer.append(init)
        moved += 1
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return moved


def upgrade_opset(model: onnx.ModelProto, target: int = QDQ_MIN_OPSET) -> onnx.ModelProto:
    """Return ``model`` converted to default opset ``target`` when it is older.

    Raises:
        TechniqueError: the ONNX version converter cannot convert this model.
    """
    current = default_opset(model) or 0
    if current >= target:
        return model
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as e:  # the converter raises plain RuntimeErrors from C++
        raise TechniqueError(
            f"could not convert the model from opset {current} to {target}: {str(e)[:200]}",
            hint="re-export the model with opset 13 or later, or use per-tensor quantization",
        ) from e
    return converted


def prepare_model(
    src: str | Path,
    dst: str | Path,
    *,
    min_opset: int = 0,
    optimize: bool = True,
    notes: list[str] | None = None,
) -> Path:
    """Write a quantization-ready copy of ``src`` to ``dst`` and return ``dst``. ``notes`` (when given) receives
    what was done beyond the usual (Constant weights moved, opset converted, a shape-inference fallback).

    Raises:
        ModelLoadError: ``src`` is not a valid model.
        TechniqueError: the opset conversion or the pre-processing failed.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst).resolve()
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = load_onnx(src)
    say = notes.append if notes is not None else (lambda _: None)
    moved = constants_to_initializers(model)
    if moved:
        log.info("moved %d Constant weights into initializers", moved)
        say(f"moved {moved} Constant-node weights into initializers (the quantizers only see initializers)")
    if min_opset:
        before = default_opset(model) or 0
        model = upgrade_opset(model, min_opset)
        if before < min_opset:
            say(f"converted the model from opset {before} to {min_opset} (per-channel QDQ needs it)")
    staged = dst.with_name(dst.stem + ".staged.onnx")
    large = is_large(model)
    save_model(model, staged, external=large)
    try:
        try:
            with tempfile.TemporaryDirectory(prefix="quanttaas-pre-") as scratch, _in_folder(Path(scratch)):
                quant_pre_process(
                    str(staged), str(dst), skip_optimization=not optimize, save_as_external_data=large
                )
        except Exception as e:
            # symbolic shape inference gives up on some graphs (PP-OCR); ONNX shape inference plus onnxruntime's
            # graph optimisation (which folds BatchNorm and constants) is what quantization needs most
            log.info("symbolic shape inference failed (%s); retrying without it", e)
            say(f"symbolic shape inference failed ({str(e)[:100]}); pre-processed with ONNX shape inference")
            quant_pre_process(
                str(staged),
                str(dst),
                skip_optimization=not optimize,
                skip_symbolic_shape=True,
                save_as_external_data=large,
            )
    except Exception as e:
        log.warning("quant_pre_process failed (%s); falling back to plain ONNX shape inference", e)
        say(f"onnxruntime's pre-processing failed ({str(e)[:100]}); plain ONNX shape inference instead")
        try:
            save_model(onnx.shape_inference.infer_shapes(model), dst, external=large)
        except Exception as e2:
            say(f"ONNX shape inference failed too ({str(e2)[:100]}); the model is quantized without it")
            save_model(model, dst, external=large)
    finally:
        for f in [staged, staged.with_name(staged.name + ".data")]:
            f.unlink(missing_ok=True)
    return dst
