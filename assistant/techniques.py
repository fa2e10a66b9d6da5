"""What the assistant says about each compression technique, in one place.

Every word the offline planner and the answers use about a technique lives here: how a question names it ("why not
int4?"), how an answer names it, which measured recipes and which skipped candidates are one of it, what to say to
have it measured, why a sweep may not have built it, and a recipe in words. Nothing else in the assistant spells a
technique out, so this table can later be generated from the library's technique registry (served by a tool; the
assistant never imports the library).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAPABILITIES",
    "TECHNIQUES",
    "Technique",
    "describe_recipe",
    "not_in_grid",
    "technique",
    "technique_in",
]

#: what the assistant offers, for the help text
CAPABILITIES = "int8, fp16 and int4 quantization"


def _kind(recipe: dict[str, Any]) -> str:
    return str(recipe.get("kind", ""))


@dataclass(frozen=True)
class Technique:
    """One technique as the assistant talks about it."""

    key: str
    terms: str = r"(?!)"  # regex of the words that name it in a question (default: none)
    name: str = ""  # how an answer names it
    matches: Callable[[dict[str, Any]], bool] = lambda recipe: False  # whether a measured recipe is one of it
    skipped_label: str | None = None  # regex over the label of a candidate the sweep did not build
    try_phrase: str | None = None  # what to ask for to have it measured


# In the order a question is read: the first technique whose words appear is the one asked about ("per-tensor
# static int8" is per_tensor, not static or int8).
TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "int4",
        r"int4|4[- ]?bits?|four[- ]bits?|nf4|mat ?mul ?n ?bits",
        "int4 (weight-only)",
        lambda r: _kind(r) == "int4_weight_only",
        r"int4",
        "int4 only",
    ),
    Technique(
        "fp16",
        r"fp16|float ?16|half[- ]precision|half",
        "fp16",
        lambda r: _kind(r) == "fp16",
        r"fp16",
        "fp16 only",
    ),
    Technique(
        "per_tensor",
        r"per[- ]?tensor",
        "per-tensor static int8",
        lambda r: _kind(r) == "static_int8" and not r.get("per_channel", True),
        r"-pt-",
    ),
    Technique(
        "entropy",
        r"entropy",
        "entropy calibration",
        lambda r: r.get("calibration") == "entropy",
        r"entropy",
    ),
    Technique(
        "percentile",
        r"percentile",
        "percentile calibration",
        lambda r: r.get("calibration") == "percentile",
        r"percentile",
    ),
    Technique(
        "dynamic",
        r"dynamic",
        "dynamic int8",
        lambda r: _kind(r) == "dynamic_int8",
        r"dynamic_int8",
    ),
    Technique(
        "prune",
        r"prun\w*|sparsit\w*|sparse",
        "pruning",
        lambda r: _kind(r).startswith("prune"),
        r"prune",
    ),
    Technique(
        "keep",
        r"keep\w*|selective|mixed[- ]precision|fp32 layers?",
        "keeping sensitive layers in fp32",
        lambda r: bool(r.get("keep_fp32")),
        r"keep\d",
    ),
    Technique(
        "static",
        r"static",
        "static int8",
        lambda r: _kind(r) == "static_int8",
        r"static_int8",
    ),
    Technique(
        "int8",
        r"int8|8[- ]?bits?|eight[- ]bits?",
        "int8",
        lambda r: _kind(r) in ("static_int8", "dynamic_int8", "qat_int8"),
        r"int8",
        "int8 only",
    ),
    Technique(
        "qat",
        r"qat|quanti[sz]ation[- ]aware",
        "quantization-aware training",
        lambda r: _kind(r) == "qat_int8",
        r"qat",
    ),
    Technique("distill", r"distill\w*", "distillation"),
)

_BY_KEY = {t.key: t for t in TECHNIQUES}


def technique(key: str) -> Technique:
    """The technique of ``key``; an unknown key is named as it is and matches nothing."""
    return _BY_KEY.get(key) or Technique(key, name=key)


def technique_in(text: str) -> str | None:
    """The key of the first technique ``text`` names ("why not int4?" -> ``int4``), or None."""
    for t in TECHNIQUES:
        if re.search(rf"(?<![\w-])(?:{t.terms})(?![\w])", text, re.I):
            return t.key
    return None


def not_in_grid(key: str, model: str, weighted_ops: Sequence[str]) -> str:
    """Why a sweep of ``model`` may not have built ``key`` (``weighted_ops``: its weighted layers' op types, from
    ``inspect_model``; empty when unknown)."""
    has = f"{model}'s weighted layers are {', '.join(weighted_ops)} (inspect_model)" if weighted_ops else ""
    if key == "int4":
        return (
            "QuantTaaS's int4 recipe is weight-only 4-bit quantization of MatMul layers (onnxruntime MatMulNBits); "
            + (f"{has}, so " if has else "")
            + "there is nothing for it to quantize"
            + ("." if has and "MatMul" not in weighted_ops else " in this model.")
        )
    if key in ("prune", "qat", "distill"):
        return "The sweep tries quantization recipes (static and dynamic int8, fp16, int4 weight-only) only."
    if key == "dynamic":
        return (
            "Dynamic int8 applies to MatMul/Gemm/Gather (and Conv) layers; "
            + (has or "this model has none of them")
            + "."
        )
    return "The sweep's goal-directed search only builds the candidates that can still win."


def describe_recipe(recipe: dict[str, Any] | None) -> str:
    """A recipe in words: ``static int8 (per-channel, minmax calibration)``."""
    if not recipe:
        return "unknown recipe"
    kind = _kind(recipe)
    keep = recipe.get("keep_fp32") or []
    tail = ""
    if keep:
        tail = f", the {len(keep)} most sensitive layer{'s' if len(keep) != 1 else ''} kept in fp32"
    if kind == "static_int8":
        gran = "per-channel" if recipe.get("per_channel", True) else "per-tensor"
        ops = recipe.get("op_types")
        on = f", only {'/'.join(ops)}" if ops else ""
        return f"static int8 ({gran}, {recipe.get('calibration', 'minmax')} calibration{on}{tail})"
    if kind == "dynamic_int8":
        return f"dynamic int8 ({'/'.join(recipe.get('op_types') or [])}{tail})"
    if kind == "fp16":
        return f"float16{tail.replace(', the', ' (the') + ')' if tail else ''}"
    if kind == "int4_weight_only":
        return "int4 weight-only (MatMul)"
    if kind == "chain":
        return " then ".join(describe_recipe(s) for s in recipe.get("steps") or [])
    return kind.replace("_", " ")
