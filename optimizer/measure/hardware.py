"""What the CPU this process runs on can do, where it changes how a model should be quantized.

onnxruntime's x86 int8 kernels multiply uint8 activations by int8 weights. Without VNNI (AVX-512 VNNI, AVX-VNNI
or AMX) they use ``vpmaddubsw``, which adds two u8 x s8 products into a saturating int16: with full 8-bit weights
the sum can overflow and the result is wrong, not just imprecise. onnxruntime's documented remedy is
``reduce_range`` (7-bit weights), which keeps every pair sum inside int16.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@functools.cache
def int8_saturates() -> bool:
    """Whether onnxruntime's u8 x s8 kernels can saturate here: an x86 CPU without VNNI (unknown x86 counts as
    without, the safe side). ARM kernels (sdot/smmla) accumulate in int32 and never do."""
    if not is_x86():
        return False
    flags = cpu_flags()
    return not (flags & _VNNI_FLAGS)


def cpu_int8_summary() -> str:
    """One line on what this CPU means for int8 kernels (for reports)."""
    if not is_x86():
        return f"{platform.machine() or 'unknown'}: int8 kernels accumulate in int32 (no saturation)"
    flags = cpu_flags()
    have = sorted(flags & _VNNI_FLAGS)
    if have:
        return f"{platform.machine()} with {', '.join(have)}: u8 x s8 int8 kernels do not saturate (full 8-bit weights)"
    return (
        f"{platform.machine()} without VNNI: u8 x s8 int8 kernels can saturate, so static int8 uses reduce_range "
        "(7-bit weights)"
    )
