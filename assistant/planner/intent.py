"""Reading a message: the files and the model it names, and what it asks about the last sweep.

Pure functions of the user's words (and the names the server holds); they call no tool. What a question names as a
technique ("why not int4?") is read by :func:`assistant.techniques.technique_in`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from assistant.techniques import technique_in

__all__ = [
    "FileRefs",
    "Question",
    "accept_rewrite",
    "files_named",
    "has_words",
    "mentions",
    "name_pattern",
    "read_question",
    "without_mentions",
]

_MODEL_SUFFIXES = (".onnx", ".pt2")
_DATA_SUFFIXES = (".npz",)

_PATH_RE = re.compile(
    r"""(?P<q>["']?)(?P<path>(?:~|\.{1,2}|/)?(?:[\w.~-]+/)*[\w.~-]+\.(?:onnx|pt2|npz))(?P=q)(?![\w/])""", re.I
)
_UNIT_NUMBER = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?\s*(?:%|percent|points?|pts?|pp|[kmg]i?b|bytes?|kilobytes?|megabytes?|ms|"
    r"milliseconds?|seconds?|x\b|times\b|fold\b)",
    re.I,
)
_TRIED = re.compile(
    r"\bwhat\b[^?]*\b(?:did|have|has)\s+(?:you|it|we)\b[^?]*\b(?:try|tried|test|tested|measure|measured|run|ran|"
    r"evaluat\w*|consider\w*|build|built)\b"
    r"|\b(?:list|show|give)\b[^?]*\b(?:all|every|the)\b[^?]*\b(?:candidates|options|results|trials|recipes)\b"
    r"|\bhow many\b[^?]*\b(?:candidates|trials|recipes|options)\b"
    r"|\bwhich\b[^?]*\b(?:candidates|recipes|options)\b[^?]*\b(?:tried|measured|tested|considered|run)\b",
    re.I,
)
_WHY = re.compile(r"\bwhy\b|\bwhat about\b|\bhow about\b|\bhow come\b", re.I)
_WHY_NOT = re.compile(
    r"\bwhy\b[^?]*\b(?:not|no|didn'?t|did not|wasn'?t|was not|isn'?t|skip\w*|instead|avoid\w*|never)\b"
    r"|\bwhat about\b|\bhow about\b|\bhow come\b",
    re.I,
)
_SHOW: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:fastest|quickest|speediest|lowest[- ]latency)\b", re.I), "latency"),
    (re.compile(r"\b(?:smallest|tiniest|lightest|most compact)\b", re.I), "size"),
    (
        re.compile(
            r"\b(?:most accurate|best accuracy|highest accuracy|least (?:accuracy )?loss|lowest (?:accuracy )?drop)\b",
            re.I,
        ),
        "accuracy",
    ),
]
_MORE: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b(?:smaller|tinier|lighter|more compact|shrink\w*\s+(?:it\s+)?(?:more|further)|compress\w*\s+(?:it\s+)?(?:more|further)|even less space)\b",
            re.I,
        ),
        "size",
    ),
    (re.compile(r"\b(?:faster|quicker|speedier|lower latency|speed (?:it )?up)\b", re.I), "latency"),
    (
        re.compile(
            r"\b(?:more accurate|better accuracy|higher accuracy|less (?:accuracy )?loss|lose less|smaller (?:accuracy )?drop)\b",
            re.I,
        ),
        "accuracy",
    ),
]
_EXPLAIN = re.compile(
    r"\bwhy\b[^?]*\b(?:this|that|it|recommend\w*|chose|choose|chosen|pick\w*)\b|\bexplain\b", re.I
)
_ACCEPT_CUE = re.compile(
    r"\b(?:accept\w*|tolerat\w*|allow\w*|okay|ok|fine|live with|afford|lose|losing|loss|drop|degrad\w*|sacrific\w*|give up)\b",
    re.I,
)
_BARE_PCT = re.compile(r"^\d+(?:\.\d+)?(?:%|pt|pts|pp)$")


def name_pattern(name: str) -> re.Pattern[str]:
    """A model name as a whole word, its parts joined by any of ``-``, ``_`` or a space."""
    body = r"[-_ ]?".join(re.escape(part) for part in re.split(r"[-_ ]+", name) if part)
    return re.compile(rf"(?<![\w./-])(?:{body})(?![\w-])", re.I)


def has_words(text: str) -> bool:
    """Whether ``text`` holds a word (two letters or more)."""
    return re.search(r"[a-z]{2,}", text, re.I) is not None


# --------------------------------------------------------------------------- files and models


@dataclass(frozen=True)
class FileRefs:
    """The files a message names (in its text or with --model/--data), and the ids given outside the text."""

    model_path: str | None  # absolute
    data_path: str | None  # absolute
    model_id: str | None  # a zoo name or stored id given with --model
    data_id: str | None
    text: str  # the message with each path replaced by "the file"


def files_named(text: str, context: Mapping[str, str]) -> FileRefs:
    """The model and data files of a message: paths in its text, or the ``[context: ...]`` values that are paths."""
    model_paths: list[str] = []
    data_paths: list[str] = []
    for m in _PATH_RE.finditer(text):
        p = m.group("path")
        (data_paths if p.lower().endswith(_DATA_SUFFIXES) else model_paths).append(p)
    ctx_model, ctx_data = context.get("model"), context.get("data")
    if ctx_model and (ctx_model.lower().endswith(_MODEL_SUFFIXES) or os.sep in ctx_model):
        model_paths.insert(0, ctx_model)
        ctx_model = None
    if ctx_data and (ctx_data.lower().endswith(_DATA_SUFFIXES) or os.sep in ctx_data):
        data_paths.insert(0, ctx_data)
        ctx_data = None

    def absolute(paths: list[str]) -> str | None:
        return os.path.abspath(os.path.expanduser(paths[0])) if paths else None

    return FileRefs(
        model_path=absolute(model_paths),
        data_path=absolute(data_paths),
        model_id=ctx_model,
        data_id=ctx_data,
        text=_PATH_RE.sub(" the file ", text),
    )


def mentions(text: str, names: Sequence[str]) -> list[tuple[int, int, str]]:
    """Where ``text`` names one of ``names`` (zoo names, stored ids): (start, end, name), in order."""
    found: list[tuple[int, int, str]] = []
    for name in names:
        for m in name_pattern(name).finditer(text):
            found.append((m.start(), m.end(), name))
    # stored ids are "<slug>-<12 hex>": the slug alone names the model when only one id has it
    slugs: dict[str, list[str]] = {}
    for name in names:
        head, _, tail = name.rpartition("-")
        if head and re.fullmatch(r"[0-9a-f]{12}", tail):
            slugs.setdefault(head, []).append(name)
    # the first word of a hyphenated name ("digits" for digits-cnn, "minilm" for minilm-l6) names it too when
    # no other model shares it
    for name in names:
        if "-" in name and not re.search(r"-[0-9a-f]{12}$", name):
            head = name.split("-", 1)[0]
            if len(head) >= 4 and head.isalpha():
                slugs.setdefault(head, []).append(name)
    for slug, ids in slugs.items():
        if len(set(ids)) == 1 and slug not in names:
            for m in name_pattern(slug).finditer(text):
                if not any(s <= m.start() < e for s, e, _ in found):
                    found.append((m.start(), m.end(), ids[0]))
    found.sort()
    return found


def without_mentions(text: str, found: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each model it names replaced by "the model" (the goal reader gets no model names)."""
    for start, end, _ in sorted(found, reverse=True):
        text = text[:start] + "the model" + text[end:]
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- questions about the last sweep


@dataclass(frozen=True)
class Question:
    """What a message asks about the last sweep, when it asks something rather than setting a goal.

    ``kind``: ``tried`` (what did you try?), ``why_not`` (why not int4? ``about``: the technique), ``show`` (show me
    the smallest one; ``about``: the objective), ``more`` (make it smaller; ``about``: the direction), ``explain``
    (why this one?).
    """

    kind: Literal["tried", "why_not", "show", "more", "explain"]
    about: str = ""


def read_question(text: str) -> Question | None:
    """The question ``text`` asks about the last sweep, or None (it sets a goal; a number with a unit always does)."""
    if _UNIT_NUMBER.search(text) is not None:
        return None
    if _TRIED.search(text):
        return Question("tried")
    key = technique_in(text)
    if _WHY_NOT.search(text) and key is not None:
        return Question("why_not", key)
    for pattern, objective in _SHOW:
        if pattern.search(text):
            return Question("show", objective)
    for pattern, direction in _MORE:
        if pattern.search(text):
            return Question("more", direction)
    if _EXPLAIN.search(text) or (_WHY.search(text) and key is None):
        return Question("explain")
    return None


# --------------------------------------------------------------------------- goal words


def accept_rewrite(text: str, goal: dict[str, Any]) -> str | None:
    """ "I can accept 2%": a bare percentage with a word of acceptance is an accuracy loss."""
    if goal.get("max_accuracy_drop_pct") is not None or not _ACCEPT_CUE.search(text):
        return None
    for word in goal.get("unparsed_words") or []:
        if _BARE_PCT.match(str(word)):
            number = re.match(r"\d+(?:\.\d+)?", str(word))
            if number is None:
                continue
            unit = "%" if str(word).endswith("%") else " points"
            pattern = re.compile(rf"(?<![\w.]){re.escape(number.group(0))}\s*(?:%|pts?|pp)(?!\w)", re.I)
            if pattern.search(text):
                return pattern.sub(f"{number.group(0)}{unit} accuracy loss", text, count=1)
    return None
