"""Layer-wise views of a QDQ model beside its float original: what bias correction and learned rounding work on.

onnxruntime's QDQ quantizer keeps the name of every Conv/Gemm/MatMul node, so a layer is matched across the two
models by node name. In the QDQ model a layer reads a DequantizeLinear output (its quantized input activation) and
an int8 weight initializer through a DequantizeLinear (``<w>_quantized``, ``<w>_scale``, ``<w>_zero_point``,
``axis``); its bias, when it has one, is an int32 initializer dequantized with ``scale = s_input * s_weight``. The
layer's own output is its float result before the next QuantizeLinear (where a fused ReLU has been removed, this
is the pre-activation value, as in the float model's layer output).

:func:`qdq_layers` lists those layers; :func:`collect` streams calibration batches through both models and hands
each batch's intermediate tensors to a callback, so nothing but running sums is held in memory;
:func:`weight_view` and :func:`input_columns` put a layer's weights and inputs in one shape, ``[groups, outputs,
K]`` and ``[groups, K, positions]``, so a Conv (any groups, strides, pads, dilations), a Gemm and a MatMul are the
same least-squares problem per output channel.

May import: onnx, onnxruntime and numpy (no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from optimizer.measure.data import Dataset

#: the layers with a quantized weight that these techniques tune
TUNED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class QdqLayer:
    """One weight-carrying layer of a QDQ model, matched to the float model's node of the same name."""

    name: str
    op_type: str
    x_q: str  # the layer's input activation in the QDQ model (a DequantizeLinear output)
    y_q: str  # the layer's output in the QDQ model
    x_f: str  # the same input in the float model
    y_f: str  # the same output in the float model
    w_q: str  # the int8 weight initializer
    w_scale: str
    w_zero_point: str
    axis: int | None  # per-channel axis of the weight's DequantizeLinear (None: per tensor)
    b_q: str | None = None  # the int32 bias initializer, when the layer has a bias
    b_scale: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def qdq_layers(qdq: onnx.ModelProto, fp: onnx.ModelProto) -> list[QdqLayer]:
    """The Conv/Gemm/MatMul layers of ``qdq`` whose weight is a constant int8 tensor behind a DequantizeLinear and
    whose activation input is dequantized, matched by node name to ``fp``; in graph (topological) order. Layers
    the float model does not have, 1-D/3-D convolutions and weights shared by several layers are left out."""
    inits = {i.name: i for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in qdq.graph.node:
        for x in n.input:
            uses[x] = uses.get(x, 0) + 1
    fp_nodes = {n.name: n for n in fp.graph.node if n.name}
    out: list[QdqLayer] = []
    for node in qdq.graph.node:
        if node.op_type not in TUNED_OPS or node.name not in fp_nodes or len(node.input) < 2:
            continue
        wdq = producer.get(node.input[1])
        xdq = producer.get(node.input[0])
        if wdq is None or wdq.op_type != "DequantizeLinear" or wdq.input[0] not in inits:
            continue
        if xdq is None or xdq.op_type != "DequantizeLinear" or uses.get(node.input[1], 0) != 1:
            continue
        w_init = inits[wdq.input[0]]
        if w_init.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            continue
        attrs = _attrs(node)
        if node.op_type == "Conv" and len(w_init.dims) != 4:
            continue
        if node.op_type == "MatMul" and len(w_init.dims) != 2:
            continue
        if node.op_type == "Gemm" and (attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0):
            continue
        axis = next(
            (int(onnx.helper.get_attribute_value(a)) for a in wdq.attribute if a.name == "axis"), None
        )
        if numpy_helper.to_array(inits[wdq.input[1]]).size == 1:
            axis = None
        b_q = b_scale = None
        if len(node.input) > 2 and node.input[2]:
            bdq = producer.get(node.input[2])
            if (
                bdq is not None
                and bdq.op_type == "DequantizeLinear"
                and bdq.input[0] in inits
                and inits[bdq.input[0]].data_type == onnx.TensorProto.INT32
            ):
                b_q, b_scale = bdq.input[0], bdq.input[1]
        f = fp_nodes[node.name]
        out.append(
            QdqLayer(
                name=node.name,
                op_type=node.op_type,
                x_q=node.input[0],
                y_q=node.output[0],
                x_f=f.input[0],
                y_f=f.output[0],
                w_q=wdq.input[0],
                w_scale=wdq.input[1],
                w_zero_point=wdq.input[2] if len(wdq.input) > 2 else "",
                axis=axis,
                b_q=b_q,
                b_scale=b_scale,
                attrs=attrs,
            )
        )
    return out


# --------------------------------------------------------------------------- running both models


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> bytes:
    """``model`` serialized with ``names`` added as (float) graph outputs, so a session returns them."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
            have.add(n)
    return m.SerializeToString()


def session(model_bytes: bytes, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def batches(data: Dataset, batch: int) -> Iterator[dict[str, np.ndarray]]:
    for i in range(0, data.samples, batch):
        yield {k: v[i : i + batch] for k, v in data.inputs.items()}


def collect(
    fp: onnx.ModelProto,
    qdq: onnx.ModelProto,
    fp_names: Sequence[str],
    qdq_names: Sequence[str],
    data: Dataset,
    on_batch: Callable[[int, dict[str, np.ndarray], dict[str, np.ndarray]], None],
    *,
    batch: int = 8,
) -> None:
    """Run every batch of ``data`` through both models and call ``on_batch(index, float_tensors, qdq_tensors)``
    with the named intermediate tensors of each (the same samples in the same order)."""
    fp_sess = session(with_outputs(fp, fp_names))
    q_sess = session(with_outputs(qdq, qdq_names))
    fp_inputs = {i.name for i in fp_sess.get_inputs()}
    q_inputs = {i.name for i in q_sess.get_inputs()}
    fp_out, q_out = list(dict.fromkeys(fp_names)), list(dict.fromkeys(qdq_names))
    for i, feed in enumerate(batches(data, batch)):
        f = dict(
            zip(fp_out, fp_sess.run(fp_out, {k: v for k, v in feed.items() if k in fp_inputs}), strict=True)
        )
        q = dict(zip(q_out, q_sess.run(q_out, {k: v for k, v in feed.items() if k in q_inputs}), strict=True))
        on_batch(i, f, q)


# --------------------------------------------------------------------------- one shape for every layer


def groups_of(layer: QdqLayer) -> int:
    return int(layer.attrs.get("group", 1)) if layer.op_type == "Conv" else 1


def weight_view(layer: QdqLayer, w: np.ndarray) -> np.ndarray:
    """The layer's weight as ``[groups, outputs per group, K]`` (K: the inputs one output reads)."""
    if layer.op_type == "Conv":
        g = groups_of(layer)
        return w.reshape(g, w.shape[0] // g, -1)
    if layer.op_type == "Gemm" and layer.attrs.get("transB", 0):
        return w[None]  # [N, K]
    return w.T[None]  # MatMul / Gemm without transB: [K, N] -> [N, K]


def weight_unview(layer: QdqLayer, v: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`weight_view`."""
    if layer.op_type == "Conv":
        return v.reshape(shape)
    if layer.op_type == "Gemm" and layer.attrs.get("transB", 0):
        return v[0].reshape(shape)
    return v[0].T.reshape(shape)


def channel_view(layer: QdqLayer, values: np.ndarray, outputs: int) -> np.ndarray:
    """Per-output-channel values (a per-channel scale, or one per-tensor value) as ``[groups, outputs/g, 1]``."""
    g = groups_of(layer)
    full = np.broadcast_to(values.reshape(-1) if values.size > 1 else values.reshape(1), (outputs,))
    return np.asarray(full, dtype=np.float64).reshape(g, outputs // g, 1)


def output_channels(y: np.ndarray, layer: QdqLayer) -> np.ndarray:
    """A layer output as ``[channels, positions]`` (Conv: axis 1; Gemm/MatMul: the last axis)."""
    if layer.op_type == "Conv":
        return np.moveaxis(y, 1, 0).reshape(y.shape[1], -1)
    return y.reshape(-1, y.shape[-1]).T


def positions(y_shape: Sequence[int], layer: QdqLayer) -> int:
    if layer.op_type == "Conv":
        return int(np.prod(y_shape)) // int(y_shape[1])
    return int(np.prod(y_shape)) // int(y_shape[-1])


def input_columns(layer: QdqLayer, x: np.ndarray, w_shape: Sequence[int], idx: np.ndarray) -> np.ndarray:
    """The inputs each sampled output position reads, as ``[groups, K, len(idx)]``; ``idx`` indexes the
    flattened output positions (batch-major, as :func:`output_channels` orders them)."""
    if layer.op_type != "Conv":
        rows = x.reshape(-1, x.shape[-1])[idx]  # [P, K]
        return rows.T[None].astype(np.float64)
    a = layer.attrs
    kh, kw = int(w_shape[2]), int(w_shape[3])
    sh, sw = [*a.get("strides", [1, 1]), 1, 1][:2]
    dh, dw = [*a.get("dilations", [1, 1]), 1, 1][:2]
    pads = list(a.get("pads", [0, 0, 0, 0])) or [0, 0, 0, 0]
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise ValueError("auto_pad SAME is not supported here")
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    ho, wo = win.shape[2], win.shape[3]
    b, rest = np.divmod(idx, ho * wo)
    oy, ox = np.divmod(rest, wo)
    patches = win[b, :, oy, ox]  # [P, C, kh, kw]
    g = groups_of(layer)
    cols = patches.reshape(len(idx), g, -1)  # [P, g, C/g*kh*kw]
    return np.ascontiguousarray(np.transpose(cols, (1, 2, 0))).astype(np.float64)


def int_range(init: onnx.TensorProto) -> tuple[int, int]:
    """The representable range of a quantized weight's integer type."""
    return (-128, 127) if init.data_type == onnx.TensorProto.INT8 else (0, 255)


def replace_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
            return
    raise KeyError(name)


def initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(i for i in model.graph.initializer if i.name == name)
