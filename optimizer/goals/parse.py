"""Deterministic English-to-Goal parser: the offline reading of what a user wants from compression.

``parse_goal("under 5 MB, <1% accuracy loss")`` returns a :class:`Goal` with ``max_size_mb=5.0`` and
``max_accuracy_drop_pct=1.0``. No LLM and no network are involved: the text is normalised (lower case,
unicode comparison signs, number words, contractions), then ordered rules read it. Each rule masks the
characters it used, so no word is read twice, and the words no rule used are reported in
``Goal.unparsed_words`` (stop-words left out): nothing is silently guessed, and a caller can ask the
user about what was not understood.

Conventions (documented choices, not guesses):

* 1 MB = 1,000,000 bytes; KiB/MiB/GiB are binary and converted to decimal MB.
* ``max_accuracy_drop_pct`` is in percentage points of the task metric versus the original model.
  "no accuracy loss" / "without losing accuracy" / "keep accuracy" give ``0.0``: a strict reading that the
  measuring side must apply with its own noise tolerance.
* An absolute accuracy ("accuracy of at least 98%", "keep 99% of the accuracy") is not in the schema and is
  left in ``unparsed_words``.
* "edge", "mobile", "phone", "Raspberry Pi", "laptop" and "embedded" mean ``device="cpu"``; "no GPU" too.
* Only p50 latency is in the schema: a p90/p95/p99 bound is left unparsed.
* Several bounds on one quantity combine to the strictest (they all must hold); a size or latency that is
  described as the current one ("it is 40 MB now", "from 40 MB") is not a bound and stays unparsed; one
  marked as a wish ("ideally under 3 MB") stays unparsed too.
* "int8 only" / "only quantization" allow only quantization; "no pruning" forbids pruning and leaves the
  allowed list unset. "pruning is fine" restricts nothing.
* "on 4 threads" / "4 cores" / "single-threaded" set ``threads``, "batch 32" / "batch size of 8" / "32 images per
  batch" set ``batch_size``: how the model will run, so latency is measured that way (not limits).
* Contradictions (two objectives, two precisions, two devices, a method both allowed and forbidden) set
  nothing and leave their words unparsed.
"""

import bisect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from optimizer.types import Device, Goal, Method, Objective, Precision

__all__ = ["parse_goal"]

# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_NUMBER_WORDS: dict[str, str] = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "sixteen": "16",
    "twenty": "20",
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "hundred": "100",
}
_NUMBER_WORD_RE = "|".join(_NUMBER_WORDS)
# A number word becomes digits only before something that makes it a quantity ("ten times", "two ms").
_UNIT_AHEAD = (
    r"(?=\s*-?\s*(?:times|x\b|fold|%|percent|per\s*cent|percentage|points?\b|pts?\b|pp\b|ms\b|milli|micro|"
    r"nano|seconds?\b|secs?\b|s\b|[kmg]i?b\b|bytes|kilo|mega|giga|kibi|mebi|gibi|bits?\b|thirds?|quarters?|"
    r"fifths?|tenths?))"
)

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


def _number_word(m: re.Match[str]) -> str:
    return _NUMBER_WORDS[m.group(1)]


def _and_a_half(m: re.Match[str]) -> str:
    return _NUMBER_WORDS.get(m.group(1), m.group(1)) + ".5"


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
    (rf"\b({_NUMBER_WORD_RE}|\d+)\s+and\s+a\s+half\b", _and_a_half),
    (r"\btwice\b", "2 times"),
    (r"\bthrice\b", "3 times"),
    (r"\b(?:an|1|one)\s+orders?\s+of\s+magnitude\b", "10x"),
    (r"\b(?:2|two)\s+orders\s+of\s+magnitude\b", "100x"),
    (rf"\b({_NUMBER_WORD_RE})\b{_UNIT_AHEAD}", _number_word),
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
class _Scan:
    """The normalised text, what rules have masked, and which characters count as understood."""

    norm: str
    work: str = ""
    used: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.work = self.norm
        self.used = [False] * len(self.norm)

    def free(self, start: int, end: int) -> bool:
        return _MASK not in self.work[start:end]

    def take(self, start: int, end: int, understood: bool = True) -> None:
        """Mask ``[start, end)`` so no later rule reads it; ``understood`` marks it as parsed."""
        if end <= start:
            return
        self.work = self.work[:start] + _MASK * (end - start) + self.work[end:]
        if understood:
            for i in range(start, end):
                self.used[i] = True

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
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w])")


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

_NUM = r"(?<![\w.])(?<!\w-)(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# Names of task metrics; a drop in any of them is read as the accuracy drop (in points of that metric).
_METRIC = r"wer|cer|bleu|rouge(?:-?[l12])?|miou|auc|map|exact[\s-]match|em"
_ACC = (
    r"(?:top-?[15](?:\s+(?:accuracy|acc))?|(?:task\s+|test\s+|validation\s+|val\s+|eval\s+)?"
    r"(?:accuracy|acc|f1(?:[\s-]score)?|metric|score|quality|wer|cer|bleu|rouge(?:-?[l12])?|miou|auc))"
)
_DROP_NOUN = r"(?:loss(?:es)?|drops?|degradation|decrease|decline|regression|hit|penalty|reduction)"
_METH = (
    r"quanti[sz](?:e|es|ed|ing|ation)|quant|prun(?:e|es|ed|ing)|sparsi(?:ty|fy|fication|fied|fying)|sparse"
)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _method_of(word: str) -> Method:
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
_NEGATION_BEFORE = re.compile(r"(?:\b(?:no|not|never|without|avoid|skip|exclude)\b[^,;.\0]{0,30})$")

_DEVICE_RULES: list[tuple[re.Pattern[str], Device]] = [
    (
        _kw(
            r"(?:no|not|without|lack(?:s|ing)?|(?:do|does)\s+not\s+have)\s+"
            r"(?:(?:have|having|access\s+to|a|an|any)\s+){0,3}(?:gpus?|cuda)"
        ),
        "cpu",
    ),
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
            r"x86(?:-64)?|arm64|aarch64|raspberry\s+pi(?:\s*\d)?|rpi\d?|"
            r"mobile(?:\s+(?:phones?|devices?))?|(?:smart)?phones?|edge(?:\s+devices?)?|laptops?|"
            r"embedded(?:\s+(?:devices?|systems?|boards?|hardware))?|microcontrollers?|mcus?|android|ios|iphones?|"
            r"on-device|desktops?"
        ),
        "cpu",
    ),
]
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
# "size does not matter (much)": read, and no objective follows from it.
_NO_PREFERENCE = _kw(
    rf"(?:(?:the\s+)?(?:model\s+)?size|speed|latency|{_ACC})\s+(?:does|do|is)\s+not\s+(?:matter|important|"
    r"a\s+(?:concern|priority|problem|issue))(?:\s+(?:much|that\s+much|as\s+much|so\s+much|too\s+much))?"
)
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
        rf"{_ACC}(?!\s*(?:as|at|above|over|high|within|to|of|>|>=|\d))"
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
    rf"|(?<![\w.])(?P<num2>\d+(?:\.\d+)?)\s*:\s*1\s+(?:compression|size\s+reduction)(?![\w])"
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
            r"3\s+quarters|(?<![\w.])\d+\s*/\s*\d+|halve[sd]?|halving)(?![\w/])"
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
    unit = unit.replace(" ", "")
    binary = ("i" in unit[:3] and not unit.startswith("gig")) or unit.startswith(("kibi", "mebi", "gibi"))
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
            r"|(?:(?:lower|less|shorter|reduced)\s+)?(?:inference\s+time|run\s*-?time|response\s+time)"
        ),
        "speed",
        "both",
        "lat",
    ),
    (_kw(_ACC), "acc", "both", "noun"),
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
    r"bonus|stretch(?:\s+goal)?|even\s+better|love|prefer|preferred|hope|hoping|wish)\b"
)
_OPS_TAIL = (
    r"(?:\s*(?:at\s+least|at\s+most|about|around|roughly|approximately|~|>=|<=|>|<|over|more\s+than|"
    r"less\s+than|up\s+to|min(?:imum)?|max(?:imum)?|under|below|only|just|a|an))*\s*$"
)
_BY_BEFORE = re.compile(r"\bby" + _OPS_TAIL)
_TO_BEFORE = re.compile(r"\b(?:to|into|in)" + _OPS_TAIL)
_OF_AFTER = re.compile(r"^\s*(?:of|the|its|their)\b")

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
    r"(?:of\s+)?(?:ram|memory|storage|vram|gpu\s+memory|disk(?:\s+space)?)|"
    r"(?:(?:p50|median|average|mean|inference)\s+)?latency|(?:(?:at|@|for)\s+(?:the\s+)?)?(?:p50|median)|"
    r"per\s+(?:image|sample|request|query|prediction|inference|batch|call|item|token|input|example|"
    r"forward\s+pass|frame)|(?:for\s+)?inference|(?:on|in)\s+(?:average|median)))+"
)
_POST_CURRENT = re.compile(
    r"^\s*(?:now|currently|today|at\s+the\s+moment|right\s+now|originally|before|at\s+the\s+start)\b"
)
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
            elif q.kind != "num":
                self._relative(q, left, right)

    # -- numbers named by a keyword -------------------------------------------------------------------

    def _bare_keyword_numbers(self) -> None:
        scan = self.scan
        for m in scan.matches(_BARE_SPEEDUP):
            value = _to_float(m.group("num"))
            if value > 1:
                self.candidates.append(_Candidate("min_speedup", value, "bound", [m.span()]))
                scan.take(*m.span())
        for m in scan.matches(_BARE_RATIO):
            value = _to_float(m.group("num") or m.group("num2"))
            if value > 1:
                self.candidates.append(_Candidate("max_size_ratio", round(1 / value, 4), "bound", [m.span()]))
                scan.take(*m.span())

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
        scan.take(chain_start, post_end)

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
        same = [k for _, k in keywords if k.category == kw.category]
        # Every word of the chosen kind in the window is read with the number ("make it lighter, 70% ...").
        spans = [(q.start, q.end)] + [
            (k.start, k.end) for k, _ in self._all_keywords(left, right, q) if k.category == kw.category
        ]
        by = _BY_BEFORE.search(before) is not None
        to = kw.role == "than" or _TO_BEFORE.search(before) is not None or _OF_AFTER.match(after) is not None
        value: float | None = None
        field_name = ""
        if kw.category == "size":
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
            field_name = "min_speedup"
            latency_words = any(k.role == "lat" for k in same)
            if q.kind == "mult":
                value = q.value if q.value > 1 else None
            elif q.kind == "pct":
                p = q.value / 100
                if kw.role == "lat" or (latency_words and kw.role != "inc"):
                    if to and not by:
                        value = 1 / p if 0 < p < 1 else None
                    else:
                        value = 1 / (1 - p) if 0 < p < 1 else None
                else:
                    value = 1 + p if p > 0 else None
            elif q.kind == "frac" and latency_words:
                value = 1 / (1 - q.value) if by else 1 / q.value
            value = round(value, 4) if value is not None else None
        else:  # accuracy
            field_name = "max_accuracy_drop_pct"
            if q.kind in ("pct", "pts"):
                around = scan.norm[left:right]
                dropish = (
                    _DROPISH.search(around) is not None
                    or re.match(r"^\s*(?:lower|less|worse)\b", after) is not None
                    or _BY_BEFORE.search(before) is not None
                )
                ge = _GE_BEFORE.search(before) is not None
                if dropish or (q.kind == "pts" and not ge):
                    value = q.value / 100 if q.unit.startswith(("basis", "bp")) else q.value
                    value = round(value, 4)
                else:  # an absolute accuracy: not in the schema, keep it visible
                    start = min(s for s, _ in spans)
                    end = max(e for _, e in spans)
                    scan.take(start, end, understood=False)
                    return
            if value is not None and value > 100:
                value = None
        if value is None:
            return
        self.candidates.append(_Candidate(field_name, value, "bound", spans))
        for s, e in spans:
            scan.take(s, e)


def _valid(name: str, value: float) -> bool:
    """Whether ``value`` (already rounded) passes the Goal field's constraints."""
    if not math.isfinite(value):
        return False
    if name == "max_size_ratio":
        return 0 < value <= 1
    if name == "max_accuracy_drop_pct":
        return 0 <= value <= 100
    return value > 0


def _resolve(reader: _Reader, scan: _Scan) -> dict[str, float]:
    """Combine candidate values per field: bounds to the strictest, a lone bare value, else nothing."""
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
            result[name] = max(values) if name == "min_speedup" else min(values)
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


def _read_precision(scan: _Scan, allowed: set[Method]) -> str | None:
    votes: list[_Vote] = []
    for pattern, value in _PRECISION_RULES:
        for m in scan.matches(pattern):
            votes.append(_Vote(value, [m.span()]))
            scan.take(*m.span())
            if m.group("only_pre") or m.group("only_post"):
                allowed.add("quantize")
    return _single(votes, scan)


def _read_methods(scan: _Scan) -> tuple[set[Method], set[Method], list[tuple[int, int]]]:
    allowed: set[Method] = set()
    forbidden: set[Method] = set()
    spans: list[tuple[int, int]] = []

    def methods(m: re.Match[str]) -> list[Method]:
        out = [_method_of(m.group("m1"))]
        if m.group("m2"):
            out.append(_method_of(m.group("m2")))
        return out

    for pattern in (_FORBID_PRE, _FORBID_POST):
        for m in scan.matches(pattern):
            forbidden.update(methods(m))
            spans.append(m.span())
            scan.take(*m.span())
    for pattern in (_ONLY_PRE, _ONLY_POST):
        for m in scan.matches(pattern):
            allowed.update(methods(m))
            spans.append(m.span())
            scan.take(*m.span())
    permitted: set[Method] = set()
    for pattern in _PERMIT:
        for m in scan.matches(pattern):
            permitted.update(methods(m))
            scan.take(*m.span())
    if allowed:
        allowed |= permitted
    return allowed, forbidden, spans


def _read_mentions(scan: _Scan) -> set[Method]:
    """A method named without a restriction ("prune it", "try pruning") restricts nothing: it is asked for (the
    sweep then builds its candidates). Returns the methods asked for."""
    requested: set[Method] = set()
    for m in scan.matches(_MENTION):
        if _NEGATION_BEFORE.search(scan.work[: m.start()]):
            continue
        requested.add(_method_of(m.group("m1")))
        scan.take(*m.span())
    return requested


def _read_device(scan: _Scan) -> str | None:
    """The deployment device; where it is named ("run on CPU") beats a device merely mentioned."""
    found: list[tuple[re.Match[str], Device]] = []
    for pattern, value in _DEVICE_RULES:
        for m in scan.matches(pattern):
            if _TRAINED_BEFORE.search(scan.work[: m.start()]):
                scan.take(*m.span(), understood=False)
                continue
            found.append((m, value))
            scan.take(*m.span())
    found.sort(key=lambda item: item[0].start())
    votes: list[_Vote] = []
    targeted: list[_Vote] = []
    previous_end, previous_targeted = -1, False
    for m, value in found:
        vote = _Vote(value, [m.span()])
        votes.append(vote)
        negated_gpu = value == "cpu" and m.group(0).startswith(("no", "not", "without", "lack", "do"))
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
    for m in scan.matches(_AS_ADJ_AS):
        adjectives = re.findall(r"[a-z]+", m.group("adjs"))
        values = {_ADJ_OBJECTIVE[a] for a in adjectives if a in _ADJ_OBJECTIVE}
        for value in values:
            votes.append(_Vote(value, [m.span()]))
        scan.take(*m.span())
    for pattern, value in _OBJECTIVE_RULES:
        for m in scan.matches(pattern):
            votes.append(_Vote(value, [m.span()]))
            scan.take(*m.span())
    specific = [v for v in votes if v.value != "balanced"]
    if not specific:
        return "balanced"
    chosen = _single(specific, scan)
    if chosen is None:
        for v in votes:
            scan.release(v.spans)
        return "balanced"
    return chosen


def _read_zero_drop(scan: _Scan) -> bool:
    found = False
    for pattern in _ZERO_DROP_RULES:
        for m in scan.matches(pattern):
            scan.take(*m.span())
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
    value = int(_NUMBER_WORDS.get(text, text)) if (text in _NUMBER_WORDS or text.isdigit()) else None
    return value


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
                scan.take(*m.span())
        chosen = _single(votes, scan) if votes else None
        if chosen is not None:
            out[name] = int(chosen)
    return out


_MAX_WORD = 60
_MAX_UNPARSED = 200


def _unparsed(scan: _Scan) -> list[str]:
    words: list[str] = []
    for m in re.finditer(r"[a-z0-9%][\w%.+'/-]*", scan.norm):
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

    Never raises for odd text: words it could not use are listed in ``Goal.unparsed_words`` and, when no
    constraint was read, ``Goal.has_constraints`` is false.
    """
    read = _read_goal(text)
    return read if prior is None else prior.merged_with(read)


def _read_goal(text: str) -> Goal:
    scan = _Scan(_normalise(text))
    # first, so that "batch 32" and "4 threads" are never read as a quantity of another rule
    run_settings = _read_run_settings(scan)
    allowed: set[Method] = set()
    precision = _read_precision(scan, allowed)
    more_allowed, forbidden, method_spans = _read_methods(scan)
    allowed |= more_allowed
    device = _read_device(scan)
    objective = _read_objective(scan)
    reader = _Reader(scan)
    reader.run()
    values = _resolve(reader, scan)
    if _read_zero_drop(scan):
        values.setdefault("max_accuracy_drop_pct", 0.0)
    requested = _read_mentions(scan)
    if allowed & forbidden:
        scan.release(method_spans)
        both = allowed & forbidden
        allowed -= both
        forbidden -= both
    fields = {
        **values,
        **run_settings,
        "objective": objective if objective != "balanced" else None,
        "methods_allowed": sorted(allowed) or None,
        "methods_forbidden": sorted(forbidden) or None,
        "methods_requested": sorted(requested - forbidden) or None,
        "precision": precision,
        "device": device,
    }
    # only what the sentence set is passed, so Goal.model_fields_set says what a follow-up changes
    return Goal.model_validate(
        {
            **{k: v for k, v in fields.items() if v is not None},
            "unparsed_words": _unparsed(scan),
            "text": text,
        }
    )
