"""Graph structure a technique needs to reason about: which nodes keep a layer in float.

May import: nothing from the library but onnx (pure graph walks).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

#: the layers int8 quantizers act on (a block stops at the next one)
QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")

# ops a "block" may extend through: elementwise activations and shape ops that follow a layer
_BLOCK_STOP = frozenset(QUANTIZABLE_OPS)
_BLOCK_MAX_NODES = 12


def layer_blocks(model: onnx.ModelProto, layers: Sequence[str]) -> tuple[str, ...]:
    """The node names that keep ``layers`` in float: each layer and the chain of non-layer nodes it feeds
    (activations such as hard-swish written as Add/Clip/Div/Mul, BatchNorm folded as Mul/Add) up to the next
    layer. Keeping only the layer's weights in fp32 while its activation chain stays quantized loses more than
    it saves on such models (measured on ppocr-rec: keeping 48 Conv layers alone fell to 0% exact match).
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    by_name = {n.name: n for n in model.graph.node}
    keep: list[str] = []
    seen: set[str] = set()
    for name in layers:
        node = by_name.get(name)
        if node is None:
            continue
        queue = [node]
        added = 0
        while queue and added <= _BLOCK_MAX_NODES:
            cur = queue.pop(0)
            if cur.name in seen or not cur.name:
                continue
            seen.add(cur.name)
            keep.append(cur.name)
            added += 1
            for out in cur.output:
                queue.extend(c for c in consumers.get(out, []) if c.op_type not in _BLOCK_STOP)
    return tuple(keep)


def edge_layers(model: onnx.ModelProto, which: Sequence[str]) -> tuple[str, ...]:
    """The names of the ``"first"`` and/or ``"last"`` layer of ``model``: the first and last node of
    :data:`QUANTIZABLE_OPS` in graph (topological) order that carries a weight (an initializer or a Constant
    input); any such node when none carries one. Empty when the model has no such layer."""
    weights = {i.name for i in model.graph.initializer}
    weights |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    layers = [n for n in model.graph.node if n.op_type in QUANTIZABLE_OPS and n.name]
    weighted = [n.name for n in layers if any(x in weights for x in n.input)] or [n.name for n in layers]
    if not weighted:
        return ()
    out = [weighted[0]] if "first" in which else []
    if "last" in which:
        out.append(weighted[-1])
    return tuple(dict.fromkeys(out))
