"""The offline brain: a deterministic planner that runs the QuantTaaS workflow without any LLM.

It implements :class:`assistant.brain.Brain` and derives everything from the conversation's messages (user texts and
tool results), so it is a pure function of the transcript: the same conversation always gives the same next step,
and it can take over a turn that an LLM started (its tool results are reused, never repeated).

A new request ("make digits-cnn under 40 KB with less than 1% accuracy loss") runs::

    list_zoo + list_models        resolve the model named in the text (or given with --model)
    register_model/register_data  for file paths in the text or given with --model/--data
    parse_goal                    the user's words, with the model's name taken out
    inspect_model + profile_layers
    run_sweep                     the agent waits for the job and streams its progress
    get_pareto_report             the measured front and the recommendation
    get_artifact (no content)     the files the answer names

and answers from the measured numbers. Follow-ups on the same model:

- a changed goal ("I can accept 2%", "under 30 KB", "fp16 only"): the server merges the new words into the goal of
  the last verdict (``parse_goal(text, prior=goal)``) and the measured candidates are re-ranked with ``recommend``;
  only when none meets the new goal is a new sweep run;
- "make it smaller / faster / more accurate": the goal gets a bound just past the current recommendation;

Goals stay the structured data the tools return: they go back to ``run_sweep`` and ``recommend`` as that object, never
as words for the server to read again, and each candidate's misses come from the server's goal check.
- "show me the fastest (smallest, most accurate) one", "why not int4?", "what did you try?", "why this one?".

A message that names a model starts a new request; one that does not refines the last one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.answers import (
    baseline_line,
    candidate_line,
    describe_goal,
    files_for,
    files_text,
    finite,
    fmt_drop,
    fmt_metric,
    fmt_ms,
    fmt_size,
    label_of,
)
from assistant.brain import BrainStep, ToolCall
from assistant.events import Outcome, ToolRecord
from assistant.transcript import Turn, split_context, turns_of

__all__ = ["OfflinePlanner", "goal_arg", "goal_with", "plan", "same_goal"]

PLANNER_NAME = "offline-planner"
PROFILE_SAMPLES = 16
PROFILE_SAMPLES_LARGE = 4
DEFAULT_MAX_DROP_PCT = 1.0  # the limit assumed when a request names a model but no goal
_CONSTRAINTS = ("max_size_mb", "max_size_ratio", "max_accuracy_drop_pct", "max_latency_ms", "min_speedup")
_METHOD_FIELDS = ("methods_allowed", "methods_forbidden", "methods_requested")
_MODEL_SUFFIXES = (".onnx", ".pt2")
_DATA_SUFFIXES = (".npz",)


class OfflinePlanner:
    """The rule-based brain (no network, no LLM)."""

    name = PLANNER_NAME

    async def next(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> BrainStep:
        return plan(messages)


def plan(messages: list[dict[str, Any]]) -> BrainStep:
    """The next step for the conversation ``messages`` (OpenAI-style). Raises nothing."""
    turns = turns_of(messages)
    if not turns:
        return BrainStep(text=_HELP, outcome="needs_input")
    return _TurnPlanner(turns).step()


# --------------------------------------------------------------------------- goals as data

# A goal is the dict the tools return (``parse_goal``'s ``goal``, a report's ``goal``): it goes back to the tools as
# that structure, never as words to read again. Merging a follow-up into it is the server's job
# (``parse_goal(text, prior=goal)``); the planner only sets fields it decides itself ("make it smaller").


def goal_arg(goal: dict[str, Any]) -> dict[str, Any]:
    """A goal from a tool result as a tool argument (``has_constraints`` is derived by the server again)."""
    return {k: v for k, v in goal.items() if k != "has_constraints"}


def goal_with(goal: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``goal`` with ``fields`` set, as a tool argument."""
    return {**goal_arg(goal), **fields}


def same_goal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two structured goals ask for the same (their limits, objective, methods, precision, device)."""

    def norm(g: dict[str, Any]) -> tuple[Any, ...]:
        limits = tuple(g.get(k) for k in _CONSTRAINTS)
        methods = tuple(tuple(sorted(g.get(k) or ())) for k in _METHOD_FIELDS)
        return (g.get("objective") or "balanced", limits, methods, g.get("precision"), g.get("device"))

    return norm(a) == norm(b)


def _words_set_something(goal: dict[str, Any]) -> bool:
    """Whether the words a goal was read from set anything: a limit, an objective, a method, a precision, a device."""
    return (
        any(goal.get(k) is not None for k in _CONSTRAINTS)
        or goal.get("objective", "balanced") != "balanced"
        or any(goal.get(k) for k in ("precision", "device", *_METHOD_FIELDS))
    )


def _joined(*texts: str) -> str:
    return "; ".join(t for t in texts if t)


# --------------------------------------------------------------------------- reading the message

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
_METHOD_TERMS: list[tuple[str, str]] = [
    (r"int4|4[- ]?bits?|four[- ]bits?|nf4|mat ?mul ?n ?bits", "int4"),
    (r"fp16|float ?16|half[- ]precision|half", "fp16"),
    (r"per[- ]?tensor", "per_tensor"),
    (r"entropy", "entropy"),
    (r"percentile", "percentile"),
    (r"dynamic", "dynamic"),
    (r"prun\w*|sparsit\w*|sparse", "prune"),
    (r"keep\w*|selective|mixed[- ]precision|fp32 layers?", "keep"),
    (r"static", "static"),
    (r"int8|8[- ]?bits?|eight[- ]bits?", "int8"),
    (r"qat|quanti[sz]ation[- ]aware", "qat"),
    (r"distill\w*", "distill"),
]
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
_HELP = (
    "I compress ONNX models (int8, fp16 and int4 quantization) and measure the result: size, accuracy against the "
    "original, latency. Tell me a model and a goal, for example: `make digits-cnn under 40 KB with less than 1% "
    "accuracy loss`. Then you can ask `I can accept 2%`, `make it smaller`, `why not int4?` or `what did you try?`."
)
_ACCEPT_CUE = re.compile(
    r"\b(?:accept\w*|tolerat\w*|allow\w*|okay|ok|fine|live with|afford|lose|losing|loss|drop|degrad\w*|sacrific\w*|give up)\b",
    re.I,
)
_BARE_PCT = re.compile(r"^\d+(?:\.\d+)?(?:%|pt|pts|pp)$")


def _method_in(text: str) -> str | None:
    for pattern, key in _METHOD_TERMS:
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w])", text, re.I):
            return key
    return None


def _name_pattern(name: str) -> re.Pattern[str]:
    body = r"[-_ ]?".join(re.escape(part) for part in re.split(r"[-_ ]+", name) if part)
    return re.compile(rf"(?<![\w./-])(?:{body})(?![\w-])", re.I)


# --------------------------------------------------------------------------- the case (the last sweep)


@dataclass
class _Case:
    """The last sweep of the conversation: its model, data, job, report and active goal."""

    model: str
    data: str | None
    job_id: str | None
    job: dict[str, Any] | None
    report: dict[str, Any] | None  # the get_pareto_report result
    goal: dict[str, Any] | None  # the goal of the last verdict on this job (report or recommend)
    recommended: str | None = None  # what the last verdict recommends
    misses: dict[str, list[dict[str, Any]]] | None = None  # the last verdict's misses (server goal check)


# --------------------------------------------------------------------------- the planner


class _TurnPlanner:
    def __init__(self, turns: list[Turn]):
        self.turns = turns
        self.turn = turns[-1]
        self.all: list[ToolRecord] = [r for t in turns for r in t.records]
        # a follow-up refers to what the user saw (earlier turns), never to this turn's own work
        self.prior: list[ToolRecord] = [r for t in turns[:-1] for r in t.records]
        self.text, self.context = split_context(self.turn.user)
        self._n = len(self.turn.records)

    # ------------------------------------------------------------ plumbing

    def _call(self, *calls: tuple[str, dict[str, Any]]) -> BrainStep:
        tc = []
        for i, (name, args) in enumerate(calls):
            tc.append(ToolCall(id=f"q{len(self.turns)}-{self._n + i}", name=name, arguments=args))
        return BrainStep(tool_calls=tc)

    def _find(self, name: str, args: dict[str, Any], *, this_turn: bool = False) -> ToolRecord | None:
        pool = self.turn.records if this_turn else self.all
        for r in reversed(pool):
            if r.name == name and r.arguments == args:
                return r
        return None

    @staticmethod
    def _answer(text: str, outcome: Outcome) -> BrainStep:
        return BrainStep(text=text, outcome=outcome)

    def _error_answer(self, what: str, r: ToolRecord) -> BrainStep:
        err = r.error or {}
        code = str(err.get("code", "error"))
        msg = str(err.get("message", r.text))
        hint = str(err.get("hint", ""))
        text = f"I could not {what}: {msg}" + (f" Hint: {hint}" if hint else "")
        outcome: Outcome = (
            "needs_input"
            if code not in ("internal_error", "technique_failed", "evaluation_failed", "job_failed")
            else "error"
        )
        return self._answer(text, outcome)

    # ------------------------------------------------------------ catalog and model resolution

    def _catalog(self) -> tuple[list[str], list[str]]:
        zoo: list[str] = []
        stored: list[str] = []
        for r in self.all:
            if not r.ok or r.result is None:
                continue
            if r.name == "list_zoo":
                zoo = [str(e.get("name")) for e in r.result.get("entries", [])]
            elif r.name == "list_models":
                stored = [str(m.get("id")) for m in r.result.get("models", [])]
                zoo = zoo or [str(z) for z in r.result.get("zoo", [])]
            elif r.name == "register_model":
                mid = str(r.result.get("model", {}).get("id", ""))
                if mid and mid not in stored:
                    stored.append(mid)
        return zoo, stored

    def _mentions(self, text: str, names: Sequence[str]) -> list[tuple[int, int, str]]:
        found: list[tuple[int, int, str]] = []
        for name in names:
            for m in _name_pattern(name).finditer(text):
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
                for m in _name_pattern(slug).finditer(text):
                    if not any(s <= m.start() < e for s, e, _ in found):
                        found.append((m.start(), m.end(), ids[0]))
        found.sort()
        return found

    # ------------------------------------------------------------ the case

    def _case(self) -> _Case | None:
        sweeps = [
            r
            for r in self.prior
            if r.name == "run_sweep" and r.ok and r.result is not None and "model" in r.arguments
        ]
        if not sweeps:
            return None
        s = sweeps[-1]
        job_id = str((s.result or {}).get("job_id", ""))
        report = None
        goal: dict[str, Any] | None = None
        recommended: str | None = None
        misses: dict[str, list[dict[str, Any]]] | None = None
        for r in self.prior:
            if not r.ok or r.result is None or r.result.get("job_id") != job_id:
                continue
            if r.name == "get_pareto_report":
                report = r.result
                body = r.result.get("report", {})
                goal, recommended, misses = body.get("goal"), body.get("recommended"), body.get("misses")
            elif r.name == "recommend":
                goal, misses = r.result.get("goal"), r.result.get("misses")
                recommended = r.result.get("recommendation", {}).get("recommended")
        if goal is None:  # no verdict yet (the sweep failed): the goal the sweep ran
            goal = (s.job or {}).get("goal_fields") or (s.result or {}).get("goal_fields")
        return _Case(
            model=str(s.arguments["model"]),
            data=s.arguments.get("data"),
            job_id=job_id or None,
            job=s.job,
            report=report,
            goal=goal,
            recommended=recommended,
            misses=misses,
        )

    # ------------------------------------------------------------ the step

    def step(self) -> BrainStep:
        # 1. what the server holds
        # the zoo is fixed; stored models change (uploads, other clients), so they are listed again each turn
        need: list[tuple[str, dict[str, Any]]] = []
        if self._find("list_zoo", {}) is None:
            need.append(("list_zoo", {}))
        if self._find("list_models", {}, this_turn=True) is None:
            need.append(("list_models", {}))
        if need:
            return self._call(*need)
        zoo, stored = self._catalog()

        # 2. files named in the text or given with --model / --data
        text = self.text
        model_paths: list[str] = []
        data_paths: list[str] = []
        for m in _PATH_RE.finditer(text):
            p = m.group("path")
            (data_paths if p.lower().endswith(_DATA_SUFFIXES) else model_paths).append(p)
        ctx_model, ctx_data = self.context.get("model"), self.context.get("data")
        if ctx_model and (ctx_model.lower().endswith(_MODEL_SUFFIXES) or os.sep in ctx_model):
            model_paths.insert(0, ctx_model)
            ctx_model = None
        if ctx_data and (ctx_data.lower().endswith(_DATA_SUFFIXES) or os.sep in ctx_data):
            data_paths.insert(0, ctx_data)
            ctx_data = None
        registered_model: str | None = None
        registered_data: str | None = None
        for paths, tool, key in (
            (model_paths, "register_model", "model"),
            (data_paths, "register_data", "data"),
        ):
            if not paths:
                continue
            args = {"path": os.path.abspath(os.path.expanduser(paths[0]))}
            r = self._find(tool, args)
            if r is None:
                return self._call((tool, args))
            if not r.ok:
                return self._error_answer(f"use the file {args['path']}", r)
            ident = str((r.result or {}).get(key, {}).get("id", ""))
            if key == "model":
                registered_model = ident
            else:
                registered_data = ident
        cleaned = _PATH_RE.sub(" the file ", text)

        # 3. the model
        mentions = self._mentions(cleaned, [*zoo, *stored])
        named = registered_model or ctx_model or (mentions[0][2] if mentions else None)
        for start, end, _ in sorted(mentions, reverse=True):
            cleaned = cleaned[:start] + "the model" + cleaned[end:]
        cleaned = re.sub(r"\s+", " ", cleaned).strip()
        data = registered_data or ctx_data
        case = self._case()
        follow_up = case is not None and (named is None or named == case.model)
        refine = case is not None and named is None

        # 4. what is asked
        has_numbers = _UNIT_NUMBER.search(cleaned) is not None
        if follow_up and case is not None and not has_numbers:
            if _TRIED.search(cleaned):
                return self._answer(self._tried(case), "answered")
            method = _method_in(cleaned)
            if _WHY_NOT.search(cleaned) and method is not None:
                return self._why_not(case, method)
            for pattern, objective in _SHOW:
                if pattern.search(cleaned):
                    return self._show(case, objective)
            for pattern, direction in _MORE:
                if pattern.search(cleaned):
                    return self._more(case, direction)
            if _EXPLAIN.search(cleaned) or (_WHY.search(cleaned) and method is None):
                return self._explain(case)
        elif not has_numbers and (
            _TRIED.search(cleaned) or (_WHY_NOT.search(cleaned) and _method_in(cleaned))
        ):
            return self._answer(
                "I have not run a sweep in this conversation yet, so there is nothing to explain. " + _HELP,
                "needs_input",
            )
        return self._goal_request(cleaned, named, data, case, refine)

    # ------------------------------------------------------------ goal requests

    def _parse(self, text: str, prior: dict[str, Any] | None = None) -> ToolRecord | BrainStep:
        """The parse_goal record for ``text`` (merged into ``prior`` on the server when given), or the step that
        calls it."""
        args: dict[str, Any] = {"text": text}
        if prior is not None:
            args["prior"] = goal_arg(prior)
        r = self._find("parse_goal", args)
        return self._call(("parse_goal", args)) if r is None else r

    def _goal_request(
        self, cleaned: str, named: str | None, data: str | None, case: _Case | None, follow_up: bool
    ) -> BrainStep:
        goal_words = cleaned[:500] if cleaned else ""
        goal: dict[str, Any] = {}
        runnable = False
        if re.search(r"[a-z0-9]", goal_words, re.I):
            got = self._parse(goal_words)
            if isinstance(got, BrainStep):
                return got
            pg = got
            if not pg.ok:
                return self._error_answer("read your goal", pg)
            goal = (pg.result or {}).get("goal", {})
            rewritten = self._accept_rewrite(goal_words, goal)
            if rewritten is not None:
                got = self._parse(rewritten)
                if isinstance(got, BrainStep):
                    return got
                pg = got
                if not pg.ok:
                    return self._error_answer("read your goal", pg)
                goal_words = rewritten
                goal = (pg.result or {}).get("goal", {})
            runnable = bool((pg.result or {}).get("runnable"))
            # a number the goal reader could not place is a limit it would silently drop: ask instead of guessing
            unread = [str(w) for w in goal.get("unparsed_words") or [] if re.search(r"\d", str(w))]
            if unread:
                desc = (pg.result or {}).get("description", "nothing")
                return self._answer(
                    f"I could not read part of your goal: {', '.join(unread)} (I read: {desc}). Please say it "
                    "another way, for example `at least 1.5x faster`, `under 5 MB` or `accuracy loss at most 1%`, "
                    "and name the model if it is not in the list of models I know.",
                    "needs_input",
                )

        if follow_up and case is not None and _words_set_something(goal):
            # the server merges the follow-up into the goal of the last sweep: what the words set replaces
            merged = self._parse(goal_words, prior=case.goal or {})
            if isinstance(merged, BrainStep):
                return merged
            if not merged.ok or merged.result is None:
                return self._error_answer("apply your follow-up to the goal", merged)
            if not merged.result.get("runnable"):
                return self._answer("That goal sets no limit I can measure. " + _HELP, "needs_input")
            return self._refine(case, dict(merged.result.get("goal") or {}), note="")

        model = named
        if model is None:
            if _words_set_something(goal) or has_words(goal_words):
                zoo, stored = self._catalog()
                choices = ", ".join([*zoo, *stored])
                if not _words_set_something(goal):
                    return self._answer(_HELP + f" Models I can use: {choices}.", "needs_input")
                return self._answer(
                    f"Which model should I optimize? Name one in your message or with --model: {choices} "
                    "(or give a path to an .onnx file).",
                    "needs_input",
                )
            return self._answer(_HELP, "needs_input")

        assumed = ""
        if not runnable:  # run_sweep would refuse it: assume the default limit, and say so
            goal = goal_with(goal, max_accuracy_drop_pct=DEFAULT_MAX_DROP_PCT)
            assumed = (
                "You gave no limit, so I assumed you can afford at most 1 point of accuracy loss and want the best "
                "balance of size, accuracy and speed. "
            )
        return self._full(model, data, goal, lead=assumed)

    def _accept_rewrite(self, text: str, goal: dict[str, Any]) -> str | None:
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

    # ------------------------------------------------------------ the full workflow

    def _full(self, model: str, data: str | None, goal: dict[str, Any], *, lead: str = "") -> BrainStep:
        inspect_args = {"model": model}
        insp = self._find("inspect_model", inspect_args)
        if insp is None:
            return self._call(("inspect_model", inspect_args))
        if not insp.ok:
            return self._error_answer(f"open the model {model}", insp)
        # the profile only explains the answer; its memory grows with the samples times the activations (a text
        # recogniser needed over 8 GB for 16 samples), so models past a megabyte get a few samples
        size = finite((insp.result or {}).get("size_bytes")) or 0.0
        samples = PROFILE_SAMPLES if size < 1e6 else PROFILE_SAMPLES_LARGE
        profile_args: dict[str, Any] = {"model": model, "samples": samples}
        if data:
            profile_args["data"] = data
        if self._find("profile_layers", profile_args) is None:
            return self._call(("profile_layers", profile_args))
        sweep_args: dict[str, Any] = {"model": model, "goal": goal_arg(goal)}
        if data:
            sweep_args["data"] = data
        sweep = self._find("run_sweep", sweep_args) or self._sweep_for(model, data, goal)
        if sweep is None or (sweep.ok and (sweep.job or {}).get("state") in ("interrupted",)):
            return self._call(("run_sweep", sweep_args))
        if not sweep.ok:
            return self._error_answer(f"start a sweep of {model}", sweep)
        job_id = str((sweep.result or {}).get("job_id", ""))
        job = sweep.job or sweep.result or {}
        state = job.get("state")
        if state in ("queued", "running"):
            p = job.get("progress") or {}
            return self._answer(
                f"The sweep of {model} (job {job_id}) is still running: {job.get('trials_finished', 0)} trial(s) "
                f"finished so far ({p.get('message', '')}). Ask me again in a moment.",
                "answered",
            )
        if state == "failed":
            err = job.get("error") or {}
            if err.get("code") == "goal_invalid":
                desc = str(job.get("goal") or describe_goal(goal))
                return self._answer(
                    f"{lead}**{model}: your goal cannot be met.** The sweep refused it: {err.get('message', '')}. "
                    f"Goal as I read it: {desc}. {err.get('hint', '')}".strip(),
                    "not_met",
                )
            return self._answer(
                f"The sweep of {model} failed: [{err.get('code', 'error')}] {err.get('message', '')} "
                f"Hint: {err.get('hint', '')}",
                "error",
            )
        report_args = {"job_id": job_id}
        rep = self._find("get_pareto_report", report_args)
        if rep is None:
            return self._call(("get_pareto_report", report_args))
        if not rep.ok:
            return self._error_answer(f"read the result of job {job_id}", rep)
        report = (rep.result or {}).get("report", {})
        step = self._fetch_files(job_id, report.get("recommended"), rep.result or {})
        if step is not None:
            return step
        return self._verdict_answer(model, rep.result or {}, lead=lead, fresh=True)

    def _sweep_for(self, model: str, data: str | None, goal: dict[str, Any]) -> ToolRecord | None:
        """A sweep of this conversation for the same model, data and goal, however the goal was given (an LLM
        that started the turn may have passed words): its goal is the one the server ran (``goal_fields``)."""
        for r in reversed(self.all):
            if r.name != "run_sweep" or not r.ok or r.arguments.get("model") != model:
                continue
            if r.arguments.get("data") != data:
                continue
            ran = (r.job or {}).get("goal_fields") or (r.result or {}).get("goal_fields")
            if isinstance(ran, dict) and same_goal(ran, goal):
                return r
        return None

    def _fetch_files(
        self, job_id: str, candidate: str | None, report_result: dict[str, Any]
    ) -> BrainStep | None:
        wanted: list[dict[str, Any]] = [{"artifact_id": f"{job_id}/report.json", "inline": False}]
        if candidate:
            rep = report_result.get("report", {})
            aid = (
                report_result.get("best_artifact")
                if candidate == rep.get("recommended")
                else (report_result.get("candidate_artifacts") or {}).get(candidate)
            )
            if aid:
                wanted.insert(0, {"artifact_id": aid, "inline": False})
        missing = [("get_artifact", a) for a in wanted if self._find("get_artifact", a) is None]
        return self._call(*missing) if missing else None

    # ------------------------------------------------------------ refinements

    def _refine(self, case: _Case, goal: dict[str, Any], *, note: str) -> BrainStep:
        """Re-rank the last sweep's candidates for ``goal`` (the structured goal); sweep again when none meets it."""
        if case.report is None or case.job_id is None:
            return self._full(case.model, case.data, goal, lead=note)
        rec_args = {"job_id": case.job_id, "goal": goal_arg(goal)}
        rec = self._find("recommend", rec_args)
        if rec is None:
            return self._call(("recommend", rec_args))
        if rec.ok and rec.result is not None and rec.result.get("recommendation", {}).get("recommended"):
            cid = rec.result["recommendation"]["recommended"]
            step = self._fetch_files(case.job_id, cid, case.report)
            if step is not None:
                return step
            n = len([c for c in case.report.get("report", {}).get("candidates", []) if c.get("metrics")])
            lead = (
                note
                + f"I re-ranked the {n} candidate{'s' if n != 1 else ''} already measured in job {case.job_id} "
                "for the new goal; nothing had to be run again. "
            )
            return self._verdict_answer(case.model, case.report, lead=lead, recommend=rec.result, fresh=False)
        lead = note + (
            f"None of the candidates measured in job {case.job_id} meets the new goal, so I ran a new sweep for it. "
            if rec.ok
            else ""
        )
        return self._full(case.model, case.data, goal, lead=lead)

    def _current_best(self, case: _Case) -> dict[str, Any] | None:
        """The candidate recommended for the active goal (or the nearest one), with metrics."""
        if case.report is None:
            return None
        cid = case.recommended
        report = case.report.get("report", {})
        if cid is None:
            nearest = report.get("nearest") or []
            cid = nearest[0].get("candidate_id") if nearest else None
        for c in report.get("candidates", []):
            if c.get("id") == cid and c.get("metrics"):
                return dict(c)
        return None

    def _own_change(self, case: _Case, **fields: Any) -> dict[str, Any]:
        """The goal of the last verdict with fields the planner sets itself from the user's words ("make it
        smaller", "show me the fastest"): every word was understood, and they join the goal's text."""
        goal = case.goal or {}
        return goal_with(
            goal, **fields, unparsed_words=[], text=_joined(str(goal.get("text") or ""), self.text)
        )

    def _more(self, case: _Case, direction: str) -> BrainStep:
        best = self._current_best(case)
        if best is None or case.report is None:
            return self._refine(case, self._own_change(case, objective=direction), note="")
        m = best["metrics"]
        change: dict[str, Any] = {"objective": direction}
        # a new bound replaces both kinds of its bound (as a follow-up merged on the server does)
        if direction == "size":
            change.update(max_size_mb=(int(m["size_bytes"]) - 1) / 1e6, max_size_ratio=None)
        elif direction == "latency" and finite(m.get("latency_ms_p50")):
            change.update(max_latency_ms=float(f"{float(m['latency_ms_p50']) * 0.99:.4g}"), min_speedup=None)
        elif direction == "accuracy":
            drop = finite(m.get("accuracy_drop_pct"))
            if drop is not None and drop <= 0:
                base = case.report.get("report", {}).get("baseline", {})
                return self._answer(
                    f"{best['id']} already loses no accuracy: {fmt_metric(str(m.get('metric_name')), m.get('metric'))} "
                    f"against {fmt_metric(str(base.get('metric_name')), base.get('metric'))} for the original "
                    f"({fmt_drop(drop)}), so it cannot be made more accurate than the original.",
                    "answered",
                )
            if drop is not None:
                change["max_accuracy_drop_pct"] = max(round(drop - 0.01, 2), 0.0)
        what = {"size": "smaller than", "latency": "faster than", "accuracy": "more accurate than"}[direction]
        note = f"You asked for a model {what} {best['id']}, so I tightened the goal accordingly. "
        return self._refine(case, self._own_change(case, **change), note=note)

    def _show(self, case: _Case, objective: str) -> BrainStep:
        goal = self._own_change(case, objective=objective)
        if case.report is None:
            return self._refine(case, goal, note="")
        rec_args = {"job_id": case.job_id, "goal": goal_arg(goal)}
        rec = self._find("recommend", rec_args)
        if rec is None:
            return self._call(("recommend", rec_args))
        if not rec.ok or rec.result is None:
            return self._error_answer("re-rank the measured candidates", rec)
        cid = rec.result.get("recommendation", {}).get("recommended")
        if cid and case.job_id:
            step2 = self._fetch_files(case.job_id, cid, case.report)
            if step2 is not None:
                return step2
        report = case.report.get("report", {})
        ok = [c for c in report.get("candidates", []) if c.get("metrics")]
        key = {"latency": "latency_ms_p50", "size": "size_bytes", "accuracy": "accuracy_drop_pct"}[objective]
        word = {"latency": "fastest", "size": "smallest", "accuracy": "most accurate"}[objective]
        measured = [c for c in ok if finite(c["metrics"].get(key)) is not None]
        extra = ""
        if measured:
            top = min(measured, key=lambda c: (float(c["metrics"][key]), c["id"]))
            if top["id"] != cid:
                extra = (
                    f"The {word} of all {len(ok)} measured candidates is "
                    f"{candidate_line(top, report.get('baseline', {}))}; it is not recommended for your goal. "
                )
        return self._verdict_answer(case.model, case.report, lead=extra, recommend=rec.result, fresh=False)

    # ------------------------------------------------------------ answers about the last sweep

    def _tried(self, case: _Case) -> str:
        lines: list[str] = []
        report = (case.report or {}).get("report")
        if report is None:
            state = (case.job or {}).get("state", "unknown")
            err = (case.job or {}).get("error") or {}
            lines.append(
                f"The last sweep of {case.model} (job {case.job_id}) ended {state}"
                + (f": {err.get('message', '')}" if err else "")
                + "; it produced no report, so no candidate was measured."
            )
        else:
            base = report.get("baseline", {})
            ok = [c for c in report.get("candidates", []) if c.get("metrics")]
            failed = [c for c in report.get("candidates", []) if not c.get("metrics")]
            wall = finite(report.get("wall_seconds"))
            lines.append(
                f"For {case.model} (job {case.job_id}) I measured {len(report.get('candidates', []))} of the "
                f"{report.get('grid_size', '?')} candidates in the search space"
                + (f" in {wall:.1f} s" if wall is not None else "")
                + f"; {baseline_line(case.model, base)}."
            )
            for c in ok:
                mark = " (recommended)" if c.get("id") == report.get("recommended") else ""
                lines.append(f"- {candidate_line(c, base)}{mark}")
            for c in failed:
                lines.append(f"- {candidate_line(c, base)}")
            skipped = report.get("skipped_reasons") or {}
            if skipped:
                groups: dict[str, list[str]] = {}
                for sid, why in skipped.items():
                    groups.setdefault(str(why), []).append(str(sid))
                lines.append(f"Not built ({len(skipped)}), because they could not win:")
                for why, ids in groups.items():
                    lines.append(f"- {', '.join(ids)}: {why}")
        counts: dict[str, int] = {}
        for r in self.all:
            counts[r.name] = counts.get(r.name, 0) + 1
        lines.append(
            "Tool calls in this conversation so far: "
            + ", ".join(f"{n} ({k})" for n, k in counts.items())
            + "."
        )
        return "\n".join(lines)

    def _why_not(self, case: _Case, method: str) -> BrainStep:
        report = (case.report or {}).get("report")
        if report is None:
            return self._answer(self._tried(case), "answered")
        base = report.get("baseline", {})
        cands = report.get("candidates", [])
        match = _CANDIDATE_MATCH.get(method)
        id_match = _ID_MATCH.get(method)
        measured = [c for c in cands if match is not None and match(c.get("recipe") or {})]
        skipped = {
            sid: why
            for sid, why in (report.get("skipped_reasons") or {}).items()
            if id_match and re.search(id_match, label_of(sid))
        }
        rec = case.recommended
        name = _METHOD_NAMES.get(method, method)
        lines: list[str] = []
        if measured:
            for c in measured:
                lines.append(f"{name} was measured: {candidate_line(c, base)}.")
                # the server's goal check, computed once for the goal of the last verdict
                misses = [str(m.get("text", "")) for m in (case.misses or {}).get(str(c.get("id")), [])]
                if c.get("id") == rec:
                    lines.append("It is the recommended candidate.")
                elif not c.get("metrics"):
                    pass
                elif misses:
                    lines.append("It misses your goal: " + "; ".join(misses) + ".")
                else:
                    lines.append(
                        "It misses none of the limits of your goal, but another candidate ranked higher for your "
                        "objective."
                    )
        if skipped:
            for sid, why in skipped.items():
                lines.append(f"{sid} was not built: {why}.")
        if not measured and not skipped:
            lines.append(f"{name} was not in the sweep's search space for {case.model}.")
            lines.append(self._not_in_grid(case, method))
        if rec:
            rc = next((c for c in cands if c.get("id") == rec), None)
            if rc is not None and not any(c.get("id") == rec for c in measured):
                lines.append(f"The recommendation is {candidate_line(rc, base)}.")
        lines.append(
            f'To measure {name} anyway, ask for it, e.g. "{_TRY_PHRASES.get(method, "try " + name)}".'
            if method in _TRY_PHRASES
            else ""
        )
        return self._answer("\n".join(line for line in lines if line), "answered")

    def _not_in_grid(self, case: _Case, method: str) -> str:
        insp = self._find("inspect_model", {"model": case.model})
        ops: list[str] = []
        if insp is not None and insp.ok and insp.result is not None:
            ops = sorted({str(la.get("op_type")) for la in insp.result.get("layers", [])})
        has = f"{case.model}'s weighted layers are {', '.join(ops)} (inspect_model)" if ops else ""
        if method == "int4":
            return (
                "QuantTaaS's int4 recipe is weight-only 4-bit quantization of MatMul layers (onnxruntime MatMulNBits); "
                + (f"{has}, so " if has else "")
                + "there is nothing for it to quantize"
                + ("." if has and "MatMul" not in ops else " in this model.")
            )
        if method in ("prune", "qat", "distill"):
            return (
                "The sweep tries quantization recipes (static and dynamic int8, fp16, int4 weight-only) only."
            )
        if method == "dynamic":
            return (
                "Dynamic int8 applies to MatMul/Gemm/Gather (and Conv) layers; "
                + (has or "this model has none of them")
                + "."
            )
        return "The sweep's goal-directed search only builds the candidates that can still win."

    def _explain(self, case: _Case) -> BrainStep:
        """Why the last answer is what it is: the tools' reason, the candidates and why the others were not built."""
        if case.report is None:
            return self._answer(self._tried(case), "answered")
        report = case.report.get("report", {})
        base = report.get("baseline", {})
        recs = [
            r
            for r in self.prior
            if r.name in ("recommend", "get_pareto_report")
            and r.result is not None
            and r.result.get("job_id") == case.job_id
        ]
        last = recs[-1].result if recs else case.report
        if last is not None and "recommendation" in last:
            reason = str(last["recommendation"].get("reason", ""))
            feasible = list(last["recommendation"].get("feasible") or [])
        else:
            reason = str(report.get("reason", ""))
            feasible = [report["recommended"]] if report.get("recommended") else []
        lines = [f"The sweep's reason (job {case.job_id}, goal: {describe_goal(case.goal or {})}): {reason}"]
        if feasible:
            lines.append(f"Candidates that meet the goal: {', '.join(feasible)}.")
        measured = [c for c in report.get("candidates", []) if c.get("metrics")]
        if measured:
            lines.append("Measured:")
            lines.extend(f"- {candidate_line(c, base)}" for c in measured)
        lines.extend(self._workflow_lines(case.model, report, explain=True)[-1:])
        return self._answer("\n".join(lines), "answered")

    # ------------------------------------------------------------ the verdict

    def _verdict_answer(
        self,
        model: str,
        report_result: dict[str, Any],
        *,
        lead: str,
        fresh: bool,
        recommend: dict[str, Any] | None = None,
        explain: bool = False,
    ) -> BrainStep:
        report = report_result.get("report", {})
        job_id = str(report_result.get("job_id", ""))
        base = report.get("baseline", {})
        cands = {c.get("id"): c for c in report.get("candidates", [])}
        if recommend is not None:
            rec_obj = recommend.get("recommendation", {})
            goal = recommend.get("goal") or {}
            cid = rec_obj.get("recommended")
            reason = str(rec_obj.get("reason", ""))
            nearest = rec_obj.get("nearest") or []
            feasible = rec_obj.get("feasible") or []
        else:
            goal = report.get("goal") or {}
            cid = report.get("recommended")
            reason = str(report.get("reason", ""))
            nearest = report.get("nearest") or []
            feasible = [cid] if cid else []
        desc = describe_goal(goal)
        has_limits = bool(goal.get("has_constraints"))
        lines: list[str] = []
        if lead:
            lines.append(lead.strip())
        if cid:
            c = cands.get(cid, {})
            if has_limits:
                lines.append(f"**{model}: goal met.** {cid} meets every limit of your goal ({desc}).")
            else:
                lines.append(f"**{model}:** I recommend {cid} (your goal: {desc}).")
            lines.append(f"- Recommended: {candidate_line(c, base)}.")
            lines.append(f"- Compared with {baseline_line(model, base)}.")
            lines.append(f"- Why: {reason}")
            if len(feasible) > 1:
                lines.append(f"- {len(feasible)} measured candidates meet the goal: {', '.join(feasible)}.")
        else:
            lines.append(f"**{model}: your goal cannot be met** ({desc}). {reason}")
            if nearest:
                lines.append("Nearest candidates:")
                for n in nearest:
                    c = cands.get(n.get("candidate_id"), {"id": n.get("candidate_id")})
                    misses = "; ".join(str(x.get("text", "")) for x in n.get("misses", []))
                    lines.append(f"- {candidate_line(c, base)}; misses: {misses}.")
            why = self._why_unmet(nearest, list(cands.values()), base)
            if why:
                lines.append(why)
            lines.append(f"For comparison, {baseline_line(model, base)}.")
        if fresh:
            lines.extend(self._workflow_lines(model, report, explain=explain))
        unparsed = [w for w in (goal.get("unparsed_words") or []) if w not in ("model", "file")]
        if unparsed:
            lines.append(f"Words I did not use from your request: {', '.join(unparsed)}.")
        files = files_for(self.all, job_id, cid or (nearest[0].get("candidate_id") if nearest else None))
        ft = files_text(files, nearest=not cid)
        if ft:
            lines.append(ft)
        outcome: Outcome = "met" if cid else "not_met"
        return self._answer("\n".join(lines), outcome)

    @staticmethod
    def _why_unmet(nearest: list[dict[str, Any]], cands: list[dict[str, Any]], base: dict[str, Any]) -> str:
        """What the measurements say about the limits the nearest candidate misses."""
        ok = [c for c in cands if c.get("metrics")]
        if not nearest or not ok:
            return ""
        missed = {str(x.get("constraint")) for x in nearest[0].get("misses", [])}
        parts: list[str] = []
        if missed & {"max_size_mb", "max_size_ratio"}:
            small = min(ok, key=lambda c: (c["metrics"]["size_bytes"], c["id"]))
            parts.append(
                f"the smallest model measured is {small['id']} at {fmt_size(small['metrics']['size_bytes'])}"
            )
        if "max_accuracy_drop_pct" in missed:
            drops = [c for c in ok if finite(c["metrics"].get("accuracy_drop_pct")) is not None]
            if drops:
                best = min(drops, key=lambda c: (c["metrics"]["accuracy_drop_pct"], c["id"]))
                parts.append(
                    f"the most accurate candidate measured is {best['id']} with "
                    f"{fmt_drop(best['metrics']['accuracy_drop_pct'])}"
                )
        if missed & {"max_latency_ms", "min_speedup", "faster_than_original"}:
            timed = [c for c in ok if finite(c["metrics"].get("latency_ms_p50")) is not None]
            if timed and finite(base.get("latency_ms_p50")) is not None:
                fast = min(timed, key=lambda c: (c["metrics"]["latency_ms_p50"], c["id"]))
                parts.append(
                    f"the fastest candidate measured is {fast['id']} at p50 "
                    f"{fmt_ms(fast['metrics']['latency_ms_p50'])} (the original: {fmt_ms(base['latency_ms_p50'])})"
                )
        if "measured" in missed:
            parts.append("the nearest candidates failed to build or run")
        return ("Why: " + "; ".join(parts) + ".") if parts else ""

    def _workflow_lines(self, model: str, report: dict[str, Any], *, explain: bool) -> list[str]:
        lines: list[str] = []
        insp = self._find("inspect_model", {"model": model})
        if insp is not None and insp.ok and insp.text:
            lines.append(f"Model: {insp.text}")
        prof = next(
            (
                r
                for r in reversed(self.all)
                if r.name == "profile_layers" and r.arguments.get("model") == model and r.ok
            ),
            None,
        )
        if prof is not None and prof.result is not None:
            layers = prof.result.get("layers") or []
            if layers and finite(layers[0].get("sqnr_db")) is not None:
                first = layers[0]
                lines.append(
                    f"Sensitivity: the layer int8 hurts most is {first.get('name')} ({first.get('op_type')}, "
                    f"SQNR {float(first['sqnr_db']):.1f} dB; lower means more error)."
                )
        skipped = report.get("skipped_reasons") or {}
        wall = finite(report.get("wall_seconds"))
        search = (
            f"Search: {report.get('evaluations', 0)} of {report.get('grid_size', 0)} candidates measured"
            + (f" in {wall:.1f} s" if wall is not None else "")
            + f", {len(report.get('front') or [])} on the Pareto front"
        )
        failed = [c for c in report.get("candidates", []) if not c.get("metrics")]
        if failed:
            search += f", {len(failed)} failed ({', '.join(str(c.get('id')) for c in failed)})"
        if skipped:
            groups: dict[str, list[str]] = {}
            for sid, why in skipped.items():
                groups.setdefault(str(why), []).append(str(sid))
            shown = [
                f"{', '.join(ids)}: {why}" for why, ids in list(groups.items())[: 4 if not explain else 10]
            ]
            search += f"; {len(skipped)} not built because they could not win (" + "; ".join(shown) + ")"
        lines.append(search + ".")
        return lines


def has_words(text: str) -> bool:
    return re.search(r"[a-z]{2,}", text, re.I) is not None


# --------------------------------------------------------------------------- methods in "why not X?"


def _kind(r: dict[str, Any]) -> str:
    return str(r.get("kind", ""))


_CANDIDATE_MATCH: dict[str, Any] = {
    "int4": lambda r: _kind(r) == "int4_weight_only",
    "fp16": lambda r: _kind(r) == "fp16",
    "dynamic": lambda r: _kind(r) == "dynamic_int8",
    "static": lambda r: _kind(r) == "static_int8",
    "int8": lambda r: _kind(r) in ("static_int8", "dynamic_int8", "qat_int8"),
    "per_tensor": lambda r: _kind(r) == "static_int8" and not r.get("per_channel", True),
    "entropy": lambda r: r.get("calibration") == "entropy",
    "percentile": lambda r: r.get("calibration") == "percentile",
    "prune": lambda r: _kind(r).startswith("prune"),
    "keep": lambda r: bool(r.get("keep_fp32")),
    "qat": lambda r: _kind(r) == "qat_int8",
    "distill": lambda r: False,
}
_ID_MATCH: dict[str, str] = {
    "int4": r"int4",
    "fp16": r"fp16",
    "dynamic": r"dynamic_int8",
    "static": r"static_int8",
    "int8": r"int8",
    "per_tensor": r"-pt-",
    "entropy": r"entropy",
    "percentile": r"percentile",
    "prune": r"prune",
    "keep": r"keep\d",
    "qat": r"qat",
}
_METHOD_NAMES: dict[str, str] = {
    "int4": "int4 (weight-only)",
    "fp16": "fp16",
    "dynamic": "dynamic int8",
    "static": "static int8",
    "int8": "int8",
    "per_tensor": "per-tensor static int8",
    "entropy": "entropy calibration",
    "percentile": "percentile calibration",
    "prune": "pruning",
    "keep": "keeping sensitive layers in fp32",
    "qat": "quantization-aware training",
    "distill": "distillation",
}
_TRY_PHRASES: dict[str, str] = {"int4": "int4 only", "fp16": "fp16 only", "int8": "int8 only"}
