"""Read an ONNX model without running it: structure, size, parameters, and whether it is already quantized."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
from onnx import numpy_helper

from optimizer.errors import ModelLoadError
from optimizer.types import LayerInfo, ModelInspection, TensorInfo

# op types that only exist in quantized graphs
QUANT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "ConvInteger",
        "MatMulInteger",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QGemm",
        "MatMulNBits",
        "DynamicQuantizeMatMul",
        "DynamicQuantizeLSTM",
        "MatMulIntegerToFloat",
        "QAttention",
        "QEmbedLayerNormalization",
        "GatherBlockQuantized",
        "MatMulBnb4",
    }
)


def is_quant_op(op_type: str) -> bool:
    """Whether an op type only exists in quantized graphs (onnxruntime's QLinear* family included: QLinearSigmoid,
    QLinearConcat, QLinearAveragePool, ... are written by its QOperator quantizer)."""
    return op_type in QUANT_OPS or op_type.startswith("QLinear")


# the newest default-domain opset this onnx release knows; anything later is from the future or corrupt
MAX_OPSET = onnx.defs.onnx_opset_version()
MIN_OPSET = 7
# integer tensors of these types hold shapes and indices, not weights
_INDEX_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
_NON_LAYER_OPS = {"Constant", "QuantizeLinear", "DequantizeLinear", "Identity", "Cast"}


def load_onnx(path: str | Path, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file.

    Raises:
        ModelLoadError: the file is missing, empty, truncated, not ONNX, has no graph, or an opset onnxruntime
            cannot run.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"model file not found: {p}", hint="give the path of an existing .onnx file")
    if p.stat().st_size == 0:
        raise ModelLoadError(
            f"{p.name} is empty (0 bytes)", hint="the file was not written completely; export it again"
        )
    try:
        model = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-derived errors and others
        raise ModelLoadError(
            f"{p.name} is not a readable ONNX model ({e.__class__.__name__}: {str(e)[:200]})",
            hint="the file is corrupt, truncated or not ONNX; export the model again (torch.onnx.export)",
        ) from e
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(
            f"{p.name} parsed but holds no graph: it is not an ONNX model",
            hint="the file is corrupt, truncated or not ONNX; export the model again",
        )
    opset = default_opset(model)
    if opset is None:
        raise ModelLoadError(
            f"{p.name} declares no default-domain opset", hint="re-export with opset 13 or later"
        )
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelLoadError(
            f"{p.name} uses opset {opset}; supported are {MIN_OPSET} to {MAX_OPSET}",
            hint="re-export the model with an opset in that range (13 to 17 are the safest)",
            details={"opset": opset},
        )
    return model


def default_opset(model: onnx.ModelProto) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def _tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    t = vi.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "unknown"
    shape: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            shape.append(d.dim_param)
        else:
            shape.append(None)
    return TensorInfo(name=vi.name, dtype=dtype, shape=shape)


def _numel(dims: list[int] | tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def model_inputs(model: onnx.ModelProto) -> list[TensorInfo]:
    """The real inputs: graph inputs that are not initializers (old exporters list weights as inputs too)."""
    inits = {i.name for i in model.graph.initializer}
    return [_tensor_info(vi) for vi in model.graph.input if vi.name not in inits]


def weight_tensor_sizes(model: onnx.ModelProto) -> tuple[dict[str, int], dict[str, int]]:
    """Element counts of weight tensors: (initializers, Constant-node outputs), index/shape tensors excluded."""
    inits = {t.name: _numel(t.dims) for t in model.graph.initializer if t.data_type not in _INDEX_TYPES}
    consts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type not in _INDEX_TYPES:
                consts[node.output[0]] = _numel(attr.t.dims)
    return inits, consts


def _external_data_bytes(model: onnx.ModelProto, model_dir: Path) -> int:
    files: set[str] = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    files.add(kv.value)
    return sum((model_dir / f).stat().st_size for f in files if (model_dir / f).is_file())


def inspect_model(path: str | Path) -> ModelInspection:
    """Describe the ONNX model at ``path``.

    Raises:
        ModelLoadError: see :func:`load_onnx`.
    """
    p = Path(path)
    model = load_onnx(p, load_external_data=False)
    graph = model.graph
    inits, consts = weight_tensor_sizes(model)
    weights = {**inits, **consts}
    # a weight seen through DequantizeLinear (QDQ models) still belongs to the layer that consumes it
    dq_source = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in weights
    }
    layers: list[LayerInfo] = []
    for i, node in enumerate(graph.node):
        if node.op_type in _NON_LAYER_OPS:
            continue
        count = sum(weights.get(dq_source.get(x, x), 0) for x in node.input if x)
        if count > 1:
            layers.append(
                LayerInfo(name=node.name or f"{node.op_type}_{i}", op_type=node.op_type, param_count=count)
            )
    op_counts = dict(Counter(n.op_type for n in graph.node).most_common())
    markers = {op: c for op, c in op_counts.items() if is_quant_op(op)}
    ext = _external_data_bytes(model, p.parent)
    return ModelInspection(
        path=str(p),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opset=default_opset(model) or 0,
        ir_version=int(model.ir_version),
        size_bytes=p.stat().st_size + ext,
        external_data_bytes=ext,
        param_count=sum(inits.values()) + sum(consts.values()),
        constant_param_count=sum(consts.values()),
        inputs=model_inputs(model),
        outputs=[_tensor_info(o) for o in graph.output],
        op_counts=op_counts,
        layers=layers,
        quantized=bool(markers),
        quantization_markers=markers,
    )


_PACKED = {
    getattr(onnx.TensorProto, name): per_byte
    for name, per_byte in (("INT4", 2), ("UINT4", 2), ("FLOAT4E2M1", 2), ("INT2", 4), ("UINT2", 4))
    if hasattr(onnx.TensorProto, name)
}
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def _format_bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _declared_bytes(t: onnx.TensorProto) -> int | None:
    """The bytes a tensor's shape and type call for; None for strings and types this onnx cannot size."""
    if t.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    numel = _numel(t.dims)
    if t.data_type in _PACKED:
        return -(-numel // _PACKED[t.data_type])
    try:
        return numel * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        return None


def _check_tensor_size(t: onnx.TensorProto, where: str, model_dir: Path) -> None:
    label = f"{where} {t.name[:100]!r}" if t.name else where
    if any(d < 0 for d in t.dims):
        raise ModelLoadError(f"{label} declares a negative dimension {list(t.dims)[:8]}")
    need = _declared_bytes(t)
    if need is None:
        return
    shape = f"shape {list(t.dims)[:8]} of {onnx.TensorProto.DataType.Name(t.data_type).lower()}"
    if t.data_location == onnx.TensorProto.EXTERNAL:
        info = {kv.key: kv.value for kv in t.external_data}
        location = info.get("location", "")
        file = (model_dir / location).resolve()
        if not location or not file.is_relative_to(model_dir.resolve()):
            raise ModelLoadError(f"{label} keeps its data outside the model's folder ({location[:200]!r})")
        if not file.is_file():
            raise ModelLoadError(
                f"{label} keeps its data in the external data file {location[:200]!r}, which is missing",
                hint="put the data files the model names next to it (same folder, same names), or save the "
                "model as one file: onnx.save(model, path, save_as_external_data=False)",
            )
        try:
            offset, size = int(info.get("offset", 0)), file.stat().st_size
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError:
            raise ModelLoadError(f"{label} has a malformed external data offset or length") from None
        if offset < 0 or length < need or offset + length > size:
            raise ModelLoadError(
                f"{label} declares {shape} ({_format_bytes(need)}) but {location[:200]!r} holds "
                f"{_format_bytes(max(0, min(length, size - offset)))} for it"
            )
        return
    if t.raw_data:
        held = len(t.raw_data)
    else:
        numel = _numel(t.dims)
        count = max(len(getattr(t, f)) for f in _TYPED_FIELDS)
        if t.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
            count //= 2
        if count == numel or (t.data_type in _PACKED and count == need):
            return
        held = count * need // numel if numel else count
    if held != need:
        raise ModelLoadError(
            f"{label} declares {shape} ({_format_bytes(need)}) but holds {_format_bytes(held)}",
            hint="the file is damaged or was not written by an ONNX exporter; export the model again",
        )


def _graph_tensors(graph: onnx.GraphProto) -> list[tuple[onnx.TensorProto, str]]:
    found = [(t, "initializer") for t in graph.initializer]
    found += [(s.values, "sparse initializer") for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                found.append((attr.t, f"tensor of node {node.name or node.op_type!r}"))
            elif attr.type == onnx.AttributeProto.GRAPH:
                found += _graph_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    found += _graph_tensors(g)
    return found


def validate_model(path: str | Path) -> ModelInspection:
    """Everything an upload must pass before it is stored, and its inspection.

    Beyond :func:`load_onnx`: every tensor's declared shape matches the bytes that hold it (an initializer that
    declares 2**42 floats and holds none), external data files exist inside the model's folder and are long
    enough, and ``onnx.checker``'s full check passes (nodes in topological order, so no cycles; types; shape
    inference).

    Raises:
        ModelLoadError: naming the first problem found.
    """
    p = Path(path)
    model = load_onnx(p, load_external_data=False)
    for tensor, where in _graph_tensors(model.graph):
        _check_tensor_size(tensor, where, p.parent)
    # shape inference cannot read tensors kept in external data files (a Reshape's shape among them), so a model
    # with external data gets the structural check (node order, types, attributes) without it
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t, _ in _graph_tensors(model.graph))
    try:
        onnx.checker.check_model(str(p), full_check=not external)
    except Exception as e:  # ValidationError, InferenceError, and whatever the C++ side raises
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise ModelLoadError(
            f"{p.name} is not a valid ONNX model: {' '.join(str(e).split())[:300] or first}",
            hint="the graph is malformed (for instance a cycle, or nodes out of order) or inconsistent; export "
            "the model again with a current exporter",
        ) from e
    return inspect_model(p)


def initializer_array(model: onnx.ModelProto, name: str) -> object:
    """The numpy value of an initializer (for tests and analyses)."""
    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    raise KeyError(name)
