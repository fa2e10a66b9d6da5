"""Memory planning for calibration, profiling and parallel trials, from the model's activation sizes.

onnxruntime's entropy and percentile calibration keep every intermediate activation of every calibration batch
and build the histograms from all of them at once (min-max keeps only per-batch minima and maxima): a 10 MB OCR
recogniser on 200 lines took about 7 GB per trial, and two such trials were OOM-killed on a 24 GB machine.
(Its ``CalibMaxIntermediateOutputs`` option is no help: onnxruntime 1.32 drops the collected batches without
computing their ranges.) :func:`activation_bytes_per_sample` measures what one sample's activations take (one run
with every intermediate output exposed, as the calibrater runs it); :func:`plan_memory` sizes the histogram
calibration samples, the profiling samples and the number of parallel trials so that they fit in the memory the
machine has free now (psutil).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

from optimizer.measure.data import Dataset

log = logging.getLogger(__name__)

#: the share of the free memory the sweep plans to use (the rest is headroom for the OS and other processes)
USABLE_FRACTION = 0.6
#: bytes of a trial beyond calibration: the model a few times over (copies, session, quantizer) + interpreter
TRIAL_OVERHEAD_BYTES = 400_000_000
MODEL_COPIES = 6
#: calibration holds each activation about this many times (outputs kept, merged into one array, histograms)
CALIB_COPIES = 1.5
MIN_CALIB_SAMPLES = 8

_DTYPE_BYTES = {
    onnx.TensorProto.FLOAT: 4,
    onnx.TensorProto.FLOAT16: 2,
    onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.INT64: 8,
    onnx.TensorProto.INT32: 4,
    onnx.TensorProto.INT8: 1,
    onnx.TensorProto.UINT8: 1,
    onnx.TensorProto.BOOL: 1,
}


def activation_bytes_per_sample(model_path: str | Path, data: Dataset) -> int:
    """Bytes of every float intermediate tensor for one sample, measured the way calibration holds them: the
    model is run on the data's first sample with every node output exposed (as onnxruntime's calibrater does).
    Never raises: when the run fails, 64 x the largest input is the estimate."""
    import tempfile

    import onnxruntime as ort

    sample = data.feed(0, 1)
    fallback = 64 * max((int(v.nbytes) for v in sample.values()), default=1_000_000)
    try:
        model = onnx.load(str(model_path))
        have = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if node.op_type == "Constant":
                continue
            for out in node.output:
                if out and out not in have:
                    model.graph.output.append(onnx.ValueInfoProto(name=out))
                    have.add(out)
        with tempfile.TemporaryDirectory(prefix="quanttaas-mem-") as tmp:
            path = Path(tmp) / "aug.onnx"
            onnx.save(model, str(path), save_as_external_data=model.ByteSize() > 1_800_000_000)
            del model
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.intra_op_num_threads = 1
            opts.log_severity_level = 3
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            outs = sess.run(None, {k: sample[k] for k in names})
        return max(
            sum(int(o.nbytes) for o in outs if getattr(o, "dtype", None) is not None and o.dtype.kind == "f"),
            1,
        )
    except Exception as e:  # an estimate, never a reason to fail the sweep
        log.info("activation size measurement failed (%s); using 64x the largest input", e)
        return fallback


def free_memory_bytes() -> int:
    """Memory the machine has available now (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class MemoryPlan:
    calib_samples: int
    profile_samples: int
    workers: int
    activation_bytes: int
    free_bytes: int
    reason: str


def plan_memory(
    activation_bytes: int,
    model_bytes: int,
    *,
    calib_samples: int,
    workers: int,
    profile_samples: int = 4,
    free_bytes: int | None = None,
) -> MemoryPlan:
    """How many calibration samples each trial may use, how many profiling samples, and how many trials may
    run at once, so that ``workers`` x (trial overhead + calibration) fits in the usable share of free memory.
    Workers are cut first down to what one full calibration fits, then the samples."""
    free = free_memory_bytes() if free_bytes is None else free_bytes
    usable = max(free * USABLE_FRACTION, 1.0)
    overhead = TRIAL_OVERHEAD_BYTES + MODEL_COPIES * model_bytes
    per_sample = max(activation_bytes, 1) * CALIB_COPIES

    def need(samples: int) -> float:
        return overhead + samples * per_sample

    w = max(1, min(workers, int(usable // need(calib_samples)) or 1))
    samples = calib_samples
    if w * need(samples) > usable:
        samples = int((usable / w - overhead) // per_sample)
        samples = max(min(MIN_CALIB_SAMPLES, calib_samples), min(samples, calib_samples))
    # profiling keeps every activation of the float and the quantized model for each of its samples
    prof = max(1, min(profile_samples, int((usable - overhead) // (2 * per_sample)) or 1))
    parts = [
        f"{activation_bytes / 1e6:.1f} MB of activations per sample, {free / 1e9:.1f} GB free",
        f"{w} trial(s) at once" + (f" (of {workers})" if w < workers else ""),
        f"calibration on at most {samples} sample(s)"
        + (f" (of {calib_samples})" if samples < calib_samples else ""),
    ]
    if prof < profile_samples:
        parts.append(f"profiling on {prof} sample(s) (of {profile_samples})")
    return MemoryPlan(samples, prof, w, activation_bytes, free, "memory plan: " + ", ".join(parts))
