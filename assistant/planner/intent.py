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
_WHY_FIRST = re.compile(r"^\W*(?:and\s+|but\s+|so\s+)?(?:why|how come)\b", re.I)
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


def normalised_name(name: str) -> str:
    """A model name as it is compared: lower case, without separators ("All-MiniLM_L6 v2" -> "allminilml6v2")."""
    return re.sub(r"[-_.\s]+", "", name.lower())


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


#: words that name a model in general ("make the model smaller"): a stored model whose file was called
#: model.onnx is named by its whole id, never by this word alone
GENERIC_NAMES = frozenset(
    [
        "model",
        "models",
        "network",
        "net",
        "nn",
        "file",
        "onnx",
        "weights",
        "checkpoint",
        "export",
        "exported",
        "final",
        "best",
        "new",
        "old",
        "test",
        "tmp",
        "temp",
        "output",
        "out",
        "my",
        "the",
        "it",
        "this",
        "that",
    ]
)
_NAME_RUN = re.compile(r"[A-Za-z0-9]+")
_NAME_JOINERS = ("-", "_", " ", ".")


def _name_keys(names: Sequence[str], aliases: Mapping[str, str]) -> dict[str, str]:
    """Normalised form -> the model name it stands for: each name, its aliases, and a short form that names one
    model only (a stored id's slug, the first word of a hyphenated zoo name such as "digits" or "minilm")."""
    keys: dict[str, str] = {}
    for name in names:
        keys.setdefault(normalised_name(name), name)
    for alias, name in aliases.items():
        if name in names:
            keys.setdefault(normalised_name(alias), name)
    slugs: dict[str, list[str]] = {}
    for name in names:
        head, _, tail = name.rpartition("-")
        if head and re.fullmatch(r"[0-9a-f]{12}", tail):
            slugs.setdefault(head, []).append(name)
        elif "-" in name:
            first = name.split("-", 1)[0]
            if len(first) >= 4 and first.isalpha():
                slugs.setdefault(first, []).append(name)
    for slug, ids in slugs.items():
        key = normalised_name(slug)
        if len(set(ids)) == 1 and key not in keys and slug.lower() not in GENERIC_NAMES:
            keys[key] = ids[0]
    return keys


def _glued(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is part of a longer name ("MiniLM-L6" inside "all-MiniLM-L6-v2", a path)."""
    before = text[start - 2 : start] if start >= 2 else " " + text[:start]
    after = text[end : end + 2]
    return (len(before) == 2 and before[1] in "-_./" and before[0].isalnum()) or (
        len(after) == 2 and after[0] in "-_./" and after[1].isalnum()
    )


def mentions(
    text: str, names: Sequence[str], aliases: Mapping[str, str] | None = None
) -> list[tuple[int, int, str]]:
    """Where ``text`` names one of ``names`` (zoo names, stored ids): (start, end, name), in order.

    Names are compared normalised (case, ``-``/``_``/``.``/space separators): "MiniLM L6", "minilm_l6" and
    "MINILM-L6" all name ``minilm-l6``; ``aliases`` (alias -> name, e.g. the zoo's own "all-MiniLM-L6-v2") name
    theirs. The longest name wins, and a name glued into a longer one is not a mention.
    """
    keys = _name_keys(names, aliases or {})
    runs = list(_NAME_RUN.finditer(text))
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(runs):
        best: tuple[int, int, str, int] | None = None
        joined = ""
        for j in range(i, min(i + 8, len(runs))):
            if j > i and text[runs[j - 1].end() : runs[j].start()] not in _NAME_JOINERS:
                break
            joined += runs[j].group(0).lower()
            start, end = runs[i].start(), runs[j].end()
            if joined in keys and not _glued(text, start, end):
                best = (start, end, keys[joined], j)
        if best is None:
            i += 1
            continue
        found.append(best[:3])
        i = best[3] + 1
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
    words: str = ""  # the words that asked it ("faster")


def read_question(text: str) -> Question | None:
    """The question ``text`` asks about the last sweep, or None (it sets a goal).

    A number with a unit makes a message a goal ("what about under 30 KB?"), except in a question that starts with
    "why": "why not int4 when it's 4x smaller?" asks about the last report and quotes a number, it sets nothing.
    """
    if _UNIT_NUMBER.search(text) is not None and not _WHY_FIRST.match(text):
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
        if m := pattern.search(text):
            return Question("more", direction, m.group(0))
    if _EXPLAIN.search(text) or (_WHY.search(text) and key is None):
        return Question("explain")
    return None


def direction_in(text: str) -> tuple[str, str] | None:
    """ "make it faster": the direction a request asks for (``size``, ``latency``, ``accuracy``) and its words."""
    for pattern, direction in _MORE:
        if m := pattern.search(text):
            return direction, m.group(0)
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


#: words that carry no goal in a request to this assistant: what it is asked to do (it always compresses and
#: measures), talk around the request, and the words standing in for the model and the file it names
REQUEST_WORDS = frozenset(
    [
        "actually",
        "now",
        "then",
        "instead",
        "also",
        "again",
        "anyway",
        "anyways",
        "basically",
        "just",
        "really",
        "maybe",
        "perhaps",
        "hmm",
        "um",
        "uh",
        "well",
        "so",
        "okay",
        "ok",
        "yes",
        "yeah",
        "sure",
        "right",
        "great",
        "cool",
        "nice",
        "thanks",
        "thank",
        "please",
        "hi",
        "hello",
        "hey",
        "there",
        "convert",
        "converted",
        "converting",
        "squeeze",
        "squeezed",
        "squeezing",
        "shrink",
        "shrinking",
        "shrunk",
        "compress",
        "compressing",
        "optimise",
        "optimize",
        "optimizing",
        "optimising",
        "quantise",
        "quantize",
        "quantizing",
        "quantising",
        "process",
        "produce",
        "create",
        "build",
        "export",
        "exported",
        "deploy",
        "find",
        "give",
        "show",
        "tell",
        "want",
        "wanna",
        "gonna",
        "could",
        "would",
        "can",
        "you",
        "me",
        "something",
        "anything",
        "file",
        "model",
        "model's",
        "version",
        "copy",
        "one",
    ]
)


def unread_words(goal: dict[str, Any], used: Sequence[str] = ()) -> list[str]:
    """The words of a request nobody understood: what the goal reader left (``unparsed_words``, stop-words already
    out) less the words the planner read itself (``used``: "faster" in "make it faster") and :data:`REQUEST_WORDS`.
    Any such word is asked about before a sweep runs: a misreading is worse than a question."""
    mine = {w.lower() for phrase in used for w in re.findall(r"[\w%.'-]+", phrase)}
    out: list[str] = []
    for word in goal.get("unparsed_words") or []:
        w = str(word).strip().lower()
        if not w or w in mine or w in REQUEST_WORDS or not re.search(r"[a-z0-9]", w):
            continue
        out.append(str(word))
    return out


_CONFIRM = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|y|right|correct|exactly|sure|ok|okay|fine|good|perfect|affirmative|"
    r"that'?s (?:right|correct|it|fine)|sounds (?:good|right)|looks (?:good|right)|go ahead|go for it|do it|"
    r"run it|please do|please|yes please)"
    r"(?:[\s,.!]+(?:yes|right|correct|please|go ahead|run it|do it|thanks|thank you|that'?s right|exactly))*\W*$",
    re.I,
)
_REFUSE = re.compile(r"^\W*(?:no|nope|nah|wrong|not (?:right|quite|really)|incorrect)\W*$", re.I)


def is_confirmation(text: str) -> bool:
    """ "yes", "right, go ahead": the user confirms the goal the planner read back to them."""
    return _CONFIRM.match(text.strip()) is not None


def is_refusal(text: str) -> bool:
    """ "no", "wrong": the reading was not what they meant, and they said nothing else."""
    return _REFUSE.match(text.strip()) is not None
