"""Real architectures from the onnx wheel's "light" model zoo, made runnable for speed and size work.

``onnx/backend/test/data/light/light_*.onnx`` ship real networks (ResNet-50, DenseNet-121, Inception, ...) whose
every weight is a ``ConstantOfShape(0.02)``: the graph and the shapes are real, the values are not. This module
replaces each constant with a random initializer of the right shape (He-normal convolution weights, BatchNorm
as identity, a small classifier), frees the batch axis and raises the opset, so the file runs, quantizes and
has the real parameter count (ResNet-50: 25.6 M, about 102 MB). With random weights no accuracy can be measured:
these models are for latency and size only (the speed benchmark, the speed tests).

Light to import; onnx is imported by the builder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from optimizer.errors import NotFoundError

__all__ = ["LIGHT_MODELS", "build_light_model", "light_model_source"]

#: the light models this module knows how to make runnable (input 1x3x224x224 in the wheel)
LIGHT_MODELS: tuple[str, ...] = ("resnet50", "squeezenet", "shufflenet", "densenet121", "inception_v1")


def light_model_source(name: str) -> Path:
    """The wheel's file for ``name``.

    Raises:
        NotFoundError: not a known light model, or the installed onnx wheel does not ship it.
    """
    import onnx

    if name not in LIGHT_MODELS:
        raise NotFoundError(f"unknown light model {name!r}", hint=f"use one of: {', '.join(LIGHT_MODELS)}")
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"
    if not path.is_file():
        raise NotFoundError(
            f"the installed onnx package does not ship {path.name}", hint="install the onnx wheel from PyPI"
        )
    return path


def _random_value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A plausible value for a weight named ``name`` (caffe2 naming: _w weights, _b biases, _bn_s/_bn_b/_rm/_riv
    the BatchNorm scale, shift, mean and variance)."""
    if name.endswith(("_riv_0", "_var_0")):
        return np.ones(shape, np.float32)
    if name.endswith(("_bn_s_0", "_scale_0", "_s_0")):
        return np.ones(shape, np.float32)
    if name.endswith(("_rm_0", "_mean_0", "_b_0", "_bn_b_0")) or len(shape) <= 1:
        return np.zeros(shape, np.float32)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    std = np.sqrt(2.0 / max(fan_in, 1)) if len(shape) == 4 else 0.01
    return (rng.standard_normal(shape) * std).astype(np.float32)


def build_light_model(name: str, out: str | Path, *, seed: int = 0, opset: int = 13) -> Path:
    """Write a runnable copy of the light model ``name`` to ``out`` and return it: random weights in place of the
    ``ConstantOfShape`` nodes, a free batch axis (input ``[N,3,224,224]``) and default opset ``opset``.

    Raises:
        NotFoundError: unknown or missing light model. TechniqueError: the opset conversion fails.
    """
    import onnx
    from onnx import numpy_helper

    from optimizer.models.preprocess import upgrade_opset

    model = onnx.load(str(light_model_source(name)))
    g = model.graph
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in g.initializer}
    keep_nodes = []
    new_inits: list[onnx.TensorProto] = []
    dropped: set[str] = set()
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]).reshape(-1))
            new_inits.append(
                numpy_helper.from_array(_random_value(node.output[0], shape, rng), node.output[0])
            )
            dropped.add(node.input[0])
            continue
        keep_nodes.append(node)
    used = {i for n in keep_nodes for i in n.input}
    kept_inits = [i for i in g.initializer if i.name not in dropped and i.name in used]
    # the caffe2 export lists every initializer as a graph input too; only the data is an input
    init_names = set(inits) | {i.name for i in new_inits}
    data_inputs = [i for i in g.input if i.name not in init_names]
    # a free batch axis: the final Reshape flattens to [N, features] instead of a fixed [1, features]
    for node in keep_nodes:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            target = numpy_helper.to_array(inits[node.input[1]]).copy()
            if target.size >= 1 and target[0] == 1:
                target[0] = -1 if -1 not in target else 0
                kept_inits = [i for i in kept_inits if i.name != node.input[1]]
                kept_inits.append(numpy_helper.from_array(target.astype(np.int64), node.input[1]))
    for vi in [*data_inputs, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.initializer[:]
    g.initializer.extend([*kept_inits, *new_inits])
    del g.input[:]
    g.input.extend(data_inputs)
    del g.value_info[:]
    # IR 3 (the wheel's) wants every initializer listed as an input; from IR 4 on they need not be
    model.ir_version = max(model.ir_version, 7)
    model = upgrade_opset(model, opset)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    onnx.save(model, tmp)
    os.replace(tmp, out)
    return out
