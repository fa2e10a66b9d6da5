"""Deterministic English-to-Goal parser: the offline reading of what a user wants from compression.

``parse_goal("under 5 MB, <1% accuracy loss")`` returns a :class:`Goal` with ``max_size_mb=5.0`` and
``max_accuracy_drop_pct=1.0``. No LLM and no network are involved: the text is normalised (lower case,
unicode comparison signs, number words, contractions), then ordered rules read it. Each rule masks the
characters it used, so no word is read twice. What was read is reported in ``Goal.readings`` (the words and
the fields each stretch set) and the words no rule used in ``Goal.unparsed_words`` (stop-words left out):
nothing is silently guessed, and a caller can ask the user about what was not understood. A word is never in
both; an impossible number (a 150% floor, a 0 MB saving) is not understood.

Conventions (documented choices, not guesses):

* 1 MB = 1,000,000 bytes; kB/KB/kilobyte = 1,000 bytes; KiB/MiB/GiB are binary (1024) and converted to decimal
  MB. Numbers in words are read when a unit follows ("two hundred milliseconds", "one and a half megabytes",
  "a third of a second").
* ``max_accuracy_drop_pct`` is in percentage points of the task metric versus the original model.
  "no accuracy loss" / "without losing accuracy" / "keep accuracy" give ``0.0``: a strict reading that the
  measuring side must apply with its own noise tolerance.
* A floor on the metric's level is ``min_metric`` on its 0..1 scale ("must not drop below 75%", "at least 98%
  accuracy", "F1 of at least 0.8"): a level crossed ("drop below", "falls under"), a floor word ("at least",
  "or higher", "floor") or a requirement ("I need 95% accuracy"), with no drop noun ("1% accuracy loss" stays
  a drop). A percentage of the original ("of the baseline", "of its accuracy", "relative") is
  ``min_metric_ratio``: kept ("keep 95% of", "not below 90% of") -> 0.95 / 0.9, lost ("lose 3% of", "within 2%
  of", "a 1% relative drop") -> 1 - p. Points ("0.3 points of the baseline") stay a drop. A floor relative to
  the original without a noun ("not below 90% of the baseline") is read as the metric's: size and latency are
  bounded from above.
* Speed: "X% faster" is X% more speed (``min_speedup`` 1 + X), "X% lower latency" / "cut latency by X%" is
  1 / (1 - X). A bound on how much slower it may be is ``max_latency_ratio`` (latency / original latency):
  "within 10% of the original latency" 1.1, "may increase by at most 20%" 1.2, "at most 2x slower" 2.0,
  "throughput may drop 10%" 1 / 0.9.
* Amounts of change against the original are their own fields: "reduce the size by 4 MB" / "4 MB smaller"
  ``min_size_reduction_mb``; "at most 5 ms slower" / "within 5 ms of the original" ``max_latency_increase_ms``;
  "5 ms faster" / "shave 5 ms off" ``min_latency_reduction_ms``. A memory saving or a size that may grow has no
  field and stays unparsed.
* A size of RAM/memory/VRAM ("2 MB of RAM", "peak memory under 1 GB") is ``max_memory_mb``; on disk, file,
  flash or storage it is ``max_size_mb``: two sizes in one sentence are two limits.
* "edge", "mobile", "phone", "Raspberry Pi", "laptop" and "embedded" mean ``device="cpu"``; so does a GPU that
  is not there ("no GPU", "GPUs aren't available", "GPU? we don't have one").
* Only p50 latency is in the schema: a p90/p95/p99 bound is left unparsed.
* Several bounds on one quantity combine to the strictest (they all must hold); a size or latency that is
  described as the current one ("it is 40 MB now", "from 40 MB") is not a bound and stays unparsed; one
  marked as a wish ("ideally under 3 MB", "I'd prefer no fp16") stays unparsed too.
* "int8 only" / "only quantization" allow only quantization (QAT included); "no pruning" forbids pruning and
  leaves the allowed list unset; "pruning is fine" restricts nothing. "avoid fp16" forbids a precision
  (``precision_forbidden``). "don't quantize the first and last layers" keeps them in float
  (``keep_float_layers``) and forbids nothing. "no QAT", "post-training only", "no retraining" forbid the
  method ``qat`` (nothing trains); "PTQ only" also allows only quantization. "don't just quantize it" asks for
  quantization and forbids nothing; "only prune if quantization alone isn't enough" / "pruning as a last
  resort" keep pruning as a fallback (``methods_fallback``): used only when nothing else meets the goal.
* "I don't care about latency, only about size" / "size over latency" give the objective said by contrast; the
  dismissed quantity sets nothing.
* "on 4 threads" / "4 cores" / "single-threaded" set ``threads``, "batch 32" / "batch size of 8" / "32 images per
  batch" set ``batch_size``: how the model will run, so latency is measured that way (not limits).
* Contradictions (two objectives, two precisions, two devices, a method both allowed and forbidden, a precision
  both asked for and forbidden) set nothing and leave their words unparsed.
"""

import bisect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from optimizer.types import Device, Goal, Method, Objective, Precision, Reading

__all__ = ["parse_goal"]

# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_UNITS_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS_WORDS: dict[str, int] = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS_WORDS: dict[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALE_WORDS: dict[str, int] = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD_RE = "|".join([*_TEENS_WORDS, *_TENS_WORDS, *_UNITS_WORDS, *_SCALE_WORDS])
# A number word becomes digits only before something that makes it a quantity ("ten times", "two ms").
_UNIT_AHEAD = (
    r"(?=\s*-?\s*(?:times|x\b|fold|%|percent|per\s*cent|percentage|points?\b|pts?\b|pp\b|ms\b|milli|micro|"
    r"nano|seconds?\b|secs?\b|s\b|[kmg]i?b\b|bytes|kilo|mega|giga|kibi|mebi|gibi|bits?\b|thirds?|quarters?|"
    r"fifths?|tenths?|megs?\b|gigs?\b))"
)
# a cardinal in words: "two hundred", "twenty-five", "a hundred and fifty", "one thousand five hundred",
# "three point five"
_CARDINAL_RE = (
    rf"\b(?P<words>(?:(?:a|an)\s+(?=(?:hundred|thousand|million)\b))?(?:{_NUMBER_WORD_RE})"
    rf"(?:(?:\s+and\s+|\s+|-)(?:{_NUMBER_WORD_RE}))*(?:\s+point(?:\s+(?:{'|'.join(_UNITS_WORDS)}))+)?)\b"
)


def _cardinal(phrase: str) -> float | None:
    """The value of an English cardinal ("two hundred and five", "twenty-five", "three point five"), or None
    when the words do not form one ("two three", "five twenty")."""
    whole, _, decimals = phrase.partition(" point ")
    words = [w for w in re.split(r"[\s-]+", whole.strip()) if w and w != "and"]
    total, current = 0, 0
    last = ""  # the kind of the previous word
    previous_scale = math.inf
    for w in words:
        if w in ("a", "an"):
            current, last = 1, "unit"
        elif w in _UNITS_WORDS:
            if last not in ("", "tens", "hundred", "scale") or (w == "zero" and (last or len(words) > 1)):
                return None
            current, last = current + _UNITS_WORDS[w], "unit"
        elif w in _TEENS_WORDS:
            if last not in ("", "hundred", "scale"):
                return None
            current, last = current + _TEENS_WORDS[w], "teen"
        elif w in _TENS_WORDS:
            if last not in ("", "hundred", "scale"):
                return None
            current, last = current + _TENS_WORDS[w], "tens"
        elif w == "hundred":
            if last not in ("unit", "teen", "tens") or current >= 100:
                return None
            current, last = current * 100, "hundred"
        elif w in _SCALE_WORDS:
            scale = _SCALE_WORDS[w]
            if last not in ("unit", "teen", "tens", "hundred") or scale >= previous_scale:
                return None
            total, current, last, previous_scale = total + current * scale, 0, "scale", scale
        else:
            return None
    value = float(total + current)
    if decimals:
        digits = [_UNITS_WORDS.get(w) for w in decimals.split()]
        if any(d is None for d in digits) or last in ("scale", "hundred"):
            return None
        value = float(f"{int(value)}.{''.join(str(d) for d in digits)}")
    return value


def _cardinal_digits(m: re.Match[str]) -> str:
    value = _cardinal(m.group("words"))
    if value is None:
        return m.group(0)
    return f"{value:g}" if value < 1e15 else m.group(0)


_FRACTION_WORDS: dict[str, float] = {
    "half": 1 / 2,
    "halves": 1 / 2,
    "third": 1 / 3,
    "thirds": 1 / 3,
    "quarter": 1 / 4,
    "quarters": 1 / 4,
    "fifth": 1 / 5,
    "fifths": 1 / 5,
    "tenth": 1 / 10,
    "tenths": 1 / 10,
}
_UNIT_WORD_AHEAD = (
    r"(?=(?:percent|per\s*cent|percentage|points?\b|pp\b|pts?\b|%|seconds?\b|milliseconds?\b|microseconds?\b|"
    r"megabytes?\b|gigabytes?\b|kilobytes?\b|gig\b|meg\b))"
)


def _fraction_of_unit(m: re.Match[str]) -> str:
    count = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "nine": 9}.get(m.group("n"))
    if count is None:
        count = int(m.group("n"))
    return f"{round(count * _FRACTION_WORDS[m.group('f')], 6):g} "


_REPLACEMENTS: list[tuple[str, str]] = [
    ("\u2018", "'"),
    ("\u2019", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
    ("\u2264", " <= "),
    ("\u2266", " <= "),
    ("\u2265", " >= "),
    ("\u2267", " >= "),
    ("\u00b5", "u"),
    ("\u03bc", "u"),
    ("\u00d7", "x"),
    ("\u2013", "-"),
    ("\u2014", " - "),
    ("\u2212", "-"),
    ("\u00a0", " "),
    ("\u202f", " "),
    ("\u2009", " "),
    ("\uff05", "%"),
    ("\0", " "),
]


def _and_a_half(m: re.Match[str]) -> str:
    value = _cardinal(m.group(1)) if not m.group(1).isdigit() else float(m.group(1))
    return m.group(0) if value is None else f"{value + 0.5:g}"


_Replacement = str | Callable[[re.Match[str]], str]
_RAW_REGEX_REPLACEMENTS: list[tuple[str, _Replacement]] = [
    (r"\bcan't\b|\bcannot\b", "can not"),
    (r"\bwon't\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"n't\b", " not"),
    (r"\b(it|that|what|there|here|which)'s\b", r"\1 is"),
    (r"'re\b", " are"),
    (r"'ve\b", " have"),
    (r"'ll\b", " will"),
    (r"'d\b", " would"),
    (r"\bi'm\b", "i am"),
    (r"'s\b", ""),
    (r"=<", "<="),
    (r"=>", ">="),
    (r"\bsub-(?=\d)", "sub "),
    # "x4" is a multiplier; "x86" and "x64" are CPU architectures.
    (r"(?<![\w.])x\s?(?!86\b|64\b)(\d+(?:\.\d+)?)(?![\w.])", r"\1x"),
    (rf"\b((?:(?:{_NUMBER_WORD_RE})[\s-]+)*(?:{_NUMBER_WORD_RE})|\d+)\s+and\s+a\s+half\b", _and_a_half),
    (r"\btwice\b", "2 times"),
    (r"\bthrice\b", "3 times"),
    (r"\b(?:an|1|one)\s+orders?\s+of\s+magnitude\b", "10x"),
    (r"\b(?:2|two)\s+orders\s+of\s+magnitude\b", "100x"),
    (
        r"\b(?P<n>an?|one|two|three|four|nine|\d)\s+(?P<f>half|halves|thirds?|quarters?|fifths?|tenths?)\s+of\s+"
        r"an?\s+" + _UNIT_WORD_AHEAD,
        _fraction_of_unit,
    ),
    (_CARDINAL_RE + _UNIT_AHEAD, _cardinal_digits),
    (
        r"\bhalf\s+an?\s+(?=percent|per\s*cent|percentage|points?\b|pp\b|pts?\b|%|seconds?\b|milliseconds?\b|"
        r"megabytes?\b|gigabytes?\b|kilobytes?\b|gig\b|meg\b)",
        "0.5 ",
    ),
    (
        r"\b(under|than|within|in|below|most|about|around|max|maximum)\s+an?\s+"
        r"(seconds?|milliseconds?|megabytes?|gigabytes?|kilobytes?|gig|meg)\b",
        r"\1 1 \2",
    ),
    (
        r"\b(?:a|1)\s+quarter\s+of\s+an?\s+(?=percent|per\s*cent|percentage|points?\b|pp\b|pts?\b)",
        "0.25 ",
    ),
    (r"\b(?:a|1)\s+tenth\s+of\s+an?\s+(?=percent|per\s*cent|percentage|points?\b|pp\b|pts?\b)", "0.1 "),
    (r"\bper\s+cent\b", "percent"),
    (r"(?<![\w.])(\d+\s*/\s*\d+)(?:st|nd|rd|th)\b", r"\1"),
    (r"\s*\n\s*", "\n"),
    (r"[ \t\r\f\v]+", " "),
]
_REGEX_REPLACEMENTS: list[tuple[re.Pattern[str], _Replacement]] = [
    (re.compile(pattern), repl) for pattern, repl in _RAW_REGEX_REPLACEMENTS
]


def _normalise(text: str) -> str:
    """Lower-case ``text`` and rewrite spelling variants so that the rules can stay simple."""
    s = text.lower()
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    for pattern, repl in _REGEX_REPLACEMENTS:
        s = pattern.sub(repl, s)
    return s.strip()


# --------------------------------------------------------------------------------------------------
# Scanning state
# --------------------------------------------------------------------------------------------------

_MASK = "\0"


@dataclass
class _Vote:
    value: str
    spans: list[tuple[int, int]]


@dataclass
class _Note:
    """Spans one rule understood together, and the Goal fields they set (a :class:`Reading` once kept)."""

    spans: list[tuple[int, int]]
    fields: tuple[str, ...]


@dataclass
class _Scan:
    """The normalised text, what rules have masked, which characters count as understood, and what each
    understood span set."""

    norm: str
    work: str = ""
    used: list[bool] = field(default_factory=list)
    notes: list[_Note] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.work = self.norm
        self.used = [False] * len(self.norm)

    def free(self, start: int, end: int) -> bool:
        return _MASK not in self.work[start:end]

    def take(self, start: int, end: int, understood: bool = True, fields: tuple[str, ...] = ()) -> None:
        """Mask ``[start, end)`` so no later rule reads it; ``understood`` marks it as parsed and notes the Goal
        ``fields`` it set (none: read, restricts nothing)."""
        if end <= start:
            return
        self.work = self.work[:start] + _MASK * (end - start) + self.work[end:]
        if understood:
            for i in range(start, end):
                self.used[i] = True
            self.notes.append(_Note([(start, end)], fields))

    def unmask(self, start: int, end: int) -> None:
        """Let later rules read ``[start, end)`` again (it stays understood): "GPU" of "GPU memory" names the
        device and is part of the memory limit."""
        self.work = self.work[:start] + self.norm[start:end] + self.work[end:]

    def take_all(self, spans: list[tuple[int, int]], fields: tuple[str, ...]) -> None:
        """Mask and understand several spans that one reading set together."""
        spans = [(s, e) for s, e in spans if e > s]
        for s, e in spans:
            self.work = self.work[:s] + _MASK * (e - s) + self.work[e:]
            for i in range(s, e):
                self.used[i] = True
        if spans:
            self.notes.append(_Note(sorted(spans), fields))

    def readings(self) -> list[Reading]:
        """What was understood, one reading per rule that read it, in text order; a note whose words were all
        released (a contradiction, an impossible value) is dropped."""
        out: list[tuple[int, Reading]] = []
        for note in self.notes:
            kept: list[tuple[int, int]] = []
            for s, e in note.spans:
                if not any(self.used[s:e]):
                    continue
                if kept and not self.norm[kept[-1][1] : s].strip():  # adjacent: one stretch of words
                    kept[-1] = (kept[-1][0], max(e, kept[-1][1]))
                else:
                    kept.append((s, e))
            if not kept:
                continue
            text = " ... ".join(self.norm[s:e].strip(" :;,=~\n") for s, e in kept).strip()
            if not text:
                continue
            fields = [f for f in dict.fromkeys(note.fields)][:8]
            out.append((kept[0][0], Reading(text=text[:400], fields=fields)))  # type: ignore[arg-type]
        out.sort(key=lambda item: item[0])
        return [r for _, r in out][:200]

    def release(self, spans: list[tuple[int, int]]) -> None:
        """Mark spans as not understood again (they stay masked): used for contradictions."""
        for start, end in spans:
            for i in range(start, end):
                self.used[i] = False

    def matches(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Matches of ``pattern`` in the unmasked text, checked against the mask as rules consume."""
        for m in pattern.finditer(self.work):
            if m.end() > m.start() and self.free(m.start(), m.end()):
                yield m


def _kw(body: str) -> re.Pattern[str]:
    """Compile ``body`` as a whole-word pattern (not inside a model name such as ``resnet50``)."""
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w]|-[a-z])")


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

# A minus sign before a number makes it negative, and no size, time, percentage or factor is negative: such a
# number is left unread (its words stay in unparsed_words) instead of being read without its sign.
_NUM = r"(?<![\w.-])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# Names of task metrics; a drop in any of them is read as the accuracy drop (in points of that metric).
_METRIC = r"wer|cer|bleu|rouge(?:-?[l12])?|miou|auc|map|exact[\s-]match|em"
_ACC = (
    r"(?:top-?[15](?:\s+(?:accuracy|acc))?|(?:task\s+|test\s+|validation\s+|val\s+|eval\s+)?"
    r"(?:accuracy|acc|f1(?:[\s-]score)?|metric|score|quality|wer|cer|bleu|rouge(?:-?[l12])?|miou|auc|"
    r"exact[\s-]match|spearman|pearson|correlation|m?iou|map))"
)
_DROP_NOUN = r"(?:loss(?:es)?|drops?|degradation|decrease|decline|regression|hit|penalty|reduction)"
# QAT first: "quantization-aware training" must not be read as "quantization"
_QAT = (
    r"qat|quanti[sz]ation[\s-]aware(?:[\s-]training)?|quant[\s-]aware[\s-]training|"
    r"training[\s-]aware\s+quanti[sz]ation"
)
_METH = rf"{_QAT}|quanti[sz](?:e|es|ed|ing|ation)|quant|prun(?:e|es|ed|ing)|sparsi(?:ty|fy|fication|fied|fying)|sparse"


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _method_of(word: str) -> Method:
    if word.startswith("qat") or "aware" in word:
        return "qat"
    return "quantize" if word.startswith("quant") else "prune"


_STOPWORDS = _wordset(
    """
    a an the and or but nor if then than so such that this these those it its itself i me my we us our ours
    you your they them their he she him her is are was were be been being am do does did doing done have has
    had having will would should shall can could may might must need needs needed want wants wanted like
    please pls thanks thank kindly to of in on at by for with from into onto as about around roughly
    approximately approx up down out over under below above beneath within inside less more most least than
    no not never nothing any all some each every both either neither only just also too very really still even
    well max maximum min minimum fewer much many what which who whom whose where when how why there here
    model models network networks net neural nn compress compressed compression optimize optimise optimized
    optimised optimization optimisation make makes made get gets got keep keeps kept stay stays remain
    remains target targets goal goals budget limit limits cap capped ceiling hard soft strict constraint
    constraints requirement requirements version variant thing something give help result output final
    run runs running use using used apply applying try trying let lets ok okay fine sure hi hello hey
    tool job task want reduce reduced reducing cut bring go going way while whereas plus else without
    inference original baseline current initial reference fp32 unquantized uncompressed weigh weighs
    accept accepts acceptable tolerate tolerable afford live allow allowed reduction answer answers respond
    reply predict become becomes becoming keeping staying remaining making getting shave trim slash off aim
    aiming aims targeting deploy deployed deploying deployment ship shipped shipping serve served serving
    must needs required require requires so-that same one ones lot bit little quite pretty
    say says said tell tells told team product manager boss customer client users user new

    """
)

# --------------------------------------------------------------------------------------------------
# Rules without numbers: precision, methods, device, objective
# --------------------------------------------------------------------------------------------------

_PRECISION_TOKENS: list[tuple[str, Precision]] = [
    (
        r"fp[\s-]?16|float[\s-]?16|f16|half[\s-]precision(?:\s+floats?)?|half[\s-]floats?|"
        r"16[\s-]?bit\s+float(?:ing[\s-]point)?s?",
        "fp16",
    ),
    (r"u?int[\s-]?8|q?int8|i8|8[\s-]?bits?", "int8"),
    (r"u?int[\s-]?4|q?int4|i4|4[\s-]?bits?", "int4"),
]
_ONLY = r"only|just|exclusively|solely|purely"
_PRECISION_PRE = (
    rf"(?:(?P<only_pre>{_ONLY})\s+)?"
    r"(?:(?:use|using|quanti[sz](?:e|ed|ing)(?:\s+(?:it|the\s+model|the\s+weights|weights))?\s+(?:to|into|in|at|with)"
    r"|convert(?:ed)?\s+(?:it\s+)?to|cast(?:\s+it)?\s+to|go|in|to|at|with|via)\s+)?"
)
_PRECISION_POST = (
    r"(?:(?:[\s-]+(?:integers?|ints?|weights?(?:\s+and\s+activations)?|activations?|quanti[sz]ation|"
    r"quanti[sz]ed|precision|inference|dynamic|static|model|arithmetic|math|values|floats?|"
    r"(?P<only_post>only)))*)"
)
_PRECISION_RULES: list[tuple[re.Pattern[str], Precision]] = [
    (re.compile(rf"(?<![\w-]){_PRECISION_PRE}(?:{tokens})(?![\w]){_PRECISION_POST}"), value)
    for tokens, value in _PRECISION_TOKENS
]

_ANY_PRECISION = "|".join(f"(?:{tokens})" for tokens, _ in _PRECISION_TOKENS)
_PRECISION_TAIL = (
    r"(?:[\s-]+(?:integers?|ints?|weights?|activations?|quanti[sz]ation|quanti[sz]ed|precision|inference|"
    r"models?|arithmetic|math|values|floats?|kernels?|support|ops|operators))*"
)
_PRECISION_LIST = (
    rf"(?P<p1>{_ANY_PRECISION}){_PRECISION_TAIL}(?:\s*(?:,|/|or|nor|and|and/or)\s*(?P<p2>{_ANY_PRECISION}))?"
    rf"{_PRECISION_TAIL}"
)
# where something is not supported or not there ("on our hardware", "in production"): part of the reading
_WHERE_TAIL = (
    r"(?:\s+(?:on|by|in|with|for)\s+(?:our|my|the|this|that|their|your)\s+(?:target\s+)?(?:hardware|devices?|"
    r"targets?|chips?|boards?|platforms?|npus?|dsps?|accelerators?|runtimes?|machines?|servers?|production|"
    r"deployment|setup|stack|cluster|environment|infrastructure))?"
)
# "..., so avoid it": the same precision again, by pronoun
_AVOID_IT_TAIL = (
    r"(?:\s+(?:there|here))?(?:\s*[,;]?\s*(?:so\s+|therefore\s+|just\s+)?(?:avoid|skip|drop|exclude|forget|leave\s+out)"
    r"\s+(?:it|them|that|those))?"
)
# "avoid fp16", "no int4", "fp16 is not supported", "our hardware can't run fp16": a precision that must not be used
_PRECISION_FORBID_RULES: list[re.Pattern[str]] = [
    _kw(
        r"(?:no|not|never|without|avoid(?:ing)?|skip(?:ping)?|exclud(?:e|ing)|disallow|forbid|refrain\s+from|"
        r"rather\s+than|instead\s+of|other\s+than|except|but\s+not|anything\s+but|stay\s+away\s+from|"
        r"(?:do|does|can|could|will|would)\s+not\s+(?:support|run|handle|do|want|like|use|accept))\s+"
        r"(?:(?:use|using|go|going|to|any|the|an?|quanti[sz](?:e|ing)\s+(?:to|into|in)|convert(?:ing)?\s+to|"
        r"cast(?:ing)?\s+to)\s+){0,3}" + _PRECISION_LIST
    ),
    _kw(
        _PRECISION_LIST
        + r"\s+(?:(?:is|are|would\s+be|will\s+be)\s+)?(?:both\s+|all\s+|also\s+|simply\s+)?(?:not\s+(?:supported|allowed|ok|okay|an?\s+option|"
        r"acceptable|available|possible|wanted|permitted|fine)|unsupported|forbidden|prohibited|banned|"
        r"off[\s-]the[\s-]table|out\s+of\s+the\s+question|a\s+no-?go|not\s+something\s+we\s+can\s+use|"
        r"out(?=\s*(?:$|[,;.!?\n]))|"
        r"ruled\s+out|excluded|no\s+good|"
        r"pointless|useless|no\s+use|of\s+no\s+use|a\s+waste(?:\s+of\s+time)?|not\s+(?:useful|helpful|worth\s+it|"
        r"needed|necessary|an\s+improvement))" + _WHERE_TAIL + _AVOID_IT_TAIL
    ),
    _kw(
        _PRECISION_LIST
        + r"\s+(?:does|do|will|would)\s+not\s+(?:work|run|fly|help)"
        + _WHERE_TAIL
        + _AVOID_IT_TAIL
    ),
]

_FORBID_PRE = _kw(
    r"(?:no|not|never|without|avoid(?:ing)?|skip(?:ping)?|exclud(?:e|ing)|disallow|forbid|refrain\s+from)\s+"
    r"(?:(?:use|using|apply|applying|do|doing|perform|performing|want|any|to|be|allowed|permitted|the|"
    r"need|needed|going)\s+){0,4}"
    rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|nor|and|and/or)\s*(?P<m2>{_METH}))?"
    r"(?!\s+(?:more|over|above|beyond|by|past|too|the\s+\w+\s+more))"
)
_FORBID_POST = _kw(
    rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|and)\s*(?P<m2>{_METH}))?\s+(?:is\s+|are\s+)?"
    r"(?:not\s+(?:allowed|ok|okay|fine|acceptable|permitted|wanted|desired|an\s+option|possible|an?\s+option)"
    r"|forbidden|prohibited|banned|disallowed|off[\s-]the[\s-]table|out\s+of\s+the\s+question|excluded)"
)
_ONLY_PRE = _kw(
    rf"(?:{_ONLY}|nothing\s+but|stick\s+(?:to|with)|limit(?:ed)?\s+(?:it\s+)?to|restrict(?:ed)?\s+to)\s+"
    r"(?:(?:use|using|apply|applying|do|doing|want|wanting|need|allow|permit|try|trying)\s+)?"
    rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|and)\s*(?P<m2>{_METH}))?"
)
_ONLY_POST = _kw(
    rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|and)\s*(?P<m2>{_METH}))?"
    r"(?:(?:\s+|-)only|\s*,?\s*(?:and\s+)?nothing\s+else)"
)
_PERMIT = [
    _kw(
        rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|and)\s*(?P<m2>{_METH}))?\s+(?:is|are)\s+"
        r"(?:both\s+|also\s+|totally\s+|perfectly\s+)?"
        r"(?:fine|ok|okay|allowed|acceptable|permitted|welcome|an?\s+option|on\s+the\s+table)"
    ),
    _kw(
        r"(?:can|may|feel\s+free\s+to|ok\s+to|okay\s+to|fine\s+to|allowed\s+to|happy\s+to|free\s+to)\s+"
        rf"(?:also\s+)?(?:use\s+|apply\s+)?(?P<m1>{_METH})(?:\s*(?:,|/|or|and)\s*(?P<m2>{_METH}))?"
    ),
]
_MENTION = _kw(rf"(?:(?:use|using|apply|applying|try|trying|with|via|by)\s+)?(?P<m1>{_METH})")
# Layers kept in float: "don't quantize the first and last layers", "keep the classifier in fp32",
# "quantize everything except the first layer".
_LAYER_END = r"first|last|input|output|final|initial|top|bottom"
_LAYER_NAMED = (
    rf"(?:(?:the\s+|its\s+|their\s+)?(?P<l1>{_LAYER_END})(?:\s*(?:and|&|,|/|or|plus)\s*(?:the\s+)?(?P<l2>{_LAYER_END}))?"
    r"\s+(?:(?:conv(?:olution(?:al)?)?|dense|linear|fully[\s-]connected|fc|classifier|classification|embedding|"
    r"weight|network)\s+)?(?:layers?|ones?|convs?|blocks?)"
    r"|(?:the\s+)?(?P<head>classifier(?:\s+(?:head|layer))?|classification\s+(?:head|layer)|output\s+head|"
    r"prediction\s+head|head\s+layer|stem(?:\s+layer)?))"
)
_LAYER_BARE = (
    rf"(?:(?:the\s+)?(?P<l1>{_LAYER_END})(?:\s*(?:and|&|,|/|or|plus)\s*(?:the\s+)?(?P<l2>{_LAYER_END}))?)"
)
_FLOAT_WORDS = (
    r"(?:full[\s-]precision|float(?:ing[\s-]point)?(?:[\s-]?32)?|fp32|f32|32[\s-]?bits?(?:\s+floats?)?|"
    r"unquantized|non-?quantized|original\s+precision|higher\s+precision)"
)
_KEEP_FLOAT_RULES: list[re.Pattern[str]] = [
    _kw(
        r"(?:do\s+not|never|no|not|avoid|without|skip|exclude|spare)\s+(?:(?:quanti[sz](?:e|es|ed|ing)|touch(?:ing)?|"
        r"convert(?:ing)?|compress(?:ing)?)\s+)?(?:quanti[sz]ation\s+(?:of|on|for|in|to)\s+|(?:of|on|for|in)\s+)?"
        + _LAYER_NAMED
    ),
    _kw(
        r"(?:keep|keeping|leave|leaving|retain|retaining|preserve|preserving|hold)\s+"
        + _LAYER_NAMED
        + rf"\s+(?:(?:in|at|as)\s+{_FLOAT_WORDS}|unquantized|untouched|alone|as\s+(?:is|they\s+are|it\s+is))"
    ),
    _kw(
        _LAYER_NAMED
        + r"\s+(?:(?:must|should|need\s+to|needs\s+to|have\s+to|has\s+to|shall|will|can|may)\s+)?"
        r"(?:(?:not|never)\s+be\s+(?:quanti[sz]ed|touched|converted|compressed)|(?:stay|stays|remain|remains|be\s+kept|"
        rf"be\s+left|are\s+kept|is\s+kept)\s+(?:in\s+)?{_FLOAT_WORDS}|(?:stay|stays|remain|remains)\s+unquantized)"
    ),
    _kw(
        r"quanti[sz](?:e|es|ed|ing)\s+(?:(?:all|every(?:thing)?|the\s+rest|all\s+(?:the\s+)?(?:other\s+)?layers|"
        r"every\s+layer|the\s+(?:whole\s+)?model|it)\s+)?(?:except|but|other\s+than|apart\s+from|excluding|save\s+for|"
        r"besides)\s+(?:for\s+)?(?:" + _LAYER_NAMED.replace("(?P<", "(?P<x") + "|" + _LAYER_BARE + ")"
    ),
]
# a scope the schema cannot name ("don't quantize the embedding layer", "keep the attention blocks in fp32"): not
# a ban on quantization, and not understood
_OTHER_SCOPE_RULES: list[re.Pattern[str]] = [
    _kw(
        r"(?:do\s+not|never|no|not|avoid|without|skip|exclude|spare)\s+(?:quanti[sz](?:e|es|ed|ing)|touch(?:ing)?|"
        r"convert(?:ing)?)\s+(?:the\s+|its\s+|any\s+|their\s+)?(?:[\w-]+\s+){0,3}?(?:layers?|blocks?|heads?|convs?|"
        r"nodes?|ops?|operators?|modules?|activations?|attention|embeddings?|biases|parts?)"
    ),
    _kw(
        r"(?:keep|keeping|leave|leaving|retain|preserve)\s+(?:the\s+|its\s+|all\s+)?(?:[\w-]+\s+){0,3}?(?:layers?|"
        rf"blocks?|heads?|convs?|nodes?|ops?|modules?|activations?|attention|embeddings?)\s+(?:in|at|as)\s+{_FLOAT_WORDS}"
    ),
]
_LAYER_WHICH: dict[str, str] = {
    "first": "first",
    "input": "first",
    "initial": "first",
    "bottom": "first",
    "stem": "first",
    "last": "last",
    "output": "last",
    "final": "last",
    "top": "last",
}

# "only prune if quantization alone isn't enough", "use pruning as a last resort": a method kept as a fallback
_NOT_ENOUGH = (
    r"(?:(?:[^,;.!?\0\d]|(?<=[a-z])\d){0,60}?\b(?:not\s+(?:enough|sufficient|good\s+enough|work|suffice|do\s+it|cut\s+it|"
    r"get(?:\s+(?:there|it\s+there|us\s+there))?|reach|meet|fit|hit|make\s+it|achieve|do\s+the\s+(?:job|trick)|"
    r"bring|take|go)|"
    r"insufficient|fails?|failed|falls?\s+short|misses|miss|can\s+not\s+\w+|los(?:es|e|ing)\s+(?:more|too\s+much)|"
    r"drops?\s+(?:more|too\s+much)|(?:is|are)\s+too\s+(?:big|large|slow|inaccurate|lossy))|\s*(?:needed|necessary|required|"
    r"need\s+be|you\s+must|you\s+have\s+to|we\s+must|we\s+have\s+to|it\s+helps|(?:all|everything)\s+else\s+fails|"
    r"nothing\s+else\s+(?:works|helps|does\s+it|is\s+enough)))"
)
_FALLBACK_OBJECT = r"(?:\s+(?:it|them|the\s+model|the\s+rest|everything\s+else|the\s+remaining\s+layers|the\s+other\s+layers))?"
_FALLBACK_RULES: list[re.Pattern[str]] = [
    _kw(
        rf"(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?\s+(?:is|are)\s+(?:allowed|fine|ok|okay|"
        rf"acceptable|an\s+option|permitted)\s*,?\s*(?:but\s+)?only\s+(?:if|when|in\s+case)\s+{_NOT_ENOUGH}"
    ),
    _kw(
        rf"(?:fall\s*back|resort|turn)\s+(?:back\s+)?to\s+(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?(?:\s+(?:only\s+)?(?:if|when)\s+{_NOT_ENOUGH})?"
    ),
    _kw(
        rf"only\s+(?:then\s+)?(?:use\s+|try\s+|apply\s+|do\s+)?(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?{_FALLBACK_OBJECT}\s+"
        rf"(?:if|when|where|in\s+case)\s+{_NOT_ENOUGH}"
    ),
    _kw(
        rf"(?:use\s+|try\s+|apply\s+)?(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?{_FALLBACK_OBJECT}\s+(?:only\s+)?(?:if|when|in\s+case)"
        rf"\s+{_NOT_ENOUGH}"
    ),
    _kw(
        rf"(?:use\s+|try\s+|apply\s+)?(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?\s+(?:only\s+)?(?:as|is|are|should\s+be|must\s+be|stays)\s+"
        r"(?:only\s+)?(?:an?|our|my|the)\s+(?:fallback|last\s+resort|backup|"
        rf"plan\s+b|second\s+choice)(?:\s+(?:option|plan))?(?:\s+(?:if|when)\s+{_NOT_ENOUGH})?"
    ),
    _kw(
        rf"(?:only\s+)?(?:if|when)\s+{_NOT_ENOUGH}(?:\s+(?:[^,;.!?\0]|\.(?=\d)){{0,40}}?)?\s*,?\s*(?:then\s+)?"
        r"(?:you\s+(?:can|may|could|should)\s+|"
        r"feel\s+free\s+to\s+|go\s+ahead\s+and\s+|(?:it\s+is|that\s+is)\s+(?:ok|okay|fine)\s+to\s+)?(?:also\s+)?"
        rf"(?:try\s+|use\s+|apply\s+|add\s+)?(?P<m1>{_METH})(?:\s*(?:,|/|or|and|and/or)\s*(?P<m2>{_METH}))?"
    ),
]
_QUANTITY_IN_CONDITION = re.compile(
    r"(?:\b(?:under|below|beneath|less\s+than|within|to|into|at\s+most|over|above|faster\s+than|smaller\s+than|"
    r"more\s+than|at\s+least|by)\s+)*(?<![\w.])\d[\d.,]*\s*(?:%|x\b|[a-z]+\b)?"
)
# "don't just quantize it", "more than quantization", "quantization alone won't be enough": asks for it, and for
# whatever else the sentence names, restricting nothing
_NOT_ONLY = _kw(
    rf"(?:(?:do\s+not|not|never)\s+(?:just|only|merely|simply|solely)\s+(?:use\s+|apply\s+|do\s+|try\s+)?"
    rf"(?P<m1>{_METH})(?:\s+(?:it|the\s+model))?"
    rf"|(?:more\s+than|beyond|besides|in\s+addition\s+to|on\s+top\s+of|as\s+well\s+as|alongside|apart\s+from)\s+"
    rf"(?:just\s+)?(?P<m2>{_METH})"
    rf"|(?P<m3>{_METH})\s+(?:alone|by\s+itself|on\s+its\s+own)\s+(?:is|(?:will|would|may|might)(?:\s+not)?\s+be)\s+"
    r"(?:not\s+|probably\s+not\s+)?(?:enough|sufficient|good\s+enough))"
)
# "post-training only", "PTQ only", "no retraining": nothing that trains (forbids the method "qat")
_POST_TRAINING_ONLY = _kw(
    r"(?:(?P<only_pre>only|just|stick\s+(?:to|with)|limit(?:ed)?\s+(?:it\s+)?to|restrict(?:ed)?\s+to)\s+)?"
    r"(?:(?:use|using|do|apply|applying)\s+)?"
    r"(?:post[\s-]?training(?P<named>\s+(?:static\s+|dynamic\s+)?(?:quanti[sz]ation|quant))?(?:\s+(?:methods?|"
    r"techniques?|compression|approaches?))?|(?P<ptq>ptq))(?P<only_post>(?:\s+|-)only|\s+is\s+(?:fine|ok|okay))?"
)
_NO_TRAINING = _kw(
    r"(?:no|not|never|without|avoid(?:ing)?|skip(?:ping)?|can\s+not|unable\s+to)\s+(?:(?:any|do|doing|want|allowed|"
    r"time\s+to|possible\s+to|able\s+to|to)\s+){0,3}(?:re-?train(?:ing)?|train(?:ing)?(?!\s+data)|fine-?tun(?:e|ing))"
    r"|(?:re-?training|training|fine-?tuning)\s+(?:is|are)\s+(?:not\s+(?:possible|allowed|an\s+option|wanted)|"
    r"out\s+of\s+the\s+question|off\s+the\s+table)"
    r"|no\s+training\s+data(?:\s+(?:available|at\s+hand))?"
)

_NEGATION_BEFORE = re.compile(r"(?:\b(?:no|not|never|without|avoid|skip|exclude)\b[^,;.\0]{0,30})$")

_GPU = r"(?:nvidia\s+)?(?:gpus?|cuda|graphics\s+cards?|accelerators?)"
_GPU_THING = (
    _GPU
    + r"(?:\s+(?:inference|acceleration|support|usage|use|deployment|serving|instances?|nodes?|machines?|"
    r"servers?|hardware|access))?"
)

_GPU_TAIL = (
    r"(?:\s+(?:available|access|support|at\s+all|there|here|(?:in|on|for)\s+(?:the\s+|our\s+|my\s+)?"
    r"(?:target\s+|edge\s+|deployment\s+)?(?:production|prod|deployment|target|device|server|edge|box|machine|"
    r"field|hardware)))*"
)
# a GPU that is not there ("no GPU", "GPUs aren't available", "we can't use a GPU") means the CPU
_NO_GPU_RULES: list[re.Pattern[str]] = [
    # "GPU? We don't have one"
    _kw(
        _GPU
        + r"\s*[?.,!:;-]*\s*(?:we|i|they)\s+(?:do|does|did|will|would)\s+not\s+have\s+(?:one|any|it|them)"
    ),
    _kw(
        r"(?:(?:the|our|my|this|that|its)\s+(?:target\s+|deployment\s+|edge\s+)?(?:server|machine|box|target|device|"
        r"host|node|instance|laptop|hardware|board|vm)s?\s+(?:(?:has|have|had|will\s+have|comes\s+with)\s+)?)?"
        r"(?:no|not|never|without|lack(?:s|ing)?|(?:do|does|did|will|would|can|could|shall)\s+not\s+"
        r"(?:have|get|use|own|need|require|run\s+on))\s+"
        r"(?:(?:have|having|has|get|access\s+to|a|an|any|the|use|using|run|running|on|dedicated|spare|available)\s+){0,4}"
        + _GPU
        + _GPU_TAIL
    ),
    _kw(
        _GPU_THING
        + r"\s+(?:(?:is|are|will\s+be|would\s+be|were)\s+)?(?:(?:not|never)\s+(?:be\s+)?(?:available|an\s+option|"
        r"present|supported|allowed|accessible|there|possible|an?\s+thing|in\s+the\s+(?:budget|picture))|"
        r"unavailable|out\s+of\s+the\s+question|off\s+the\s+table|a\s+no-?go)" + _GPU_TAIL
    ),
    _kw(r"gpu-?less"),
]
_DEVICE_RULES: list[tuple[re.Pattern[str], Device]] = [
    (
        _kw(
            r"(?:nvidia\s+)?(?:gpus?|cuda|graphics\s+cards?|tensorrt|jetson(?:\s+nano)?|a100|h100|v100|t4|l4|"
            r"a10g?|rtx(?:\s*\d{3,4})?)s?"
        ),
        "gpu",
    ),
    (
        _kw(
            r"(?:(?:single|one|1|a\s+few|few|\d+)\s+)?cpu(?:s|-only)?(?:\s+(?:cores?|threads?))?|"
            r"x86(?:-64)?|arm64|aarch64|arm(?:\s+(?:boards?|cpus?|devices?|cores?|chips?|socs?))|raspberry\s+pi(?:\s*\d)?|"
            r"rpi\d?|"
            r"mobile(?:\s+(?:phones?|devices?))?|(?:smart)?phones?|edge(?:\s+(?:devices?|box(?:es)?|nodes?|hardware|"
            r"gateways?))?|laptops?|"
            r"embedded(?:\s+(?:devices?|systems?|boards?|hardware))?|microcontrollers?|mcus?|android|ios|iphones?|"
            r"on-device|desktops?"
        ),
        "cpu",
    ),
]
_MEMORY_AFTER = re.compile(r"\s+(?:memory|ram|vram)(?![\w])")
_DEVICE_TARGET_BEFORE = re.compile(
    r"\b(?:on|for|to|targeting|target|onto|using|via)\s+(?:(?:an?|the|my|our|a\s+single|one|1)\s+)?$"
)
_DEVICE_LIST_GAP = re.compile(r"\s*(?:(?:,|/|or|and|and/or)\s*)?(?:(?:an?|the)\s+)?")
_TRAINED_BEFORE = re.compile(r"\btrain(?:ed|ing)?\b(?:\s+\w+){0,2}\s+(?:on|with|using)\s+(?:an?\s+|the\s+)?$")

_POSSIBLE = r"(?:possible|you\s+can|we\s+can|it\s+(?:gets|can\s+(?:get|be))|can\s+be|feasible)"
_NO_NUMBER_AHEAD = r"(?!\s*(?:of|:|=|is|>=?|<=?|at\s+least|at\s+most)?\s*\d)"
_MATTERS = (
    r"(?:(?:the\s+)?(?:top\s+|main\s+|first\s+|highest\s+|number\s+one\s+|#1\s+)?priority|most|"
    r"(?:the\s+)?most\s+important(?:\s+thing)?|what\s+matters(?:\s+most)?|key|critical|crucial|"
    r"more\s+important(?:\s+than\s+(?:the\s+)?(?:model\s+)?(?:size|speed|latency|accuracy|compression))?)"
)
_CARE_ABOUT = r"(?:care|cares|caring)\s+(?:most\s+|mostly\s+|only\s+|more\s+)?about\s+"
_OBJECTIVE_RULES: list[tuple[re.Pattern[str], Objective]] = [
    (
        _kw(
            rf"(?:keep|keeping|maintain|preserve|retain)\s+(?:the\s+)?{_ACC}\s+as\s+high\s+as\s+{_POSSIBLE}"
            rf"|{_ACC}\s+as\s+high\s+as\s+{_POSSIBLE}|as\s+accurate\s+as\s+{_POSSIBLE}|most\s+accurate"
            rf"|(?:as\s+much|most)\s+{_ACC}\s+as\s+{_POSSIBLE}"
            rf"|los(?:e|ing)\s+as\s+little\s+(?:{_ACC}\s+)?as\s+{_POSSIBLE}"
            rf"|(?:minimi[sz](?:e|ing)|least|lowest|minimal|smallest)\s+(?:possible\s+)?(?:{_ACC}\s+)?"
            rf"(?:loss|drop|degradation){_NO_NUMBER_AHEAD}"
            rf"|(?:best|highest|max(?:imum|imal)?|top|maximi[sz](?:e|ed|ing))\s+(?:possible\s+)?{_ACC}"
            rf"(?!\s*(?:loss|drop|degradation|decrease|hit|penalty|regression)){_NO_NUMBER_AHEAD}"
            rf"|(?:prioriti[sz]e|focus(?:ing)?\s+on|optimi[sz]e\s+for)\s+(?:the\s+)?{_ACC}"
            rf"|{_ACC}\s+(?:is|matters)\s+{_MATTERS}"
            rf"|{_CARE_ABOUT}(?:the\s+)?{_ACC}(?:\s+(?:most|above\s+all|first))?"
        ),
        "accuracy",
    ),
    (
        _kw(
            r"(?:the\s+)?(?:fastest|quickest|speediest)(?:\s+possible)?"
            r"|(?:minimi[sz](?:e|ing)|lowest|minimal|minimum|least|best|smallest)\s+(?:possible\s+)?"
            rf"(?:the\s+)?(?:p50\s+|inference\s+|median\s+)?(?:latency|inference\s+time|runtime|response\s+time)"
            rf"{_NO_NUMBER_AHEAD}"
            rf"|(?:maximi[sz](?:e|ing)|max(?:imum|imal)?|highest|best|top)\s+(?:the\s+)?(?:possible\s+)?"
            rf"(?:inference\s+)?(?:speed|throughput|speed-?up){_NO_NUMBER_AHEAD}"
            r"|(?:prioriti[sz]e|focus(?:ing)?\s+on|optimi[sz]e\s+for)\s+(?:the\s+)?(?:inference\s+)?(?:speed|latency)"
            rf"|(?:speed|latency)\s+(?:is|matters)\s+{_MATTERS}"
            rf"|{_CARE_ABOUT}(?:the\s+)?(?:inference\s+)?(?:speed|latency)(?:\s+(?:most|above\s+all|first))?"
        ),
        "latency",
    ),
    (
        _kw(
            r"(?:the\s+)?(?:smallest|tiniest|most\s+compact|lightest)(?:\s+possible)?"
            r"|(?:minimi[sz](?:e|ing))\s+(?:the\s+)?(?:model\s+|file\s+|disk\s+)?(?:size|footprint|memory)"
            rf"|(?:minimal|minimum|lowest|least|smallest)\s+(?:possible\s+)?(?:model\s+|file\s+)?(?:size|footprint)"
            rf"{_NO_NUMBER_AHEAD}"
            r"|(?:max(?:imum|imal|imi[sz]e)?|most|highest|best)\s+(?:possible\s+)?compression(?:\s+ratio)?"
            rf"{_NO_NUMBER_AHEAD}"
            rf"|(?:compress|shrink)\s+(?:it\s+|the\s+model\s+)?as\s+much\s+as\s+{_POSSIBLE}"
            rf"|as\s+much\s+compression\s+as\s+{_POSSIBLE}"
            r"|(?:prioriti[sz]e|focus(?:ing)?\s+on|optimi[sz]e\s+for)\s+(?:the\s+)?(?:model\s+)?(?:size|compression)"
            rf"|(?:size|compression)\s+(?:is|matters)\s+{_MATTERS}"
            rf"|{_CARE_ABOUT}(?:the\s+)?(?:model\s+)?(?:size|compression)(?:\s+(?:most|above\s+all|first))?"
        ),
        "size",
    ),
    (
        _kw(
            r"balanced?|(?:a\s+)?(?:good|best|reasonable|sensible|nice)\s+(?:trade-?\s*off|balance|compromise)"
            r"|trade-?\s*off"
        ),
        "balanced",
    ),
]
_SIZE_AIM = r"(?:(?:the\s+)?(?:model\s+|file\s+|disk\s+)?(?:size|footprint)|compression|disk\s+space|storage)"
_SPEED_AIM = r"(?:(?:the\s+)?(?:inference\s+|p50\s+)?(?:speed|latency|inference\s+time|throughput|runtime))"
_ACC_AIM = rf"(?:(?:the\s+)?{_ACC})"
_ANY_AIM = rf"(?:{_SIZE_AIM}|{_SPEED_AIM}|{_ACC_AIM})"
# "size does not matter (much)", "I don't care about latency": read, and no objective follows from it.
_NO_PREFERENCE = _kw(
    rf"{_ANY_AIM}\s+(?:does|do|is|are)\s+not\s+(?:matter|important|critical|a\s+(?:big\s+)?(?:concern|priority|problem|"
    r"issue|factor))(?:\s+(?:much|that\s+much|as\s+much|so\s+much|too\s+much|at\s+all|here|for\s+(?:me|us)))?"
    rf"|(?:do|does|did)\s+not\s+(?:really\s+|much\s+|particularly\s+|actually\s+)?(?:care|worry|mind)\s+"
    rf"(?:much\s+|too\s+much\s+|that\s+much\s+|at\s+all\s+)?(?:about|for|with)\s+{_ANY_AIM}"
    r"(?:\s+(?:much|at\s+all|that\s+much|too\s+much))?"
    rf"|not\s+(?:worried|concerned|bothered|fussed|fussy|picky)\s+(?:about|with|by)\s+{_ANY_AIM}"
    rf"|{_ANY_AIM}\s+(?:is|are)\s+(?:irrelevant|secondary|unimportant|(?:a\s+)?(?:low|lower)\s+priority|"
    r"less\s+important|of\s+no\s+(?:concern|importance)|not\s+(?:my|our)\s+(?:concern|priority|problem))"
    rf"|(?:ignore|forget(?:\s+about)?|never\s+mind)\s+{_ANY_AIM}"
    rf"|(?:indifferent|agnostic|neutral)\s+(?:to|about|on)\s+{_ANY_AIM}"
    rf"|{_ANY_AIM}\s+(?:comes|is|can\s+come)\s+(?:second|last|later)"
    rf"|(?:but\s+|and\s+)?not\s+{_ANY_AIM}(?=\s*(?:$|[,;.!?\n]))"
)
# "only about size", "size is all that matters", "size over latency": the objective said by contrast
_CONTRAST_RULES: list[tuple[str, Objective]] = [
    (_SIZE_AIM, "size"),
    (_SPEED_AIM, "latency"),
    (_ACC_AIM, "accuracy"),
]
_CONTRAST_PATTERNS: list[tuple[re.Pattern[str], Objective]] = [
    (
        _kw(
            rf"(?:(?:but|rather|instead)\s+)?(?:only|just|mostly|mainly|solely|purely|primarily|exclusively)\s+"
            rf"(?:care\s+)?(?:about|for|on)\s+{aim}"
            rf"|(?:(?:but|rather|instead)\s+)?(?:only|just|mostly|mainly|solely|purely|primarily)\s+{aim}"
            r"(?=\s*(?:$|[,;.!?\n]|and\b|but\b|please\b|does\b|do\b))"
            rf"(?:\s+(?:does|do)(?=\s*(?:$|[,;.!?\n])))?"
            rf"|(?:only|just)\s+{aim}\s+(?:matters|counts|is\s+important)"
            rf"|{aim}\s+is\s+(?:all|the\s+only\s+thing|what)\s+(?:that\s+)?(?:matters|counts|(?:i|we)\s+care\s+about)"
            rf"|all\s+(?:i|we)\s+care\s+about\s+is\s+{aim}"
            rf"|(?:prefer|favou?r|prioriti[sz]e|value|choose|pick)\s+{aim}\s+(?:over|to|rather\s+than|above|before|"
            rf"instead\s+of)\s+{_ANY_AIM}"
            rf"|{aim}\s+(?:over|rather\s+than|before|instead\s+of|more\s+than)\s+{_ANY_AIM}"
            rf"|{aim}\s+(?:matters|counts)\s+more(?:\s+than\s+{_ANY_AIM})?"
            rf"|{_ANY_AIM}\s+(?:matters|counts|is\s+important)\s+less\s+than\s+{aim}"
            rf"|(?:the\s+|my\s+|our\s+)?(?:top\s+|main\s+|first\s+|highest\s+|number\s+one\s+|#1\s+|only\s+|primary\s+)?"
            rf"(?:priority|goal|concern|focus|objective)\s+(?:is|should\s+be)\s+{aim}"
            rf"|{aim}\s+(?:above\s+all(?:\s+else)?|first(?:\s+and\s+foremost)?|comes\s+first|before\s+everything|"
            r"is\s+king|wins)"
        ),
        value,
    )
    for aim, value in _CONTRAST_RULES
]
_AS_ADJ_AS = _kw(
    r"as\s+(?P<adjs>(?:small|compact|tiny|light(?:weight)?|fast|quick|snappy|responsive|accurate)"
    r"(?:\s*(?:,|and|&|/|but\s+also)\s*(?:as\s+)?(?:small|compact|tiny|light(?:weight)?|fast|quick|snappy|"
    rf"responsive|accurate))*)\s+as\s+{_POSSIBLE}"
)
_ADJ_OBJECTIVE: dict[str, Objective] = {
    "small": "size",
    "compact": "size",
    "tiny": "size",
    "light": "size",
    "lightweight": "size",
    "fast": "latency",
    "quick": "latency",
    "snappy": "latency",
    "responsive": "latency",
    "accurate": "accuracy",
}

# "keep latency the same", "no slower than the original": a latency ratio of 1
_SAME_LATENCY_RULES: list[re.Pattern[str]] = [
    _kw(
        r"(?:keep|keeping|maintain|maintaining|preserve|preserving|hold)\s+(?:the\s+)?(?:p50\s+|inference\s+)?"
        r"(?:latency|speed|inference\s+time|response\s+time)\s+(?:the\s+same|unchanged|as\s+(?:it\s+)?is|"
        r"where\s+it\s+is|at\s+(?:least\s+)?(?:the\s+)?(?:same|current)\s+level)(?:\s+or\s+(?:better|lower|faster))?"
    ),
    _kw(
        r"(?:the\s+)?(?:p50\s+|inference\s+)?(?:latency|inference\s+time|response\s+time)\s+(?:must|should|may|can|"
        r"shall)\s+not\s+(?:increase|go\s+up|grow|get\s+worse|rise|regress)(?!\s+(?:by|more|beyond|over|above))"
    ),
    _kw(
        r"(?:no|not)\s+slower\s+than\s+(?:the\s+|it\s+is\s+)?(?:original|baseline|before|now|today|fp32|uncompressed)"
        r"(?:\s+(?:model|one|version))?|(?:do\s+not|never)\s+make\s+it\s+slower|without\s+(?:any\s+)?(?:slow-?down|"
        r"slowing\s+(?:it\s+)?down|extra\s+latency|added\s+latency|a\s+latency\s+(?:increase|penalty|hit))|"
        r"(?:same|unchanged|equal)\s+(?:p50\s+)?latency|at\s+least\s+as\s+fast\s+as\s+(?:the\s+)?(?:original|baseline|"
        r"before|now|fp32)(?:\s+(?:model|one|version))?"
    ),
]

_ZERO_DROP_RULES: list[re.Pattern[str]] = [
    _kw(
        rf"(?:no|zero|without(?:\s+any)?|not\s+any|0\s*%?)\s+(?:{_ACC}[\s-]+){_DROP_NOUN}"
        rf"|(?:no|zero|without(?:\s+any)?|not\s+any)\s+{_DROP_NOUN}\s+(?:in|of|on|to)\s+(?:the\s+)?"
        rf"(?:model\s+)?{_ACC}"
    ),
    _kw(
        r"(?:without|not|never|no|can\s+not|unable\s+to)\s+(?:\w+\s+){0,3}?"
        r"(?:los(?:e|ing)|sacrific(?:e|ing)|hurt(?:ing)?|degrad(?:e|ing)|reduc(?:e|ing)|drop(?:ping)?|"
        r"compromis(?:e|ing)|affect(?:ing)?|impact(?:ing)?|harm(?:ing)?|giv(?:e|ing)\s+up|trad(?:e|ing)\s+off)\s+"
        rf"(?:any\s+)?(?:of\s+)?(?:the\s+|its\s+|my\s+|our\s+)?(?:model\s+|original\s+)?{_ACC}"
        r"(?!\s+(?:too\s+|that\s+|very\s+|so\s+)?(?:much|a\s+lot|significantly|noticeably|badly|greatly|"
        r"substantially|heavily|more|by|beyond|below|under))"
    ),
    _kw(
        r"(?:keep|keeps|keeping|maintain|maintains|maintaining|preserve|preserves|preserving|retain|retains|"
        r"retaining)\s+(?:(?:the|its|full|original|same|all|of|baseline|current|model)\s+)*"
        rf"{_ACC}(?!\s*(?:as|at|above|over|high|within|to|of|>|>=|\d|accuracy\b|acc\b))"
    ),
    _kw(
        rf"{_ACC}\s+(?:must|should|can|may|will|is\s+to)\s+(?:not|never)\s+"
        r"(?:drop|decrease|degrade|go\s+down|change|suffer|get\s+worse|fall|decline)(?!\s*(?:by|more|below|\w*\s*\d))"
        rf"|{_ACC}\s+(?:stays?|remains?|must\s+(?:stay|remain|be)|should\s+(?:stay|remain|be)|unchanged|intact)"
        r"(?:\s+(?:the\s+same|unchanged|intact|identical|as\s+(?:before|is)))?(?!\s*\w*\s*\d)"
        rf"|(?:same|identical|unchanged|equal|full|original|matching)\s+{_ACC}(?!\s*(?:of|at|above|\d))"
        rf"|lossless|accuracy[\s-]neutral|iso[\s-]accuracy"
        r"|(?:at\s+least\s+|just\s+|equally\s+)?as\s+accurate\s+as\s+(?:the\s+)?(?:original|baseline|before|now|"
        r"fp32|uncompressed|unquantized)(?:\s+(?:model|one|version))?"
    ),
]

# Bare numbers that a keyword makes unambiguous ("speedup of 2", "compression ratio of 8").
_BARE_SPEEDUP = re.compile(
    r"(?<![\w-])(?:speed-?\s?ups?)\s*(?:of|:|=|>=|>|at\s+least|of\s+at\s+least|min(?:imum)?|"
    rf"(?:must|should)\s+be(?:\s+at\s+least)?|\s)*\s*(?P<num>{_NUM})(?![\w%.]|\s*(?:x|times|fold|%)\b)"
)
_BARE_RATIO = re.compile(
    r"(?<![\w-])compression\s+(?:ratio|factor)\s*(?:of|:|=|>=|>|at\s+least|of\s+at\s+least|min(?:imum)?|\s)*\s*"
    rf"(?P<num>{_NUM})(?:\s*:\s*1)?(?![\w%.]|\s*(?:x|times|fold|%)\b)"
    rf"|(?<![\w.-])(?P<num2>\d+(?:\.\d+)?)\s*:\s*1\s+(?:compression|size\s+reduction)(?![\w])"
)

# --------------------------------------------------------------------------------------------------
# Quantities
# --------------------------------------------------------------------------------------------------

_SIZE_UNIT = (
    r"[kmgt]i?b|(?:kilo|mega|giga|tera|kibi|mebi|gibi)bytes?|[kmg]bytes|bytes?|megs?|gigs?|mbs|kbs|gbs"
)
_TIME_UNIT = (
    r"ms|msecs?|millis(?:econds?)?|milli-seconds?|us|usecs?|micro-?seconds?|ns|nano-?seconds?|"
    r"s|secs?|seconds?"
)
_QUANTITY_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("size", re.compile(rf"(?P<num>{_NUM})\s*-?\s*(?P<unit>{_SIZE_UNIT})(?![\w])")),
    ("time", re.compile(rf"(?P<num>{_NUM})\s*-?\s*(?P<unit>{_TIME_UNIT})(?![\w])")),
    (
        "pts",
        re.compile(
            rf"(?P<num>{_NUM})\s*-?\s*(?:(?:{_METRIC}|top-?[15]|f1|acc|accuracy)[\s-]+)?"
            r"(?P<unit>percentage[\s-]points?|pp|p\.p\.|points?|pts?|basis\s+points?|bps)(?![\w])"
        ),
    ),
    ("pct", re.compile(rf"(?P<num>{_NUM})\s*(?P<unit>%|-?\s*percent(?![\w])|-?\s*pct(?![\w]))")),
    ("mult", re.compile(rf"(?P<num>{_NUM})\s*(?P<unit>x|times|-?\s?fold)(?![\w])")),
    (
        "frac",
        re.compile(
            r"(?<![\w-])(?P<frac>(?:(?:a|1)\s+)?half|(?:a|1)\s+(?:third|quarter|fifth|tenth)|2\s+thirds|"
            r"3\s+quarters|(?<![\w.-])\d+\s*/\s*\d+|halve[sd]?|halving)(?![\w/])"
        ),
    ),
    (
        "verbmult",
        re.compile(
            r"(?<![\w-])(?P<verb>doubl(?:e|ed|es|ing)|tripl(?:e|ed|es|ing)|quadrupl(?:e|ed|es|ing))(?![\w])"
        ),
    ),
    ("num", re.compile(_NUM + r"(?![\w.,])")),
]
_FRACTIONS: dict[str, float] = {
    "half": 0.5,
    "third": 1 / 3,
    "quarter": 0.25,
    "fifth": 0.2,
    "tenth": 0.1,
    "thirds": 2 / 3,
    "quarters": 0.75,
}


def _size_factor_mb(unit: str) -> float:
    """MB per ``unit``: kB/KB/kilobyte = 1000 bytes (decimal, like MB and GB); KiB/kibibyte = 1024 (binary)."""
    unit = unit.replace(" ", "")
    binary = re.match(r"[kmgt]ib\b", unit) is not None or unit.startswith(("kibi", "mebi", "gibi", "tebi"))
    base = 1024.0 if binary else 1000.0
    if unit.startswith(("byte", "b")):
        return 1e-6
    power = {"k": 1, "m": 2, "g": 3, "t": 4}[unit[0]]
    return base**power / 1e6


def _time_factor_ms(unit: str) -> float:
    if unit.startswith(("u", "micro")):
        return 1e-3
    if unit.startswith("m"):
        return 1.0
    if unit.startswith("n"):
        return 1e-6
    return 1000.0


def _to_float(num: str) -> float:
    return float(num.replace(",", ""))


_CLAUSE_BREAK = re.compile(
    r"[,;!?()\[\]\n\"]|\.(?!\d)|(?<![\w-])(?:and|but|while|whereas|with|plus|also|then|though|although|however|"
    r"as\s+long\s+as|so\s+that|such\s+that|provided(?:\s+that)?|as\s+well\s+as)(?![\w])"
)


@dataclass
class _Quantity:
    kind: str
    start: int
    end: int
    value: float
    unit: str = ""


@dataclass
class _Keyword:
    category: str  # size | speed | acc
    role: str  # reduce | noun | inc | lat | drop
    start: int
    end: int


_KEYWORDS: list[tuple[re.Pattern[str], str, str, str]] = [
    # (pattern, category, direction, role); direction says on which side of the number the word may stand:
    # "post" words follow the number ("4x smaller"), "pre" words precede it ("shrink by 60%").
    (_kw(r"(?:smaller|lighter|bigger|larger|heavier)\s+than"), "size", "pre", "than"),
    (
        _kw(r"smaller|lighter|tinier|more\s+compact|(?:less|lower)\s+(?:space|storage|disk|memory|ram)"),
        "size",
        "post",
        "reduce",
    ),
    (_kw(r"compression|compressed"), "size", "both", "reduce"),
    (_kw(r"compress(?:es|ing)?|shrink(?:s|ing)?|shrunk(?:en)?"), "size", "pre", "reduce"),
    (
        _kw(
            r"(?:(?:original|current|initial|baseline|model|file|disk|on-disk|memory|storage)\s+){0,2}"
            r"(?:size|footprint)(?:\s+reduction)?|reduction\s+in\s+(?:model\s+)?size"
        ),
        "size",
        "both",
        "noun",
    ),
    (_kw(r"as\s+(?:big|large|heavy)"), "size", "post", "noun"),
    (
        _kw(
            r"slower|slow(?:s|ing)?\s+(?:it\s+|things\s+|inference\s+)?down|slow-?downs?|as\s+slow|"
            r"(?:more|higher|longer|increased|extra|additional|added)\s+(?:p50\s+|inference\s+)?"
            r"(?:latency|inference\s+time|run\s*-?time|response\s+time)|"
            r"(?:p50\s+|inference\s+)?(?:latency|inference\s+time|run\s*-?time|response\s+time)\s+"
            r"(?:overhead|penalty|increase|regression|growth|hit)"
        ),
        "speed",
        "both",
        "slow",
    ),
    (
        _kw(
            r"increas(?:e|es|ed|ing)|grow(?:s|th|ing)?|ris(?:e|es|ing)|rose|(?:go|goes|going|went|gone)\s+up|"
            r"climb(?:s|ing)?|"
            r"(?<!\bor\s)(?:higher|longer)"
        ),
        "speed",
        "both",
        "up",
    ),
    (_kw(r"faster|quicker|speedier|(?:more\s+|higher\s+)?throughput"), "speed", "both", "inc"),
    (
        _kw(
            r"speed(?:\s+(?:it|this|that|things|everything|the\s+model|inference|the\s+inference))?\s+up|"
            r"speed-?ups?|accelerat(?:e|ed|ion)"
        ),
        "speed",
        "both",
        "inc",
    ),
    (_kw(r"(?:the\s+)?(?:inference\s+)?speed|as\s+(?:fast|quick)"), "speed", "both", "inc"),
    (
        _kw(
            r"(?:(?:lower|less|shorter|reduced|original|current|p50|median|mean|average|inference)\s+){0,2}latency"
            r"|(?:(?:lower|less|shorter|reduced)\s+)?(?:inference\s+time|run\s*-?time|response\s+time|p50|median)"
        ),
        "speed",
        "both",
        "lat",
    ),
    (_kw(_ACC), "acc", "both", "noun"),
    # "must not drop below 75%": a floor on the metric itself (a level, not a drop); a floor relative to the
    # original only makes sense for the metric (size and latency are bounded from above)
    (
        _kw(
            r"(?:not|never)\s+(?:let\s+(?:it|them|(?:the\s+|its\s+)?(?:[\w-]+\s+){1,2}?)\s*)?"
            r"(?:(?:be|go|drop|fall|dip|sink|slip|get|end\s+up|come\s+in|score)\s+)?"
            r"(?:any\s+)?(?:below|under|lower\s+than|less\s+than|beneath)"
            # a level crossed: "dropping below", "falls under" (a bare "drop below 1%" is a drop's size)
            r"|(?:drops|dropping|dropped|falls?|falling|fell|goes|going|dips?|dipping|sinks?|sinking|slips?|slipping|"
            r"gets|getting)\s+(?:any\s+)?(?:below|under|beneath|lower\s+than)"
            # a level held: "must stay above 90%" (size and latency never have to stay above anything)
            r"|(?:stay|stays|staying|remain|remains|remaining)\s+(?:at\s+or\s+)?(?:above|over)"
        ),
        "acc",
        "pre",
        "floor",
    ),
    (
        _kw(r"loss(?:es)?|drops?|degradation|regression|penalty|decline|hit|deterioration|worse|decrease"),
        "acc",
        "both",
        "drop",
    ),
    (
        _kw(
            r"los(?:e|es|ing)|lost|sacrific(?:e|es|ing)|giv(?:e|ing)\s+up|trad(?:e|ing)|dropping|degrad(?:e|es|ing)"
        ),
        "acc",
        "pre",
        "drop",
    ),
]
_DROPISH = re.compile(
    r"\b(?:loss(?:es)?|los(?:e|es|ing)|lost|drops?|dropping|dropped|degrad\w*|decreas\w*|declin\w*|fall|falls|"
    r"down|regress\w*|hit|penalt\w*|worse|sacrific\w*|give\s+up|giving\s+up|cost|costs|within|reduc\w*|"
    r"delta|difference|gap|deviat\w*|trade|trading)\b"
)
_GE_BEFORE = re.compile(
    r"(?:at\s+least|above|over|>=?|more\s+than|greater\s+than|no\s+(?:less|lower|fewer)\s+than|"
    r"min(?:imum)?(?:\s+of)?|of)\s*$"
)
_SOFT = re.compile(
    r"\b(?:ideally|preferably|optionally|if\s+possible|nice\s+to\s+have|would\s+be\s+(?:nice|great|good|ideal)|"
    r"bonus|stretch(?:\s+goal)?|even\s+better|love|prefer|preferred|hope|hoping|wish|rather(?!\s+than))\b"
)
_OPS_TAIL = (
    r"(?:\s*(?:at\s+least|at\s+most|about|around|roughly|approximately|~|>=|<=|>|<|over|more\s+than|"
    r"less\s+than|up\s+to|min(?:imum)?|max(?:imum)?|under|below|only|just|a|an))*\s*$"
)
_BY_BEFORE = re.compile(r"\bby" + _OPS_TAIL)
_NO_WORSE_BEFORE = re.compile(r"\b(?:no|not)\s+(?:worse|slower|more|bigger|larger)\s+than\s*$")
# a verb whose object is the amount taken away ("cut 30% of the size"): read like "by", never like "to"
_CUT_BEFORE = re.compile(
    r"\b(?:cut(?:s|ting)?|reduc(?:e|es|ing)|shav(?:e|es|ing)|trim(?:s|ming)?|remov(?:e|es|ing)|tak(?:e|es|ing)\s+off|"
    r"knock(?:s|ing)?\s+off|sav(?:e|es|ing)|slash(?:es|ing)?|chop(?:s|ping)?(?:\s+off)?)" + _OPS_TAIL
)
_TO_BEFORE = re.compile(r"\b(?:to|into|in)" + _OPS_TAIL)
_OF_AFTER = re.compile(r"^\s*(?:of|the|its|their)\b")
_WITHIN_BEFORE = re.compile(r"\b(?:within|inside)" + _OPS_TAIL)
_ABOVE_ORIGINAL_AFTER = re.compile(
    r"^\s*(?:above|over|higher\s+than|more\s+than|beyond|on\s+top\s+of)\s+(?:the\s+|its\s+)?"
    r"(?:original|baseline|current|fp32|before|now|today|existing)(?:\s+(?:model|one|version|latency|value))?"
)
_THE_AFTER = re.compile(r"^\s*(?:the|its|of\s+the)\b")
# "of the original (accuracy)", "of its accuracy", "of the fp32 model": a percentage relative to the original
_BASE_WORD = (
    r"(?:original|baseline|reference|fp32|float32|float|full[\s-]precision|uncompressed|unquantized|current|"
    r"initial|starting|unoptimi[sz]ed|existing|un-?compressed)"
)
_OF_BASE_AFTER = re.compile(
    rf"^\s*of\s+(?:the\s+|its\s+|their\s+|our\s+|my\s+|what\s+)?(?:{_BASE_WORD}\b"
    rf"(?:\s+(?:model|network|version|one|value|level|performance))?(?:\s+{_ACC})?"
    rf"|(?:model\s+|network\s+)?(?:{_ACC}|performance)\b|(?:model|network)\s+(?:{_ACC}|performance|score)\b"
    r"|(?:it|we|you|i)\s+(?:had|has|have|scores|scored|gets|got|get|was|is|does|did)"
    r"(?:\s+(?:before|now|originally|today|currently))?)"
)
_RELATIVE = re.compile(r"\b(?:relative(?:ly)?|proportional(?:ly)?)\b")
# a cue that makes a percentage of the metric a floor on its level ("at least 95% accuracy", "stay above 90%")
_FLOOR_BEFORE = re.compile(
    r"(?:at\s+least|above|over|>=?|no\s+(?:less|lower|worse)\s+than|not\s+(?:less|lower|worse)\s+than|"
    r"greater\s+than|more\s+than|min(?:imum)?(?:\s+of)?|floor(?:\s+(?:of|at))?|"
    r"(?:min(?:imum)?|lowest\s+acceptable|acceptable)\s+(?:(?:top-?[15]|task|test|validation|val)\s+)?"
    r"(?:accuracy|acc|f1(?:[\s-]score)?|score|metric|top-?[15]|quality)(?:\s+(?:is|must\s+be|should\s+be))?|"
    r"(?:stay|stays|remain|remains|be|is|keep|keeps|kept|hold|holds|maintain|maintains)\s+(?:at\s+)?(?:or\s+)?(?:above|over)|"
    r"(?:need|needs|require|requires|required|want|wants|target|targets|targeting)(?:\s+(?:an?|the))?|"
    r"(?:must|should|has\s+to|have\s+to|needs\s+to)\s+(?:have|hit|reach|achieve|score|get|be)(?:\s+(?:an?|the))?|"
    r"(?:hit|hits|reach|reaches|achieve|achieves|score|scores|scoring|get|gets)(?:\s+(?:an?|the))?)"
    r"(?:\s*[:=]|\s+(?:of|at\s+least|an?|the|a\s+minimum\s+of))*\s*$"
)
# a cue after the number: "95% or higher", "90% at minimum"
_FLOOR_AFTER = re.compile(
    r"^\s*(?:or\s+(?:higher|more|above|better|over|greater)|at\s+(?:the\s+)?(?:least|minimum|min)|minimum|min|"
    r"and\s+(?:up|above|higher))\b"
)
# words that make a percentage of the metric a share to keep ("keep 95% of the original accuracy")
_KEEP_BEFORE = re.compile(
    r"\b(?:keep|keeps|keeping|retain|retains|retaining|preserve|preserves|preserving|maintain|maintains|"
    r"maintaining|hold(?:s|ing)?(?:\s+on)?(?:\s+(?:on)?to)?|stay|stays|remain|remains|reach|reaches|achieve|"
    r"achieves|score|scores|be|is)\b"
    r"(?:\s+(?:at\s+least|above|over|no\s+less\s+than|a\s+minimum\s+of|min(?:imum)?(?:\s+of)?|around|about|"
    r"roughly|approximately|~|>=?|the|its|an?))*\s*$"
)
_DOWN_WORDS = re.compile(
    r"(?<![\w-])(?:decreas(?:e|es|ed|ing)|drop(?:s|ping|ped)?|fall(?:s|ing)?|go(?:es)?\s+down|reduc(?:e|es|ed|ing)|"
    r"lower(?:ed|ing)?|shrink(?:s|ing)?)(?![\w])"
)

# Words that may stand between an absolute size/latency and the words that make it a bound.
_CHAIN_WORDS = _wordset(
    """
    under below beneath less lower smaller fewer than most max maximum within inside up to into in fit fits
    fitting sub tops exceed exceeding exceeds cap capped limit limited budget ceiling target constraint
    requirement goal must should need needs has have want wanted required allowed no not more bigger larger
    greater higher slower longer over above the a an be is are it its model size file disk on-disk weights
    footprint total final overall latency p50 median mean average inference time response run runtime per
    of : = ~ about around roughly approximately at just well only hard strict soft make get bring shrink
    compress compressed reduce reduced cut down keep stay stays remain remains can takes take taking
    currently presently now today originally original baseline from was weighs weighing existing starting
    starts right memory ram storage gpu vram checkpoint artifact binary it's < <= or equal to respond
    peak usage consumption resident itself use
    faster quicker shorter sla slo for go goes going come comes drop drops bring brought this network
    respond responds predict prediction predictions weigh
    """
)
_BOUND_CUE = re.compile(
    r"(?:\b(?:under|below|beneath|less|lower|smaller|fewer|most|max|maximum|within|inside|up\s+to|to|into|in|"
    r"fit|fits|fitting|sub|tops|exceed|exceeding|exceeds|cap|capped|limit|limited|budget|ceiling|target|"
    r"constraint|requirement|goal|must|should|needs?|has\s+to|have\s+to|want|wanted|required|allowed|"
    r"(?:faster|quicker|shorter)\s+than|sla|slo|"
    r"no\s+(?:more|bigger|larger|greater|higher|slower|longer)|not\s+(?:more|bigger|larger|greater|higher|"
    r"slower|longer|over|above))\b|<=?)"
)
_CURRENT_CUE = re.compile(
    r"\b(?:currently|presently|now|today|originally|original|baseline|from|was|weighs|weighing|takes|take|"
    r"taking|existing|starting|starts|right\s+now)\b"
)
# "it is 40 MB" describes the model unless a limit word is also there ("the budget for the model is 8 MB").
_WEAK_CURRENT_CUE = re.compile(
    r"\b(?:it|model|which|that|this|network|checkpoint|file|size|footprint|latency|p50|time)\s+(?:is|was)$"
)
_NOUN_CUE = re.compile(
    r"\b(?:size|footprint|weights|file|disk|checkpoint|latency|p50|median|inference|time|runtime|memory|ram|"
    r"storage|vram)\b"
)
_POST_BOUND = re.compile(
    r"^(?:\s*(?:or\s+(?:less|smaller|under|below|lower|fewer|better|faster|so)|max(?:imum)?|at\s+(?:the\s+)?most|"
    r"tops|limit|budget|cap|ceiling|target|in\s+size|on\s+disk|(?:model|file)(?:\s+size)?|size|footprint|"
    r"(?:of\s+)?(?:ram|memory|storage|vram|gpu\s+memory|disk(?:\s+space)?|flash(?:\s+memory)?|rom|eeprom)|"
    r"(?:(?:p50|median|average|mean|inference)\s+)?latency|(?:(?:at|@|for)\s+(?:the\s+)?)?(?:p50|median)|"
    r"per\s+(?:image|sample|request|query|prediction|inference|batch|call|item|token|input|example|"
    r"forward\s+pass|frame)|(?:for\s+)?inference|(?:on|in)\s+(?:average|median)|at\s+run\s*-?time|"
    r"while\s+running|during\s+inference|when\s+running))+"
)
_POST_CURRENT = re.compile(
    r"^\s*(?:now|currently|today|at\s+the\s+moment|right\s+now|originally|before|at\s+the\s+start)\b"
)
# Amounts of change against the original ("reduce the size by 4 MB", "at most 5 ms slower"): the cue stands right
# before the amount (after these quantity words) or right after it.
_AMOUNT_TAIL = (
    r"(?:\s*(?:at\s+least|at\s+most|about|around|roughly|approximately|~|>=|<=|no\s+less\s+than|"
    r"no\s+more\s+than|not\s+more\s+than|a\s+minimum\s+of|a\s+maximum\s+of|min(?:imum)?(?:\s+of)?|"
    r"max(?:imum)?(?:\s+of)?|up\s+to|another|a\s+good|a\s+full|only|just|an?|more\s+than|over|"
    r"in\s+excess\s+of|:))*\s*$"
)
_LAT_NOUN = (
    r"(?:(?:the\s+|its\s+)?(?:p50\s+|median\s+|mean\s+|average\s+|inference\s+)?"
    r"(?:latency|inference\s+time|run\s*-?time|response\s+time|inference)|it|the\s+model)"
)
_SIZE_NOUN = (
    r"(?:(?:the\s+|its\s+)?(?:model\s+|file\s+|disk\s+|on-disk\s+|memory\s+|ram\s+)?"
    r"(?:size|footprint|file|model|weights|checkpoint|memory|ram|usage)|it)"
)
_MODAL = (
    r"(?:(?:may|can|might|could|should|must|shall|will|would|is\s+allowed\s+to|are\s+allowed\s+to|only|also|"
    r"not|never)\s+)*"
)
_ORIGINAL_TAIL = (
    r"(?:\s+(?:than|compared\s+(?:to|with)|over|relative\s+to|versus|vs\.?|from|off)\s+(?:the\s+|its\s+)?"
    r"(?:original|baseline|before|now|currently|current|fp32|uncompressed|unquantized|unoptimi[sz]ed|"
    r"existing|it|today)(?:\s+(?:model|one|version|latency|size|file))?)?"
)
_TIME_UP_BEFORE = re.compile(
    rf"(?:{_LAT_NOUN}\s+{_MODAL})?(?:increas(?:e|es|ed|ing)|grow(?:s|ing)?|ris(?:e|es|ing)|(?:go|goes|going|went)\s+up|"
    rf"add(?:s|ing|ed)?|slow(?:s|ing)?\s+(?:it\s+|things\s+|inference\s+)?down)(?:\s+{_LAT_NOUN})?"
    rf"(?:\s+(?:by|of))?{_AMOUNT_TAIL}"
    rf"|(?:{_LAT_NOUN}\s+)?(?:increase|overhead|slowdown|slow-down|penalty|regression|growth)"
    rf"(?:\s+(?:of|is|must\s+be|should\s+be|may\s+be|can\s+be|at))*{_AMOUNT_TAIL}"
)
_TIME_UP_AFTER = re.compile(
    r"^\s*(?:slower|longer|more(?=\s+than\s+(?:the\s+|its\s+)?(?:original|baseline|before|now|currently|current|"
    r"fp32|uncompressed|unquantized|existing|today)|\s+(?:latency|time|inference\s+time)|\s*$)"
    r"(?:\s+(?:latency|time|inference\s+time))?|(?:of\s+)?(?:extra|additional|added)(?:\s+(?:latency|time|"
    r"inference\s+time|delay))?|(?:of\s+)?(?:latency\s+)?(?:overhead|slowdown|slow-down|increase|penalty|delay))\b"
    + _ORIGINAL_TAIL
)
_TIME_DOWN_BEFORE = re.compile(
    rf"(?:{_LAT_NOUN}\s+{_MODAL})?"
    rf"(?:(?:reduc|decreas|lower|cut|shav|trim|drop|slash|shorten|fall|go\s+down)\w*|speed\s+(?:it\s+|things\s+|inference\s+)?up)"
    rf"(?:\s+{_LAT_NOUN})?(?:\s+(?:down\s+)?by|\s+off)(?:\s+{_LAT_NOUN})?{_AMOUNT_TAIL}"
    rf"|(?:shav|sav|knock|trim|cut|slash|chop|gain|win)(?:e|es|ed|ing|s)?(?:\s+off)?{_AMOUNT_TAIL}"
    rf"|(?:{_LAT_NOUN}\s+)?(?:reduction|saving|savings|improvement|decrease|gain)(?:\s+(?:of|is|must\s+be|should\s+be))*"
    rf"{_AMOUNT_TAIL}"
)
_TIME_DOWN_AFTER = re.compile(
    r"^\s*(?:faster|quicker|shorter|sooner|less|lower|off|(?:of\s+)?(?:latency\s+)?(?:reduction|savings?|saved|"
    rf"improvement|decrease|gain|speed-?up))\b(?:\s+(?:of\s+)?{_LAT_NOUN})?" + _ORIGINAL_TAIL
)
_SIZE_DOWN_BEFORE = re.compile(
    rf"(?:{_SIZE_NOUN}\s+{_MODAL})?"
    rf"(?:(?:reduc|decreas|lower|cut|shav|trim|shrink|shrunk|compress|slash|drop|lighten)\w*|smaller|lighter|less)"
    rf"(?:\s+{_SIZE_NOUN})?(?:\s+(?:down\s+)?by|\s+off)(?:\s+{_SIZE_NOUN})?{_AMOUNT_TAIL}"
    rf"|(?:shav|sav|knock|trim|cut|slash|chop|free|lose|losing|shed)(?:e|es|ed|ing|s)?(?:\s+(?:off|up))?{_AMOUNT_TAIL}"
    rf"|(?:get(?:ting)?\s+rid\s+of|remov(?:e|es|ing)|eliminat(?:e|es|ing))(?:\s+{_SIZE_NOUN})?{_AMOUNT_TAIL}"
    rf"|(?:{_SIZE_NOUN}\s+)?(?:reduction|saving|savings|decrease)(?:\s+(?:of|is|must\s+be|should\s+be))*{_AMOUNT_TAIL}"
)
_SIZE_DOWN_AFTER = re.compile(
    r"^\s*(?:smaller|lighter|less|off|(?:of\s+)?(?:(?:file\s+|disk\s+|model\s+)?size\s+)?(?:reduction|savings?|"
    r"saved|decrease|cut))\b(?:\s+(?:of\s+|in\s+|from\s+)?(?:the\s+)?(?:model\s+|file\s+)?(?:size|footprint|"
    r"memory|ram|the\s+model|it))?" + _ORIGINAL_TAIL
)
_SIZE_UP_AFTER = re.compile(r"^\s*(?:bigger|larger|heavier|more)\b(?!\s+than\s+\d)")
_WITHIN_AMOUNT_BEFORE = re.compile(
    rf"(?:{_LAT_NOUN}\s+{_MODAL}(?:(?:stay|stays|remain|remains|be|is|are)\s+)?|(?:{_SIZE_NOUN}\s+{_MODAL}"
    rf"(?:(?:stay|stays|remain|remains|be|is|are)\s+)?))?\b(?:within|inside){_AMOUNT_TAIL}"
)
_COMPARED_AFTER = re.compile(
    r"\s+(?:than|of|compared\s+(?:to|with)|relative\s+to|versus|vs\.?)\s+(?:the\s+|its\s+|it\s+is\s+|it\s+was\s+)?"
    r"(?:original|baseline|before|now|currently|current|fp32|uncompressed|unquantized|unoptimi[sz]ed|existing|today)"
    r"(?:\s+(?:model|one|version|latency|size|accuracy))?(?![\w])"
)
# words that name what an amount of change applies to, after it ("2 MB off the file", "3 ms of latency")
_SIZE_OBJECT_AFTER = re.compile(
    r"^\s*(?:(?:off|from|of|in)\s+)?(?:the\s+|its\s+)?(?:model\s+|file\s+)?(?:size|footprint|file|checkpoint|weights|"
    r"model|it|artifact|binary)(?:\s+size)?(?![\w])"
)
_TIME_OBJECT_AFTER = re.compile(
    r"^\s*(?:(?:off|from|of|in|to)\s+)?(?:the\s+|its\s+)?(?:extra\s+|additional\s+|added\s+)?(?:(?:p50|median)"
    r"(?:\s+latency)?|(?:inference\s+)?(?:latency|delay|inference\s+time|response\s+time|run\s*-?time|inference|"
    r"overhead))(?![\w])"
)
_PER_ITEM_AFTER = re.compile(
    r"^\s*per\s+(?:image|sample|request|query|prediction|inference|batch|call|item|token|input|example|frame|"
    r"forward\s+pass)(?![\w])"
)
_SIZE_NOUN_BEFORE = re.compile(rf"{_SIZE_NOUN}{_AMOUNT_TAIL}")
_SIZE_DOWN_OBJECT_BEFORE = re.compile(
    rf"(?:shrink|reduc|compress|cut|trim|slim|lighten)\w*\s+(?P<obj>[\w.-]+)(?:\s+{_SIZE_NOUN})?\s+(?:down\s+)?by"
    + _AMOUNT_TAIL
)
_LAT_NOUN_BEFORE = re.compile(rf"{_LAT_NOUN}{_AMOUNT_TAIL}")
# a verb that takes the amount off ("take 1.5 MB off the model"): read only with "off" after the amount
_OFF_VERB_BEFORE = re.compile(
    r"(?:take|takes|taking|knock|knocks|get|bring|chop|shave|cut|trim)" + _AMOUNT_TAIL
)

_OF_ORIGINAL_AFTER = re.compile(
    r"^\s*of\s+(?:(?:the\s+|its\s+)?(?:original|baseline|before|current|fp32|uncompressed|unquantized|existing)"
    r"(?:\s+(?:model|one|version|latency|size))?|(?:that|it|this)(?![\w]))"
)
_MEMORY_WORD = re.compile(r"(?<![\w-])(?:ram|memory|vram|heap)(?![\w])")

_NON_P50 = re.compile(r"(?<![\w-])(?:p9\d(?:\.\d+)?|p99\.\d+|tail|worst[\s-]case|99th|95th|90th)(?![\w])")


@dataclass
class _Candidate:
    field: str
    value: float
    strength: str  # bound | bare
    spans: list[tuple[int, int]]


def _clause_breaks(work: str) -> tuple[list[int], list[int]]:
    """Start and end offsets of the clause breaks of ``work`` (both sorted)."""
    spans = [m.span() for m in _CLAUSE_BREAK.finditer(work)]
    return [s for s, _ in spans], [e for _, e in spans]


def _clause_bounds(breaks: tuple[list[int], list[int]], pos: int, length: int) -> tuple[int, int]:
    """The clause around ``pos``: from the end of the break before it to the start of the break after it."""
    starts, ends = breaks
    i = bisect.bisect_right(ends, pos)
    j = bisect.bisect_left(starts, pos)
    return (ends[i - 1] if i else 0), (starts[j] if j < len(starts) else length)


def _find_quantities(scan: _Scan) -> list[_Quantity]:
    found: list[_Quantity] = []
    taken = [False] * len(scan.work)
    for kind, pattern in _QUANTITY_RULES:
        for m in scan.matches(pattern):
            if any(taken[m.start() : m.end()]):
                continue
            if kind == "frac":
                word = m.group("frac")
                if "/" in word:
                    a, b = (float(x) for x in word.split("/"))
                    if b == 0 or a <= 0 or a > b:
                        continue
                    value = a / b
                elif word.startswith("halv"):
                    value = 0.5
                else:
                    value = _FRACTIONS[word.split()[-1]]
                q = _Quantity(kind, m.start(), m.end(), value, word)
            elif kind == "verbmult":
                verb = m.group("verb")
                value = 2.0 if verb.startswith("doubl") else 3.0 if verb.startswith("tripl") else 4.0
                q = _Quantity("mult", m.start(), m.end(), value, "verb")
            else:
                num = m.group("num") if "num" in pattern.groupindex else m.group(0)
                unit = m.group("unit") if "unit" in pattern.groupindex else ""
                if not math.isfinite(_to_float(num)):
                    continue
                q = _Quantity(kind, m.start(), m.end(), _to_float(num), unit.strip())
            found.append(q)
            for i in range(m.start(), m.end()):
                taken[i] = True
    found.sort(key=lambda q: q.start)
    return found


def _tokens_back(text: str) -> list[tuple[str, int]]:
    """Tokens of ``text`` (with start offsets) walking back from its end over chain words."""
    tokens = [(m.group(0), m.start()) for m in re.finditer(r"<=|>=|[<>=:~]|[\w'.-]+|\0+|\S", text)]
    chain: list[tuple[str, int]] = []
    for tok, pos in reversed(tokens):
        if tok not in _CHAIN_WORDS:
            break
        chain.append((tok, pos))
    chain.reverse()
    return chain


def _token_offsets(chain: list[tuple[str, int]]) -> list[int]:
    """Offsets of the chain tokens in ``" ".join(tokens)``."""
    offsets: list[int] = []
    pos = 0
    for tok, _ in chain:
        offsets.append(pos)
        pos += len(tok) + 1
    return offsets


class _Reader:
    """Reads the numbers of the text and the words around them into candidate constraint values."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.candidates: list[_Candidate] = []

    def run(self) -> None:
        self._bare_keyword_numbers()
        self._block_non_p50()
        quantities = _find_quantities(self.scan)
        breaks = _clause_breaks(self.scan.work)
        for i, q in enumerate(quantities):
            c_start, c_end = _clause_bounds(breaks, q.start, len(self.scan.work))
            left = max(c_start, quantities[i - 1].end if i > 0 else 0)
            right = min(c_end, quantities[i + 1].start if i + 1 < len(quantities) else len(self.scan.work))
            left = min(left, q.start)
            right = max(right, q.end)
            if q.kind in ("size", "time"):
                self._absolute(q, left, right)
            else:
                self._relative(q, left, right)

    # -- numbers named by a keyword -------------------------------------------------------------------

    def _bare_keyword_numbers(self) -> None:
        scan = self.scan
        for m in scan.matches(_BARE_SPEEDUP):
            value = _to_float(m.group("num"))
            if value > 1:
                self.candidates.append(_Candidate("min_speedup", value, "bound", [m.span()]))
                scan.take(*m.span(), fields=("min_speedup",))
        for m in scan.matches(_BARE_RATIO):
            value = _to_float(m.group("num") or m.group("num2"))
            if value > 1:
                self.candidates.append(_Candidate("max_size_ratio", round(1 / value, 4), "bound", [m.span()]))
                scan.take(*m.span(), fields=("max_size_ratio",))

    def _block_non_p50(self) -> None:
        """A p95/p99/tail latency bound is not p50: keep its words (and number) away from the rules."""
        scan = self.scan
        for m in scan.matches(_NON_P50):
            c_start, c_end = _clause_bounds(_clause_breaks(scan.work), m.start(), len(scan.work))
            scan.take(c_start, c_end, understood=False)

    # -- sizes and latencies with units -------------------------------------------------------------

    def _absolute(self, q: _Quantity, left: int, right: int) -> None:
        scan = self.scan
        work = scan.work
        field_name = "max_size_mb" if q.kind == "size" else "max_latency_ms"
        if q.kind == "size":
            value = round(q.value * _size_factor_mb(q.unit), 6)
        else:
            value = round(q.value * _time_factor_ms(q.unit), 6)
        if value <= 0:
            return
        chain = _tokens_back(work[left : q.start])
        chain_start = left + chain[0][1] if chain else q.start
        chain_text = " ".join(tok for tok, _ in chain)
        after = work[q.end : right]
        post = _POST_BOUND.match(after)
        post_end = q.end + (post.end() if post else 0)
        soft = _SOFT.search(work[left : q.start]) or _SOFT.match(after.strip()) is not None
        if soft or _POST_CURRENT.match(after):
            scan.take(q.start, q.end, understood=False)
            return
        memory = _MEMORY_WORD.search(chain_text) is not None or (
            post is not None and _MEMORY_WORD.search(post.group(0)) is not None
        )
        if self._amount_of_change(q, value, left, right, memory):
            return
        if memory and q.kind == "size":
            field_name = "max_memory_mb"
        bound = [m.end() for m in _BOUND_CUE.finditer(chain_text)]
        current = [m for m in _CURRENT_CUE.finditer(chain_text)]
        weak = [m for m in _WEAK_CURRENT_CUE.finditer(chain_text)]
        if (current and (not bound or current[-1].end() > max(bound))) or (weak and not bound):
            # The size or latency the model has now ("from 40 MB", "it is 40 MB"): not a bound. The words
            # before the cue ("latency should go") were read; the cue and the number stay unparsed.
            cue_start = (current or weak)[0].start()
            offsets = _token_offsets(chain)
            before_cue = [pos for (_, pos), off in zip(chain, offsets, strict=True) if off < cue_start]
            if before_cue:
                last = chain[len(before_cue) - 1]
                scan.take(left + before_cue[0], left + last[1] + len(last[0]))
            scan.take(q.start, q.end, understood=False)
            return
        strength = "bound" if bound or _NOUN_CUE.search(chain_text) or post else "bare"
        self.candidates.append(_Candidate(field_name, value, strength, [(chain_start, post_end)]))
        scan.take(chain_start, post_end, fields=(field_name,))

    def _amount_of_change(self, q: _Quantity, value: float, left: int, right: int, memory: bool) -> bool:
        """Read an amount of change against the original ("reduce the size by 4 MB", "at most 5 ms slower",
        "within 5 ms of the original"); True when ``q`` is one (read, or left unparsed when the schema has no
        field for it: a memory change, a size that may grow)."""
        scan = self.scan
        work = scan.work
        before = work[left : q.start]
        after = work[q.end : right]
        found: tuple[str, re.Match[str] | None, re.Match[str] | None] | None = None
        if q.kind == "time":
            up_b, up_a = _TIME_UP_BEFORE.search(before), _TIME_UP_AFTER.match(after)
            down_b, down_a = _TIME_DOWN_BEFORE.search(before), _TIME_DOWN_AFTER.match(after)
            within_b, of_a = _WITHIN_AMOUNT_BEFORE.search(before), _OF_ORIGINAL_AFTER.match(after)
            if up_a or (up_b and not down_a):
                found = ("max_latency_increase_ms", up_b, up_a)
            elif down_a or down_b:
                found = ("min_latency_reduction_ms", down_b, down_a)
            elif within_b and of_a:
                found = ("max_latency_increase_ms", within_b, of_a)
        else:
            down_b, down_a = _SIZE_DOWN_BEFORE.search(before), _SIZE_DOWN_AFTER.match(after)
            down_b = down_b or _SIZE_DOWN_OBJECT_BEFORE.search(before)  # "shrink whisper-tiny by 20 MB"
            if down_a or down_b:
                found = ("min_size_reduction_mb", down_b, down_a)
            elif _SIZE_UP_AFTER.match(after) or (
                _WITHIN_AMOUNT_BEFORE.search(before) and _OF_ORIGINAL_AFTER.match(after)
            ):
                found = ("", None, None)
        if found is None:
            return False
        field_name, cue_before, cue_after = found
        cues = " ".join(m.group(0) for m in (cue_before, cue_after) if m is not None)
        memory = memory or _MEMORY_WORD.search(cues) is not None
        if not field_name or (memory and q.kind == "size"):  # no field for it: keep it visible
            scan.take(q.start, q.end, understood=False)
            return True
        start = left + cue_before.start() if cue_before is not None else q.start
        end = q.end + cue_after.end() if cue_after is not None else q.end
        obj = (_SIZE_OBJECT_AFTER if q.kind == "size" else _TIME_OBJECT_AFTER).match(work[end:right])
        if obj is not None:
            end += obj.end()
        per = _PER_ITEM_AFTER.match(work[end:right])
        if per is not None:
            end += per.end()
        if cue_before is None and cue_after is not None and cue_after.group(0).strip().startswith("off"):
            verb = _OFF_VERB_BEFORE.search(before)
            if verb is not None:
                start = left + verb.start()
        if start == q.start:  # what the amount applies to, right before it ("the file 1 GB smaller")
            noun = (_SIZE_NOUN_BEFORE if q.kind == "size" else _LAT_NOUN_BEFORE).search(before)
            if noun is not None:
                start = left + noun.start()
        spans = [(start, end)]
        obj_span = (
            cue_before.span("obj") if cue_before is not None and "obj" in cue_before.groupdict() else (-1, -1)
        )
        if obj_span[0] >= 0:  # the object (a model's name) is not part of the reading
            spans = [(start, left + obj_span[0]), (left + obj_span[1], end)]
        self.candidates.append(_Candidate(field_name, value, "bound", spans))
        scan.take_all(spans, (field_name,))
        return True

    # -- percentages, multipliers, fractions ---------------------------------------------------------

    def _keywords(self, left: int, right: int, q: _Quantity) -> list[tuple[int, _Keyword]]:
        """Keywords around ``q`` that may describe it, nearest first (ties: the one after the number)."""
        found: list[tuple[int, _Keyword]] = []
        for k, direction in self._all_keywords(left, right, q):
            if k.end <= q.start and direction in ("pre", "both"):
                found.append((q.start - k.end, k))
            elif k.start >= q.end and direction in ("post", "both"):
                found.append((k.start - q.end, k))
        found.sort(key=lambda item: (item[0], item[1].start < q.start))
        return found

    def _all_keywords(self, left: int, right: int, q: _Quantity) -> list[tuple[_Keyword, str]]:
        found: list[tuple[_Keyword, str]] = []
        work = self.scan.work
        for pattern, category, direction, role in _KEYWORDS:
            for m in pattern.finditer(work, left, right):
                if self.scan.free(m.start(), m.end()) and (m.end() <= q.start or m.start() >= q.end):
                    found.append((_Keyword(category, role, m.start(), m.end()), direction))
        return found

    def _relative(self, q: _Quantity, left: int, right: int) -> None:
        scan = self.scan
        work = scan.work
        keywords = self._keywords(left, right, q)
        if q.kind == "pts":  # points are accuracy points whatever stands nearby
            keywords = [(0, _Keyword("acc", "noun", q.start, q.end))] + [
                item for item in keywords if item[1].category == "acc"
            ]
        if not keywords:
            return
        before = work[left : q.start]
        after = work[q.end : right]
        if _SOFT.search(before) or _SOFT.match(after.strip()):
            return
        kw = keywords[0][1]
        if kw.role == "floor" or (
            kw.role == "drop" and not any(k.category == "acc" and k.role == "noun" for _, k in keywords)
        ):
            # "not below" or "decrease" name no quantity: a size or speed word in the window does
            # ("throughput may decrease by 10%"); without one they are about the metric ("lose 1%")
            kw = next((k for _, k in keywords if k.category != "acc"), kw)
        all_kw = [k for k, _ in self._all_keywords(left, right, q)]
        floors = [k for k in all_kw if k.role == "floor"]
        # a drop keyword inside a floor phrase ("must not drop below") is part of the floor
        same = [
            k
            for _, k in keywords
            if k.category == kw.category
            and not (k.role == "drop" and any(f.start <= k.start and k.end <= f.end for f in floors))
        ]
        if q.kind == "num" and kw.category != "acc":
            return
        # Every word of the chosen kind in the window is read with the number ("make it lighter, 70% ...").
        spans = [(q.start, q.end)] + [(k.start, k.end) for k in all_kw if k.category == kw.category]
        by = _BY_BEFORE.search(before) is not None or _CUT_BEFORE.search(before) is not None
        to = not by and (
            kw.role == "than" or _TO_BEFORE.search(before) is not None or _OF_AFTER.match(after) is not None
        )
        value: float | None = None
        field_name = ""
        if kw.category == "size":
            if q.kind == "num":
                return
            field_name = "max_size_ratio"
            if q.kind == "pct":
                p = q.value / 100
                value = p if to and not by else 1 - p
            elif q.kind == "mult":
                value = q.value if (to and q.value <= 1) else (1 / q.value if q.value > 1 else None)
            elif q.kind == "frac":
                value = 1 - q.value if by else q.value
            if value is not None and not 0 < value <= 1:
                value = None
            value = round(value, 4) if value is not None else None
        elif kw.category == "speed":
            field_name, value, extra = self._speed(q, same, before, after, left, right, to, by)
            spans += extra
        else:  # accuracy
            read = self._accuracy(q, same, floors, before, after, left, right)
            if read is None:
                return
            field_name, value, extra = read
            if not field_name:  # an absolute accuracy the rules cannot place: keep it visible
                start = min(s for s, _ in spans)
                end = max(e for _, e in spans)
                scan.take(start, end, understood=False)
                return
            spans += extra
        no_worse = _NO_WORSE_BEFORE.search(before)
        if no_worse is not None and field_name:
            spans.append((left + no_worse.start(), left + no_worse.end()))
        if kw.category in ("size", "speed") and field_name:  # "size must drop by 80%"
            spans += [m.span() for m in _DOWN_WORDS.finditer(work, left, right) if scan.free(*m.span())]
        if value is None:
            if field_name:  # an impossible value: not understood, and no later rule reads these words
                for s, e in spans:
                    scan.take(s, e, understood=False)
            return
        # "25% higher than now", "10% slower than the original": the comparison is part of the reading
        for _, e in list(spans):
            tail = _COMPARED_AFTER.match(work, e, right)
            if tail is not None and tail.end() > e:
                spans.append(tail.span())
        self.candidates.append(_Candidate(field_name, value, "bound", spans))
        scan.take_all(spans, (field_name,))

    def _speed(
        self,
        q: _Quantity,
        same: list[_Keyword],
        before: str,
        after: str,
        left: int,
        right: int,
        to: bool,
        by: bool,
    ) -> tuple[str, float | None, list[tuple[int, int]]]:
        """A relative speed bound: ``min_speedup`` (faster) or ``max_latency_ratio`` (how much slower it may
        be: "within 10% of the original latency", "may increase by at most 20%", "at most 2x slower")."""
        work = self.scan.work
        roles = {k.role for k in same}
        lat = "lat" in roles
        inc = "inc" in roles
        p = q.value / 100 if q.kind == "pct" else 0.0
        lat_text = " ".join(work[k.start : k.end] for k in same if k.role == "lat")
        lat_reduced = re.search(r"\b(?:lower|less|shorter|reduced)\b", lat_text) is not None
        down = _DOWN_WORDS.search(work, left, right)
        value: float | None = None
        if "slow" in roles or ("up" in roles and lat and not inc):
            if q.kind == "pct":
                return "max_latency_ratio", round(1 + p, 4) if p >= 0 else None, []
            if q.kind == "mult":
                return "max_latency_ratio", q.value if q.value >= 1 else None, []
            if q.kind == "frac":  # "may increase by up to a third"
                return "max_latency_ratio", round(1 + q.value, 4), []
            return "max_latency_ratio", None, []
        above = _ABOVE_ORIGINAL_AFTER.match(after)
        if lat and above is not None and q.kind == "pct":  # "15% above the original latency"
            return "max_latency_ratio", round(1 + p, 4), [(q.end, q.end + above.end())]
        if "up" in roles and not lat and not inc:  # "increase by 20%": of what?
            return "", None, []
        if _WITHIN_BEFORE.search(before) and q.kind == "pct" and (lat or inc):
            # "latency within 10% of the original": at most 10% slower ("speed within 10%": at most 10% slower
            # in speed, so latency at most 1 / 0.9 of the original)
            value = 1 + p if lat else (1 / (1 - p) if 0 <= p < 1 else None)
            return "max_latency_ratio", round(value, 4) if value is not None else None, []
        if q.kind == "pct" and lat and not lat_reduced and to and not by and p >= 1:
            return "max_latency_ratio", round(p, 4), []  # "latency at most 120% of the original"
        # "at most 2x the latency", "latency may double"
        if (
            q.kind == "mult"
            and lat
            and not lat_reduced
            and not inc
            and (_THE_AFTER.match(after) or q.unit == "verb")
        ):
            return "max_latency_ratio", q.value if q.value >= 1 else None, []
        if inc and not lat and down is not None and q.kind == "pct":
            # "throughput may decrease by at most 10%": a speed of 0.9x, so latency at most 1 / 0.9
            value = 1 / (1 - p) if 0 <= p < 1 else None
            return "max_latency_ratio", round(value, 4) if value is not None else None, [down.span()]
        latency_words = lat
        if q.kind == "mult":
            value = q.value if q.value > 1 else None
        elif q.kind == "pct":
            first = same[0].role if same else ""
            if first == "lat" or (latency_words and first != "inc"):
                if to and not by:
                    value = 1 / p if 0 < p < 1 else None
                else:
                    value = 1 / (1 - p) if 0 < p < 1 else None
            else:
                value = 1 + p if p > 0 else None
        elif q.kind == "frac" and latency_words:
            value = 1 / (1 - q.value) if by else 1 / q.value
        return "min_speedup", round(value, 4) if value is not None else None, []

    def _accuracy(
        self,
        q: _Quantity,
        same: list[_Keyword],
        floors: list[_Keyword],
        before: str,
        after: str,
        left: int,
        right: int,
    ) -> tuple[str, float | None, list[tuple[int, int]]] | None:
        """An accuracy bound: a drop in points (``max_accuracy_drop_pct``), a floor on the metric itself
        (``min_metric``: "must not drop below 75%", "at least 98% accuracy") or a share of the original's metric
        (``min_metric_ratio``: "keep 95% of the original accuracy", "not below 90% of the baseline").

        Returns None to leave the number alone, ``("", None, [])`` for an accuracy the rules cannot place.
        """
        scan = self.scan
        around = scan.norm[left:right]
        floor_cue = _FLOOR_BEFORE.search(before)
        floor_after = _FLOOR_AFTER.match(after)
        cue_start = left + floor_cue.start() if floor_cue is not None else q.start
        # a drop word inside the floor cue ("no worse than") is part of the floor
        drop_kw = any(k.role == "drop" and not cue_start <= k.start < q.start for k in same)
        floor_verb = bool(floors) and any(k.role == "floor" for k in same)
        floor = floor_verb or ((floor_cue is not None or floor_after is not None) and not drop_kw)
        dropish = (
            _DROPISH.search(around) is not None
            or re.match(r"^\s*(?:lower|less|worse)\b", after) is not None
            or _BY_BEFORE.search(before) is not None
        )
        extra: list[tuple[int, int]] = []
        if floor_cue is not None and floor_cue.group(0).strip():
            extra.append((left + floor_cue.start(), left + floor_cue.end()))
        if floor_after is not None:
            extra.append((q.end, q.end + floor_after.end()))
        if q.kind == "pct":
            p = q.value / 100
            base = _OF_BASE_AFTER.match(after)
            relative = base is not None or _RELATIVE.search(around) is not None
            if relative:
                if base is not None:
                    extra.append((q.end, q.end + base.end()))
                rel = _RELATIVE.search(scan.work, left, q.start) or _RELATIVE.search(
                    scan.work, q.end, q.end + (base.end() if base else 0) + 40
                )
                if rel is not None and rel.start() < right:
                    extra.append(rel.span())
                keep_m = _KEEP_BEFORE.search(before)
                if keep_m is not None:
                    extra.append((left + keep_m.start(), left + keep_m.end()))
                keep = keep_m is not None
                ratio = 1 - p if dropish and not floor and not keep else p
                return "min_metric_ratio", round(ratio, 6) if 0 < ratio <= 1 else None, extra
            if floor:
                return "min_metric", round(p, 6) if 0 < p <= 1 else None, extra
        elif q.kind == "pts" and floor_verb and not q.unit.startswith(("basis", "bp")):
            return "min_metric", round(q.value / 100, 6) if 0 < q.value <= 100 else None, extra
        elif q.kind == "num":
            base = _OF_BASE_AFTER.match(after)
            if base is not None and not dropish and 0 < q.value <= 1:  # "at least 0.9 of the original"
                return "min_metric_ratio", q.value, [*extra, (q.end, q.end + base.end())]
            if floor and not drop_kw and 0 < q.value <= 1:
                return "min_metric", q.value, extra
            return None
        if q.kind in ("pct", "pts"):
            if dropish or (q.kind == "pts" and not _GE_BEFORE.search(before)):
                value = q.value / 100 if q.unit.startswith(("basis", "bp")) else q.value
                value = round(value, 4)
                return "max_accuracy_drop_pct", value if value <= 100 else None, []
            return "", None, []
        return None


def _valid(name: str, value: float) -> bool:
    """Whether ``value`` (already rounded) is possible for the Goal field: within the bounds its schema declares
    (an impossible number is not understood)."""
    if not math.isfinite(value):
        return False
    try:
        Goal.model_validate({name: value})
    except ValidationError:
        return False
    return True


def _resolve(reader: _Reader, scan: _Scan) -> dict[str, float]:
    """Combine candidate values per field: bounds to the strictest (the largest minimum, the smallest maximum),
    a lone bare value, else nothing."""
    result: dict[str, float] = {}
    by_field: dict[str, list[_Candidate]] = {}
    for c in reader.candidates:
        by_field.setdefault(c.field, []).append(c)
    for name, cands in by_field.items():
        for c in cands:
            if not _valid(name, c.value):
                scan.release(c.spans)
        cands = [c for c in cands if _valid(name, c.value)]
        bounds = [c for c in cands if c.strength == "bound"]
        bare = [c for c in cands if c.strength == "bare"]
        chosen: list[_Candidate]
        if bounds:
            chosen = bounds
            ignored = bare
        elif len({c.value for c in bare}) == 1:
            chosen, ignored = bare, []
        else:
            chosen, ignored = [], bare
        for c in ignored:
            scan.release(c.spans)
        if chosen:
            values = [c.value for c in chosen]
            result[name] = max(values) if name.startswith("min_") else min(values)
    return result


# --------------------------------------------------------------------------------------------------
# Rules without numbers
# --------------------------------------------------------------------------------------------------


def _single(votes: list[_Vote], scan: _Scan) -> str | None:
    """The one value all votes agree on; on disagreement nothing, and the words become unparsed again."""
    values = {v.value for v in votes}
    if len(values) == 1:
        return votes[0].value
    for v in votes:
        scan.release(v.spans)
    return None


def _soft_before(scan: _Scan, start: int) -> bool:
    """Whether a wish word ("ideally", "prefer") stands before ``start`` in its clause: a wish is no rule."""
    clause = re.split(r"[,;.!?\n]", scan.norm[max(0, start - 60) : start])[-1]
    return _SOFT.search(clause) is not None


def _precision_of(token: str) -> Precision:
    for tokens, value in _PRECISION_TOKENS:
        if re.fullmatch(tokens, token):
            return value
    raise ValueError(token)  # never: the token was matched by one of these patterns


def _read_precision(scan: _Scan, allowed: set[Method]) -> tuple[str | None, set[str]]:
    """The precision asked for, and the precisions forbidden ("avoid fp16", "int4 is not supported")."""
    forbidden: set[str] = set()
    for pattern in _PRECISION_FORBID_RULES:
        for m in scan.matches(pattern):
            if _soft_before(scan, m.start()):
                scan.take(*m.span(), understood=False)
                continue
            found = {_precision_of(m.group(g)) for g in ("p1", "p2") if m.group(g)}
            forbidden |= found
            scan.take(*m.span(), fields=("precision_forbidden",))
    votes: list[_Vote] = []
    for pattern, value in _PRECISION_RULES:
        for m in scan.matches(pattern):
            votes.append(_Vote(value, [m.span()]))
            only = bool(m.group("only_pre") or m.group("only_post"))
            scan.take(*m.span(), fields=("precision", "methods_allowed") if only else ("precision",))
            if only:
                allowed.add("quantize")
    precision = _single(votes, scan)
    if precision is not None and precision in forbidden:  # "int8, not int8": a contradiction
        for v in votes:
            scan.release(v.spans)
        return None, forbidden - {precision}
    return precision, forbidden


def _read_keep_float(scan: _Scan) -> list[str]:
    """The layers kept in float ("don't quantize the first and last layers"), first before last."""
    found: set[str] = set()
    for pattern in _KEEP_FLOAT_RULES:
        for m in scan.matches(pattern):
            names = [
                v.split()[0] if v.split()[0] in _LAYER_WHICH else v
                for k, v in m.groupdict().items()
                if v and k.endswith(("l1", "l2", "head"))
            ]
            which = {_LAYER_WHICH.get(n, "last" if not n.startswith("stem") else "first") for n in names}
            if not which:
                continue
            found |= which
            scan.take(*m.span(), fields=("keep_float_layers",))
    for pattern in _OTHER_SCOPE_RULES:
        for m in scan.matches(pattern):
            scan.take(*m.span(), understood=False)
    return [w for w in ("first", "last") if w in found]


@dataclass
class _Methods:
    allowed: set[Method] = field(default_factory=set)
    forbidden: set[Method] = field(default_factory=set)
    requested: set[Method] = field(default_factory=set)
    fallback: set[Method] = field(default_factory=set)
    spans: list[tuple[int, int]] = field(default_factory=list)  # what allowed and forbid (for contradictions)


def _methods_in(m: re.Match[str], *groups: str) -> list[Method]:
    return [_method_of(m.group(g)) for g in groups if g in m.groupdict() and m.group(g)]


def _read_fallback(scan: _Scan) -> set[Method]:
    """Methods kept as a fallback ("only prune if int8 isn't enough"); read before the precision, since the
    condition may name one ("int8") without asking for it."""
    found: set[Method] = set()
    for pattern in _FALLBACK_RULES:
        for m in scan.matches(pattern):
            found.update(_methods_in(m, "m1", "m2"))
            # a limit inside the condition ("if int8 can't get below 10 MB") is a limit: left for the reader
            spans, pos = [], m.start()
            for q in _QUANTITY_IN_CONDITION.finditer(scan.work, m.start(), m.end()):
                spans.append((pos, q.start()))
                pos = q.end()
            spans.append((pos, m.end()))
            scan.take_all(spans, ("methods_fallback",))
    return found


def _read_methods(scan: _Scan) -> _Methods:
    out = _Methods()
    for m in scan.matches(_NOT_ONLY):
        out.requested.update(_methods_in(m, "m1", "m2", "m3"))
        scan.take(*m.span(), fields=("methods_requested",))
    for m in scan.matches(_NO_TRAINING):
        out.forbidden.add("qat")
        out.spans.append(m.span())
        scan.take(*m.span(), fields=("methods_forbidden",))
    for m in scan.matches(_POST_TRAINING_ONLY):
        only = bool(m.group("only_pre") or m.group("only_post"))
        named = bool(m.group("named") or m.group("ptq"))
        if only:
            out.forbidden.add("qat")
            out.spans.append(m.span())
            if named:
                out.allowed.add("quantize")
            fields: tuple[str, ...] = (
                ("methods_forbidden", "methods_allowed") if named else ("methods_forbidden",)
            )
        elif named:
            out.requested.add("quantize")
            fields = ("methods_requested",)
        else:
            continue
        scan.take(*m.span(), fields=fields)
    for pattern in (_FORBID_PRE, _FORBID_POST):
        for m in scan.matches(pattern):
            if _soft_before(scan, m.start()):
                scan.take(*m.span(), understood=False)
                continue
            out.forbidden.update(_methods_in(m, "m1", "m2"))

            out.spans.append(m.span())
            scan.take(*m.span(), fields=("methods_forbidden",))
    for pattern in (_ONLY_PRE, _ONLY_POST):
        for m in scan.matches(pattern):
            out.allowed.update(_methods_in(m, "m1", "m2"))
            out.spans.append(m.span())
            scan.take(*m.span(), fields=("methods_allowed",))
    permitted: set[Method] = set()
    for pattern in _PERMIT:
        for m in scan.matches(pattern):
            permitted.update(_methods_in(m, "m1", "m2"))
            scan.take(*m.span())
    if out.allowed:
        out.allowed |= permitted
    return out


def _read_mentions(scan: _Scan) -> dict[Method, list[_Note]]:
    """A method named without a restriction ("prune it", "try pruning") restricts nothing: it is asked for (the
    sweep then builds its candidates). Returns the methods asked for, with the notes that read them."""
    requested: dict[Method, list[_Note]] = {}
    for m in scan.matches(_MENTION):
        if _NEGATION_BEFORE.search(scan.work[: m.start()]):
            continue
        scan.take(*m.span(), fields=("methods_requested",))
        requested.setdefault(_method_of(m.group("m1")), []).append(scan.notes[-1])
    return requested


def _read_device(scan: _Scan) -> str | None:
    """The deployment device; where it is named ("run on CPU") beats a device merely mentioned, and a GPU that
    is not there ("GPUs aren't available") names the CPU."""
    found: list[tuple[re.Match[str], Device, bool]] = []
    for pattern in _NO_GPU_RULES:
        for m in scan.matches(pattern):
            found.append((m, "cpu", True))
            scan.take(*m.span(), fields=("device",))
    for pattern, value in _DEVICE_RULES:
        for m in scan.matches(pattern):
            if _TRAINED_BEFORE.search(scan.work[: m.start()]):
                scan.take(*m.span(), understood=False)
                continue
            found.append((m, value, False))
            scan.take(*m.span(), fields=("device",))
            if _MEMORY_AFTER.match(scan.norm, m.end()):
                scan.unmask(*m.span())
    found.sort(key=lambda item: item[0].start())
    votes: list[_Vote] = []
    targeted: list[_Vote] = []
    previous_end, previous_targeted = -1, False
    for m, value, negated_gpu in found:
        vote = _Vote(value, [m.span()])
        votes.append(vote)
        # "on Android phones", "on cpu or gpu": a device right after a targeted one is targeted too.
        listed = previous_targeted and _DEVICE_LIST_GAP.fullmatch(scan.norm[previous_end : m.start()])
        if negated_gpu or listed or _DEVICE_TARGET_BEFORE.search(scan.norm[: m.start()]):
            targeted.append(vote)
            previous_targeted = True
        else:
            previous_targeted = False
        previous_end = m.end()
    if targeted and len({v.value for v in targeted}) == 1:
        for v in votes:
            if v.value != targeted[0].value:
                scan.release(v.spans)
        return targeted[0].value
    return _single(votes, scan)


def _read_objective(scan: _Scan) -> str:
    votes: list[_Vote] = []
    for m in scan.matches(_NO_PREFERENCE):
        scan.take(*m.span())
    for pattern, value in _CONTRAST_PATTERNS:
        for m in scan.matches(pattern):
            votes.append(_Vote(value, [m.span()]))
            scan.take(*m.span(), fields=("objective",))
    for m in scan.matches(_AS_ADJ_AS):
        adjectives = re.findall(r"[a-z]+", m.group("adjs"))
        values = {_ADJ_OBJECTIVE[a] for a in adjectives if a in _ADJ_OBJECTIVE}
        for value in values:
            votes.append(_Vote(value, [m.span()]))
        scan.take(*m.span(), fields=("objective",))
    for pattern, value in _OBJECTIVE_RULES:
        for m in scan.matches(pattern):
            votes.append(_Vote(value, [m.span()]))
            scan.take(*m.span(), fields=("objective",) if value != "balanced" else ())
    specific = [v for v in votes if v.value != "balanced"]
    if not specific:
        return "balanced"
    chosen = _single(specific, scan)
    if chosen is None:
        for v in votes:
            scan.release(v.spans)
        return "balanced"
    return chosen


def _read_same_latency(scan: _Scan) -> bool:
    found = False
    for pattern in _SAME_LATENCY_RULES:
        for m in scan.matches(pattern):
            scan.take(*m.span(), fields=("max_latency_ratio",))
            found = True
    return found


def _read_zero_drop(scan: _Scan) -> bool:
    found = False
    for pattern in _ZERO_DROP_RULES:
        for m in scan.matches(pattern):
            scan.take(*m.span(), fields=("max_accuracy_drop_pct",))
            found = True
    return found


# --------------------------------------------------------------------------------------------------
# How the model will run: threads and batch size (settings of the measurement, not limits)
# --------------------------------------------------------------------------------------------------

_COUNT = rf"(?P<n>\d+|{_NUMBER_WORD_RE})"
_THREAD_NOUN = r"(?:cpu\s+|intra[\s-]?op\s+)?(?:threads?|cores?|vcpus?)"
_THREADS_RULES: list[re.Pattern[str]] = [
    # "on 4 threads", "with two cores", "a 4-core laptop", "4 cpu threads"
    _kw(rf"(?:(?:on|with|using|across|over|in|at)\s+)?{_COUNT}[\s-]*{_THREAD_NOUN}"),
    # "threads: 4", "threads=4", "thread count of 8", "intra_op_num_threads 2"
    _kw(
        rf"(?:intra[\s_-]?op[\s_-]?num[\s_-]?threads|{_THREAD_NOUN}(?:\s+count)?)\s*(?:[:=]|of|is|set\s+to)?\s*"
        rf"(?P<n>\d+)"
    ),
    # "single thread", "single-threaded", "one thread"
    _kw(r"(?:on\s+)?(?:a\s+)?(?P<single>single)[\s-]?(?:threads?|threaded|cores?)"),
]
_BATCH_RULES: list[re.Pattern[str]] = [
    # "batch 32", "batch size of 8", "batch-size=16", "batches of 4", "at batch size 8"
    _kw(
        rf"(?:(?:at|with|in|on|using|for)\s+(?:an?\s+|the\s+)?)?batch(?:es)?(?:[\s_-]*size)?\s*"
        rf"(?:[:=]|of|is|set\s+to)?\s*(?:size\s+)?{_COUNT}"
    ),
    # "32 images per batch", "8 sentences a batch"
    _kw(
        rf"{_COUNT}\s+(?:samples?|images?|inputs?|sentences?|items?|requests?|examples?)\s+(?:per|a|each)\s+batch"
    ),
    # "one image at a time", "unbatched"
    _kw(
        r"(?P<single>unbatched|(?:one|1|a\s+single)\s+(?:sample|image|input|sentence|request)\s+at\s+a\s+time)"
    ),
]
_MAX_THREADS = 256
_MAX_BATCH = 4096


def _count_of(m: re.Match[str]) -> int | None:
    if m.groupdict().get("single"):
        return 1
    text = m.group("n")
    if text.isdigit():
        return int(text)
    value = _cardinal(text)
    return int(value) if value is not None and value == int(value) else None


def _read_run_settings(scan: _Scan) -> dict[str, int]:
    """Threads and batch size the model will run with ("on 4 threads", "batch size of 8"): latency is measured
    with them. Two different values for one setting set nothing (their words stay unparsed); a value out of
    range (0, or more than 256 threads / 4096 samples) is left unparsed."""
    out: dict[str, int] = {}
    for name, rules, most in (
        ("threads", _THREADS_RULES, _MAX_THREADS),
        ("batch_size", _BATCH_RULES, _MAX_BATCH),
    ):
        votes: list[_Vote] = []
        for pattern in rules:
            for m in scan.matches(pattern):
                value = _count_of(m)
                if value is None or not 1 <= value <= most:
                    scan.take(*m.span(), understood=False)
                    continue
                votes.append(_Vote(str(value), [m.span()]))
                scan.take(*m.span(), fields=(name,))
        chosen = _single(votes, scan) if votes else None
        if chosen is not None:
            out[name] = int(chosen)
    return out


_MAX_WORD = 60
_MAX_UNPARSED = 200


def _unparsed(scan: _Scan) -> list[str]:
    words: list[str] = []
    # a negative number keeps its sign: "-5" is what was not understood, not "5"
    for m in re.finditer(r"(?:(?<![\w.])-(?=\.?\d))?[a-z0-9%][\w%.+'/-]*", scan.norm):
        if any(scan.used[m.start() : m.end()]):
            continue
        word = m.group(0).rstrip(".-'/+")
        if len(word) > _MAX_WORD:  # a run of 400 digits is reported, not echoed whole
            word = word[: _MAX_WORD - 1] + "…"
        if word and word not in _STOPWORDS and word not in words:
            words.append(word)
    return words[:_MAX_UNPARSED]


def parse_goal(text: str, prior: Goal | None = None) -> Goal:
    """Read an English sentence into a :class:`Goal`, deterministically and without any network. With ``prior``
    (the goal of the conversation so far), the sentence is a follow-up merged into it (:meth:`Goal.merged_with`).

    Never raises for odd text: words it could not use are listed in ``Goal.unparsed_words``, what it read and the
    fields each part set in ``Goal.readings``; when no constraint was read, ``Goal.has_constraints`` is false.
    """
    read = _read_goal(text)
    return read if prior is None else prior.merged_with(read)


def _read_goal(text: str) -> Goal:
    scan = _Scan(_normalise(text))
    # first, so that "batch 32" and "4 threads" are never read as a quantity of another rule
    run_settings = _read_run_settings(scan)
    allowed: set[Method] = set()
    keep_float = _read_keep_float(scan)
    fallback_read = _read_fallback(scan)
    precision, precision_forbidden = _read_precision(scan, allowed)
    methods = _read_methods(scan)
    methods.fallback |= fallback_read
    allowed |= methods.allowed
    forbidden = methods.forbidden
    device = _read_device(scan)
    objective = _read_objective(scan)
    reader = _Reader(scan)
    reader.run()
    values = _resolve(reader, scan)
    if _read_zero_drop(scan) and not any(k in values for k in ("min_metric", "min_metric_ratio")):
        values.setdefault("max_accuracy_drop_pct", 0.0)
    if _read_same_latency(scan) and not any(
        k in values
        for k in ("max_latency_ms", "min_speedup", "max_latency_increase_ms", "min_latency_reduction_ms")
    ):
        values["max_latency_ratio"] = min(values.get("max_latency_ratio", 1.0), 1.0)
    mentions = _read_mentions(scan)
    requested = set(mentions) | methods.requested
    if allowed & forbidden:
        scan.release(methods.spans)
        both = allowed & forbidden
        allowed -= both
        forbidden -= both
    fallback = methods.fallback - forbidden
    requested -= forbidden | fallback
    for (
        method,
        notes,
    ) in mentions.items():  # "quantize and prune, but prune only if ...": named as the fallback
        if method in fallback:
            for note in notes:
                note.fields = ("methods_fallback",)
    if allowed:  # "only quantization, prune as a fallback": a fallback the only methods exclude is not read
        fallback &= allowed | ({"qat"} if "quantize" in allowed else set())
    fields = {
        **values,
        **run_settings,
        "objective": objective if objective != "balanced" else None,
        "methods_allowed": sorted(allowed) or None,
        "methods_forbidden": sorted(forbidden) or None,
        "methods_requested": sorted(requested) or None,
        "methods_fallback": sorted(fallback) or None,
        "precision": precision,
        "precision_forbidden": sorted(precision_forbidden) or None,
        "keep_float_layers": keep_float or None,
        "device": device,
    }
    # Words read for a field that ended up unset (a contradiction, a method both asked for and forbidden) were
    # not understood after all: they are reported, never claimed by a reading.
    final = {k for k, v in fields.items() if v is not None}
    for note in scan.notes:
        if note.fields and not any(f in final for f in note.fields):
            scan.release(note.spans)
    # only what the sentence set is passed, so Goal.model_fields_set says what a follow-up changes
    return Goal.model_validate(
        {
            **{k: v for k, v in fields.items() if v is not None},
            "unparsed_words": _unparsed(scan),
            "readings": scan.readings(),
            "text": text,
        }
    )
