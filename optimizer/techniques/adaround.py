"""Learned rounding of int8 weights (AdaRound; Nagel et al., "Up or Down? Adaptive Rounding for Post-Training
Quantization", 2020) on the calibration data, bounded in time.

Rounding each weight to the nearest integer is not what minimizes a layer's output error: AdaRound learns, per
weight, whether to round down or up. Here a layer's weights keep onnxruntime's scales (per channel or per
tensor); only the integer values change, so the file is exactly the static int8 file with other int8 weights.

Per layer (in graph order), with ``X`` the layer's inputs in the quantized model (columns: sampled output
positions) and ``T`` the float model's output minus the quantized bias, the objective is
``||W~ X - T||^2`` (summed over output channels, averaged over positions) plus the rounding regularizer
``lambda * sum(1 - |2h - 1|^beta)`` with ``W~ = s * clip(floor(W/s) + h(V))`` and ``h`` the rectified sigmoid
(zeta 1.1, gamma -0.1, lambda 0.01, beta annealed 20 -> 2 after a 20% warm start: AdaRound's and aimet's
defaults). Because the objective is quadratic in ``W~``, only ``G = X X^T`` and ``C = X T^T`` are needed: each
Adam step costs ``outputs x K^2`` per group whatever the number of samples, in numpy (no torch).

Inputs come from the quantized model as earlier layers were already rounded (the layers are processed in a few
groups, each measured on the model the earlier groups changed), so a layer also compensates for the error that
reaches it. A layer whose learned rounding reconstructs its output worse than nearest rounding on the
calibration data keeps nearest rounding.

**Time bound**: ``time_budget_s`` bounds the optimization (the statistics passes are counted too). Layers are
taken most-sensitive first (largest output error of nearest rounding, relative to the output's variance) until
the estimated cost of the rest would exceed the budget; each Adam step's cost is measured on the first layer,
and the loop stops at the deadline whatever the estimate said. The notes list which layers were optimized and
which were left with nearest rounding because the budget ran out.

aimet-onnx 2.42 has AdaRound for ONNX and resolves beside our pins (64 packages); it quantizes with its own
simulator rather than onnxruntime's quantizer, and was not run end to end here. amd-quark resolves only as its
early 0.1.0 release with onnx 1.23.2 and onnxruntime 1.32.0. So it is written here (numpy only).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from optimizer.measure.data import Dataset
from optimizer.techniques.layerwise import (
    QdqLayer,
    channel_view,
    collect,
    initializer,
    input_columns,
    int_range,
    output_channels,
    positions,
    qdq_layers,
    replace_initializer,
    weight_unview,
    weight_view,
)

ZETA, GAMMA = 1.1, -0.1
REG = 0.01
BETA = (20.0, 2.0)
WARM = 0.2
#: output positions sampled per layer and batch (G and C need no more to be well estimated)
POSITIONS_PER_BATCH = 256
#: the fixed cost of one Adam step (array allocation, einsum dispatch) in multiply-adds, so a tiny first layer does
#: not make the big ones look slow
STEP_OVERHEAD = 2e5
#: K x K statistics above this are not kept (a layer reading more than this many inputs keeps nearest rounding)
MAX_K = 4608


@dataclass
class _Stats:
    g: np.ndarray | None = None  # [groups, K, K]
    c: np.ndarray | None = None  # [groups, K, out/g]
    tt: np.ndarray | None = None  # [groups, out/g]: sum of T^2 (for the relative error)
    cols: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def _rect_sigmoid(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sig = 1.0 / (1.0 + np.exp(-v))
    return np.clip(sig * (ZETA - GAMMA) + GAMMA, 0.0, 1.0), sig


def _recon(w: np.ndarray, st: _Stats) -> float:
    """Sum over output channels of the mean squared error ``||W X - T||^2 / cols`` (from G and C)."""
    assert st.g is not None and st.c is not None and st.tt is not None
    wg = np.einsum("gok,gkj->goj", w, st.g)
    quad = np.einsum("goj,goj->", wg, w)
    lin = np.einsum("gok,gko->", w, st.c)
    return float((quad - 2.0 * lin + st.tt.sum()) / max(st.cols, 1))


def round_layer(
    w: np.ndarray,
    scale: np.ndarray,
    zero: np.ndarray,
    qrange: tuple[int, int],
    st: _Stats,
    iterations: int,
    deadline: float,
    lr: float = 1e-2,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Learn the rounding of one layer's weights ``w`` ``[groups, out/g, K]`` (scale and zero point ``[g, out/g,
    1]``). Returns the integer weights (same view) and notes: the relative reconstruction error of nearest and of
    learned rounding, the iterations run."""
    assert st.g is not None and st.c is not None and st.tt is not None
    wf = w / scale
    base = np.floor(wf)
    rest = np.clip(wf - base, 0.0, 1.0)
    lo, hi = qrange[0] - zero, qrange[1] - zero
    v = -np.log((ZETA - GAMMA) / (np.clip(rest, 1e-4, 1 - 1e-4) - GAMMA) - 1.0)
    m = np.zeros_like(v)
    s2 = np.zeros_like(v)
    b1, b2, eps = 0.9, 0.999, 1e-8
    warm = int(WARM * iterations)
    g_scaled = 2.0 * st.g / max(st.cols, 1)
    c_scaled = 2.0 * np.transpose(st.c, (0, 2, 1)) / max(st.cols, 1)
    it = 0
    for it in range(1, iterations + 1):
        h, sig = _rect_sigmoid(v)
        q = base + h
        inside = (q >= lo) & (q <= hi)
        wq = scale * np.clip(q, lo, hi)
        grad_w = np.einsum("gok,gkj->goj", wq, g_scaled) - c_scaled
        grad_h = grad_w * scale * inside
        if it > warm:
            rel = (it - warm) / max(iterations - warm, 1)
            beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + np.cos(rel * np.pi))
            d = 2.0 * h - 1.0
            grad_h = grad_h - REG * beta * np.abs(d) ** (beta - 1.0) * np.sign(d) * 2.0
        grad_v = grad_h * sig * (1.0 - sig) * (ZETA - GAMMA) * ((h > 0.0) & (h < 1.0))
        m = b1 * m + (1 - b1) * grad_v
        s2 = b2 * s2 + (1 - b2) * grad_v**2
        v = v - lr * (m / (1 - b1**it)) / (np.sqrt(s2 / (1 - b2**it)) + eps)
        if time.perf_counter() > deadline:
            break
    h, _ = _rect_sigmoid(v)
    learned = np.clip(base + (h >= 0.5), lo, hi)
    nearest = np.clip(np.round(wf), lo, hi)
    energy = max(float(st.tt.sum()) / max(st.cols, 1), 1e-30)
    e_near = _recon(scale * nearest, st) / energy
    e_learn = _recon(scale * learned, st) / energy
    keep = e_learn <= e_near
    chosen = learned if keep else nearest
    return (chosen + zero).astype(np.int64), {
        "relative_error_nearest": round(e_near, 6),
        "relative_error_learned": round(e_learn, 6),
        "iterations": it,
        "kept": "learned" if keep else "nearest (learned rounding was not better on the calibration data)",
    }


def _inputs_per_output(layer: QdqLayer, w_shape: tuple[int, ...]) -> int:
    outputs = w_shape[0] if layer.op_type == "Conv" or layer.attrs.get("transB", 0) else w_shape[-1]
    return int(np.prod(w_shape)) // outputs


def _layer_cost(layer: QdqLayer, w_shape: tuple[int, ...]) -> float:
    """Multiply-adds of one Adam step on this layer: outputs x K^2 (K: the inputs one output reads)."""
    k = _inputs_per_output(layer, w_shape)
    return float(int(np.prod(w_shape)) // k) * k * k + STEP_OVERHEAD


def learn_rounding(
    qdq: onnx.ModelProto,
    fp: onnx.ModelProto,
    calib: Dataset,
    *,
    iterations: int = 500,
    time_budget_s: float = 60.0,
    groups: int = 4,
    priority: dict[str, float] | None = None,
) -> dict[str, Any]:
    """AdaRound the int8 weights of ``qdq`` (in place) against its float model ``fp`` on ``calib``, within
    ``time_budget_s`` seconds (see the module docstring). ``priority`` ranks layers (higher first) when the budget
    cannot cover all; by default the layers are ranked by their output error under nearest rounding, measured in
    the first statistics pass.

    Returns notes: the layers optimized (with their reconstruction errors), those left at nearest rounding and
    why, the seconds spent and the bound.
    """
    t0 = time.perf_counter()
    deadline = t0 + time_budget_s
    layers = qdq_layers(qdq, fp)
    shapes = {la.name: tuple(int(d) for d in initializer(qdq, la.w_q).dims) for la in layers}
    skipped: dict[str, str] = {}
    todo: list[QdqLayer] = []
    for la in layers:
        k = _inputs_per_output(la, shapes[la.name])
        if k > MAX_K:
            skipped[la.name] = f"reads {k} inputs per output (statistics would need {k}x{k})"
        else:
            todo.append(la)
    # a budget too small for the statistics passes alone leaves every layer at nearest rounding
    n_groups = max(1, min(groups, len(todo)))
    parts = [[todo[i] for i in g] for g in np.array_split(np.arange(len(todo)), n_groups) if len(g)]
    results: dict[str, dict[str, Any]] = {}
    step_seconds: float | None = None  # seconds per unit of _layer_cost per iteration, measured
    total_cost = sum(_layer_cost(la, shapes[la.name]) for la in todo) or 1.0
    pass_seconds = 0.0  # the last statistics pass: reserved for each pass still to come
    for p_i, part in enumerate(parts):
        if time.perf_counter() > deadline:
            for la in part:
                skipped[la.name] = "time budget spent before this layer"
            continue
        stats = {la.name: _Stats(rng=np.random.default_rng(zlib.crc32(la.name.encode()))) for la in part}
        biases = {
            la.name: (
                numpy_helper.to_array(initializer(qdq, la.b_q)).astype(np.float64)
                * numpy_helper.to_array(initializer(qdq, str(la.b_scale))).astype(np.float64)
                if la.b_q
                else None
            )
            for la in part
        }

        def on_batch(
            _i: int,
            f: dict[str, np.ndarray],
            q: dict[str, np.ndarray],
            part: list[QdqLayer] = part,
            stats: dict[str, _Stats] = stats,
            biases: dict[str, np.ndarray | None] = biases,
        ) -> None:
            for la in part:
                st = stats[la.name]
                yf = f[la.y_f]
                npos = positions(yf.shape, la)
                idx = np.sort(st.rng.choice(npos, size=min(POSITIONS_PER_BATCH, npos), replace=False))
                x = input_columns(la, q[la.x_q], shapes[la.name], idx)  # [g, K, P]
                t = output_channels(yf, la)[:, idx].astype(np.float64)  # [out, P]
                b = biases[la.name]
                if b is not None:
                    t = t - b.reshape(-1, 1)
                g = x.shape[0]
                t = t.reshape(g, -1, t.shape[-1])  # [g, out/g, P]
                gg = np.einsum("gkp,gjp->gkj", x, x)
                cc = np.einsum("gkp,gop->gko", x, t)
                tt = (t**2).sum(axis=2)
                if st.g is None:
                    st.g, st.c, st.tt = gg, cc, tt
                else:
                    st.g += gg
                    st.c += cc  # type: ignore[operator]
                    st.tt += tt  # type: ignore[operator]
                st.cols += len(idx)

        t_pass = time.perf_counter()
        collect(fp, qdq, [la.y_f for la in part], [la.x_q for la in part], calib, on_batch)
        pass_seconds = time.perf_counter() - t_pass
        reserve = pass_seconds * (len(parts) - p_i - 1)
        # most sensitive first: the largest relative output error under nearest rounding (or the caller's rank)
        ranks = {la.name: _priority(la, priority, stats[la.name], qdq, fp, shapes) for la in part}
        order = sorted(part, key=lambda la: -ranks[la.name])
        for la in order:
            now = time.perf_counter()
            st = stats[la.name]
            if st.g is None or now > deadline:
                skipped[la.name] = "time budget spent before this layer"
                continue
            cost = _layer_cost(la, shapes[la.name])
            iters = iterations
            if step_seconds is not None:
                # the rest of the budget, shared in proportion to each remaining layer's cost
                remaining = sum(
                    _layer_cost(x, shapes[x.name])
                    for x in todo
                    if x.name not in results and x.name not in skipped
                )
                share = (deadline - reserve - now) * cost / max(remaining, cost)
                iters = int(min(iterations, share / max(step_seconds * cost, 1e-12)))
                if iters < max(20, iterations // 10):
                    skipped[la.name] = f"time budget: only {iters} iterations would fit"
                    continue
            init = initializer(qdq, la.w_q)
            w_int = numpy_helper.to_array(init).astype(np.float64)
            scale_a = numpy_helper.to_array(initializer(qdq, la.w_scale)).astype(np.float64)
            zero_a = (
                numpy_helper.to_array(initializer(qdq, la.w_zero_point)).astype(np.float64)
                if la.w_zero_point
                else np.zeros_like(scale_a)
            )
            wv = weight_view(la, w_int)
            outputs = wv.shape[0] * wv.shape[1]
            scale = channel_view(la, scale_a, outputs)
            zero = channel_view(la, zero_a, outputs)
            w_float = _float_weight(fp, la, wv, scale, zero)
            t1 = time.perf_counter()
            q_int, notes = round_layer(w_float, scale, zero, int_range(init), st, iters, deadline)
            spent = time.perf_counter() - t1
            step_seconds = spent / max(notes["iterations"], 1) / max(cost, 1.0)
            dtype = numpy_helper.to_array(init).dtype
            replace_initializer(qdq, la.w_q, weight_unview(la, q_int, init.dims).astype(dtype))
            results[la.name] = notes
    return {
        "optimized": results,
        "nearest_rounding": skipped,
        "seconds": round(time.perf_counter() - t0, 3),
        "time_budget_s": time_budget_s,
        "iterations": iterations,
        "layers": len(layers),
        "cost_share_optimized": round(
            sum(_layer_cost(la, shapes[la.name]) for la in todo if la.name in results) / total_cost, 4
        ),
    }


def _priority(
    la: QdqLayer,
    given: dict[str, float] | None,
    st: _Stats,
    qdq: onnx.ModelProto,
    fp: onnx.ModelProto,
    shapes: dict[str, tuple[int, ...]],
) -> float:
    if given is not None:
        return given.get(la.name, 0.0)
    if st.g is None or st.tt is None:
        return 0.0
    init = initializer(qdq, la.w_q)
    w_int = weight_view(la, numpy_helper.to_array(init).astype(np.float64))
    outputs = w_int.shape[0] * w_int.shape[1]
    scale = channel_view(la, numpy_helper.to_array(initializer(qdq, la.w_scale)).astype(np.float64), outputs)
    zero_a = (
        numpy_helper.to_array(initializer(qdq, la.w_zero_point)).astype(np.float64)
        if la.w_zero_point
        else np.zeros(1)
    )
    zero = channel_view(la, zero_a, outputs)
    energy = max(float(st.tt.sum()) / max(st.cols, 1), 1e-30)
    return _recon((w_int - zero) * scale, st) / energy


def _float_weight(
    fp: onnx.ModelProto, layer: QdqLayer, wv_int: np.ndarray, scale: np.ndarray, zero: np.ndarray
) -> np.ndarray:
    """The layer's float weight in the view of :func:`weight_view` (read from the float model; dequantized from
    the int8 values when the float model's weight is not an initializer)."""
    node = next(n for n in fp.graph.node if n.name == layer.name)
    inits = {i.name: i for i in fp.graph.initializer}
    if len(node.input) > 1 and node.input[1] in inits:
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        return weight_view(layer, w)
    return (wv_int - zero) * scale
