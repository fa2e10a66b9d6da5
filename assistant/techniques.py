"""What the assistant says about each compression technique.

Two sources, kept apart:

- the assistant's own phrasing, in :data:`TECHNIQUES`: the words that name a technique in a question ("why not
  int4?", "what about half precision?"), how an answer names it, which registry kinds (and which recipes of them)
  it covers, how the sweep labels its skipped candidates, and what to ask for to have it measured;
- everything *about* a technique (what it does, the methods and precision it counts as, what it needs) comes from
  the server's technique registry through the ``list_techniques`` tool (:class:`Registry`): the help text, why a
  sweep had no candidate of a technique, and what a kind the assistant has no words for is.

The assistant never imports the library: the registry arrives as the tool's JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TECHNIQUES",
    "Registry",
    "Technique",
    "capabilities",
    "describe_recipe",
    "not_in_grid",
    "technique",
    "technique_in",
]


def _kind(recipe: Mapping[str, Any]) -> str:
    return str(recipe.get("kind", ""))


def _always(recipe: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Technique:
    """One technique as the assistant talks about it (the registry says what it is)."""

    key: str
    terms: str = r"(?!)"  # regex of the words that name it in a question (default: none)
    name: str = ""  # how an answer names it
    kinds: tuple[str, ...] = ()  # the registry kinds it covers
    narrower: Callable[[Mapping[str, Any]], bool] = _always  # which recipes of those kinds are it
    skipped_label: str | None = None  # regex over the label of a candidate the sweep did not build
    try_phrase: str | None = None  # what to ask for to have it measured

    def matches(self, recipe: Mapping[str, Any]) -> bool:
        """Whether a measured recipe is one of it (a chain is when one of its steps is)."""
        if _kind(recipe) == "chain" and "chain" not in self.kinds:
            return any(self.matches(s) for s in recipe.get("steps") or [] if isinstance(s, Mapping))
        return _kind(recipe) in self.kinds and self.narrower(recipe)


# In the order a question is read: the first technique whose words appear is the one asked about ("per-tensor
# static int8" is per_tensor, not static or int8).
TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "int4",
        r"int4|4[- ]?bits?|four[- ]bits?|nf4|mat ?mul ?n ?bits",
        "int4 (weight-only)",
        ("int4_weight_only",),
        skipped_label=r"int4",
        try_phrase="int4 only",
    ),
    Technique(
        "fp16",
        r"fp16|float ?16|half[- ]precision|half",
        "fp16",
        ("fp16",),
        skipped_label=r"fp16",
        try_phrase="fp16 only",
    ),
    Technique(
        "per_tensor",
        r"per[- ]?tensor",
        "per-tensor static int8",
        ("static_int8",),
        lambda r: not r.get("per_channel", True),
        r"-pt-",
    ),
    Technique(
        "entropy",
        r"entropy",
        "entropy calibration",
        ("static_int8",),
        lambda r: r.get("calibration") == "entropy",
        r"entropy",
    ),
    Technique(
        "percentile",
        r"percentile",
        "percentile calibration",
        ("static_int8",),
        lambda r: r.get("calibration") == "percentile",
        r"percentile",
    ),
    Technique("dynamic", r"dynamic", "dynamic int8", ("dynamic_int8",), skipped_label=r"dynamic_int8"),
    Technique(
        "prune",
        r"prun\w*|sparsit\w*|sparse",
        "pruning",
        ("prune_magnitude", "prune_channels"),
        skipped_label=r"prune",
        try_phrase="try pruning too",
    ),
    Technique(
        "keep",
        r"keep\w*|selective|mixed[- ]precision|fp32 layers?",
        "keeping sensitive layers in fp32",
        ("static_int8", "dynamic_int8", "fp16"),
        lambda r: bool(r.get("keep_fp32")),
        r"keep\d",
    ),
    Technique("static", r"static", "static int8", ("static_int8",), skipped_label=r"static_int8"),
    Technique(
        "qat",
        r"qat|quanti[sz]ation[- ]aware",
        "quantization-aware training",
        ("qat_int8",),
        skipped_label=r"qat",
        try_phrase="try quantization-aware training",
    ),
    Technique(
        "inc",
        r"inc|neural[- ]compressor|auto-?tun\w*",
        "Intel Neural Compressor autotune",
        ("inc_autotune",),
        skipped_label=r"inc_autotune",
    ),
    Technique(
        "int8",
        r"int8|8[- ]?bits?|eight[- ]bits?",
        "int8",
        ("static_int8", "dynamic_int8", "qat_int8", "inc_autotune"),
        skipped_label=r"int8",
        try_phrase="int8 only",
    ),
    Technique("chain", r"chain\w*|combin\w*", "chains of steps", ("chain",), skipped_label=r"_"),
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


# --------------------------------------------------------------------------- the server's registry

_METHOD_WORDS = {"quantize": "quantization", "prune": "pruning", "qat": "quantization-aware training"}
_NEED_WORDS = {
    "calibration": "calibration data",
    "torch_source": "the PyTorch model the ONNX file was exported from",
    "training_data": "labelled training data",
}
# ONNX operator names as a registry description writes them ("quantization of MatMul layers")
_OP_NAME = re.compile(r"\b(MatMul|Gemm|Conv|ConvTranspose|Gather|LSTM|GRU|Attention|Add|Mul)\b")


@dataclass(frozen=True)
class Registry:
    """The server's technique records (the ``list_techniques`` result): kind, cli_name, description, methods,
    precision, needs."""

    records: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, result: Mapping[str, Any] | None) -> Registry:
        found = (result or {}).get("techniques") or []
        return cls(tuple(r for r in found if isinstance(r, Mapping) and r.get("kind")))

    def __bool__(self) -> bool:
        return bool(self.records)

    def of_kinds(self, kinds: Sequence[str]) -> list[Mapping[str, Any]]:
        return [r for r in self.records if r.get("kind") in kinds]

    def kinds(self) -> list[str]:
        return [str(r.get("kind")) for r in self.records]


def capabilities(registry: Registry) -> str:
    """What the assistant offers, from the registry: each method with the techniques that count as it."""
    if not registry:
        return "quantization and pruning"
    groups: dict[str, list[str]] = {}
    chains = False
    for r in registry.records:
        methods = [str(m) for m in r.get("methods") or []]
        name = str(r.get("cli_name") or r.get("kind"))
        if not methods:
            chains = True
            continue
        # a technique counts under its most specific method ("qat" over "quantize")
        method = "qat" if "qat" in methods else methods[0]
        groups.setdefault(_METHOD_WORDS.get(method, method), []).append(name)
    parts = [f"{word} ({', '.join(names)})" for word, names in groups.items()]
    if chains:
        parts.append("chains of them")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def _ops_note(description: str, model: str, weighted_ops: Sequence[str]) -> str:
    """When a technique's description names the layers it works on and the model has none of them."""
    ops = sorted(set(_OP_NAME.findall(description)))
    if not ops or not weighted_ops or set(ops) & set(weighted_ops):
        return ""
    return (
        f" It works on {'/'.join(ops)} layers; {model}'s weighted layers are {', '.join(weighted_ops)} "
        "(inspect_model), so there is nothing for it to quantize."
    )


def not_in_grid(key: str, model: str, weighted_ops: Sequence[str], registry: Registry) -> str:
    """Why a sweep of ``model`` had no candidate of ``key``, from what the registry says the technique does and
    needs (``weighted_ops``: the model's weighted layers' op types from ``inspect_model``; empty when unknown)."""
    tech = technique(key)
    found = registry.of_kinds(tech.kinds)
    if not found:
        if not registry:
            return "The sweep's goal-directed search only builds the candidates that can still win."
        return (
            f"QuantTaaS has no {tech.name or key} technique; the sweep draws on: "
            + ", ".join(str(r.get("cli_name") or r.get("kind")) for r in registry.records)
            + " (list_techniques)."
        )
    lines: list[str] = []
    for r in found:
        desc = str(r.get("description", "")).rstrip(".")
        needs = [_NEED_WORDS.get(str(n), str(n)) for n in r.get("needs") or []]
        line = f"{r.get('cli_name') or r.get('kind')}: {desc}."
        line += _ops_note(desc, model, weighted_ops)
        if needs:
            line += f" It needs {', '.join(needs)}."
        lines.append(line)
    return " ".join(lines)


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
