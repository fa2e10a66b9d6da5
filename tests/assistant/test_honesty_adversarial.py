"""The honesty check under attack: false numbers injected into the planner's real answers over a recorded
12-candidate conversation on digits-cnn (``fixtures/sweep12.json``, real MCP tool records; rebuilt by
``fixtures/build_sweep12.py``). The check must flag nearly every false number and no true one."""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from assistant.events import ToolRecord
from assistant.honesty import check_answer, extract_quantities
from assistant.planner import plan
from assistant.transcript import tool_message

FIXTURE = Path(__file__).with_name("fixtures") / "sweep12.json"
REQUEST = "make digits-cnn under 40 KB with at most 1% accuracy loss, no pruning"
QUESTIONS = ("what did you try?", "why this one?", "why not int4?")


def _records() -> list[ToolRecord]:
    return [ToolRecord.model_validate(r) for r in json.loads(FIXTURE.read_text())]


def _messages(turns: list[tuple[str, list[ToolRecord], str | None]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for user, records, answer in turns:
        messages.append({"role": "user", "content": user})
        for r in records:
            call = {"id": r.call_id, "type": "function", "function": {"name": r.name, "arguments": "{}"}}
            call["function"]["arguments"] = json.dumps(r.arguments)
            messages += [{"role": "assistant", "content": None, "tool_calls": [call]}, tool_message(r)]
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    return messages


def _replay(
    done: list[tuple[str, list[ToolRecord], str | None]], user: str, pool: list[ToolRecord]
) -> tuple[str, list[ToolRecord]]:
    """The planner's turn for ``user``, each tool call it asks for answered by the recorded result of that tool
    (the recorded conversation made the same calls; its arguments are the planner's)."""
    got: list[ToolRecord] = []
    for _ in range(40):
        step = plan(_messages([*done, (user, got, None)]))
        if not step.tool_calls:
            return step.text or "", got
        for c in step.tool_calls:
            same = [r for r in pool if r.name == c.name and r.arguments == c.arguments]
            r = (same or [r for r in pool if r.name == c.name])[0]
            pool.remove(r)
            got.append(r.model_copy(update={"arguments": c.arguments, "call_id": f"{c.name}-{len(got)}"}))
    raise AssertionError("the planner did not finish")


@cache
def _conversation() -> tuple[list[tuple[str, str]], list[ToolRecord], list[str]]:
    """The answers (user, text), all tool records and the user's messages."""
    recorded = _records()
    text, records = _replay([], REQUEST, list(recorded))
    done: list[tuple[str, list[ToolRecord], str | None]] = [(REQUEST, records, text)]
    answers = [(REQUEST, text)]
    every = list(records)
    for q in QUESTIONS:
        pool = [r for r in recorded if r.name == "list_models"]
        text, more = _replay(done, q, pool)
        done.append((q, more, text))
        answers.append((q, text))
        every += more
    return answers, every, [REQUEST, *QUESTIONS]


def test_sweep12_fixture_holds_a_12_candidate_report() -> None:
    report = next(r for r in _records() if r.name == "get_pareto_report").result
    assert report is not None
    measured = [c for c in report["report"]["candidates"] if c.get("metrics")]
    assert len(measured) == 12


def test_honesty_flags_no_true_number_in_the_planners_real_answers() -> None:
    answers, records, users = _conversation()
    total = 0
    for user, text in answers:
        report = check_answer(text, records, users)
        assert report.unbacked == [], (user, report.unbacked)
        assert not report.false_goal_claim, user
        total += len(report.claims)
    assert total >= 150  # the answers are full of numbers: sizes, ratios, accuracies, drops, latencies


def _false_value(value: float, decimals: int, rng: random.Random) -> str:
    """A number at least 25% away from ``value`` (or, for 0, between 0.3 and 3), written with ``decimals``."""
    if value == 0:
        new = rng.uniform(0.3, 3.0)
    else:
        factor = rng.uniform(1.25, 2.5) if rng.random() < 0.5 else rng.uniform(0.35, 0.8)
        new = value * factor
    out = f"{new:.{decimals}f}"
    if float(out) == value or (decimals == 0 and float(out) == 0):
        out = f"{value + 10**-decimals * rng.randint(3, 9):.{decimals}f}"
    return out


def test_honesty_flags_at_least_95_of_100_false_numbers_injected_into_real_answers() -> None:
    answers, records, users = _conversation()
    rng = random.Random(14)
    slots: list[tuple[int, int, int, str]] = []  # answer index, start, end, the number as written
    for i, (_, text) in enumerate(answers):
        for q in extract_quantities(text):
            m = re.match(r"-?[\d,]+(?:\.\d+)?", q.text)
            if m is not None:
                slots.append((i, q.start, q.start + m.end(), m.group(0)))
    assert len(slots) >= 150
    flagged = 0
    missed: list[str] = []
    for start_slot in rng.sample(range(len(slots)), 100):
        i, start, end, written = slots[start_slot]
        text = answers[i][1]
        decimals = len(written.split(".", 1)[1]) if "." in written else 0
        false = _false_value(float(written.replace(",", "")), decimals, rng)
        injected = text[:start] + false + text[end:]
        report = check_answer(injected, records, users)
        target = next(q for q in extract_quantities(injected) if q.start == start)
        if target.text in report.unbacked:
            flagged += 1
        else:
            line = injected[injected.rfind("\n", 0, start) + 1 : injected.find("\n", start)]
            missed.append(f"{written} -> {target.text}: {line[:160]}")
        # the true numbers around it stay backed
        assert set(report.unbacked) <= {target.text}, (report.unbacked, target.text)
    assert flagged >= 95, missed


@pytest.mark.parametrize("percent", range(1, 100))
def test_honesty_refuses_a_random_size_change_of_the_named_candidate(percent: int) -> None:
    """ "c05 is N% smaller" is true only for the measured change (66.5%: 35.3 KB of 105 KB)."""
    _, records, users = _conversation()
    report = check_answer(
        f"c05-static_int8-pt-minmax is {percent}% smaller than the original.", records, users
    )
    assert report.unbacked == ([] if percent in (66, 67) else [f"{percent}%"])


@pytest.mark.parametrize("tenths", range(1, 31))
def test_honesty_refuses_an_accuracy_drop_the_named_candidate_does_not_have(tenths: int) -> None:
    """c05 lost nothing: any drop between 0.1 and 3.0 pt is false, whatever the other candidates measured."""
    _, records, users = _conversation()
    drop = f"{tenths / 10:.1f} pt"
    report = check_answer(f"c05-static_int8-pt-minmax costs a drop of {drop}.", records, users)
    assert report.unbacked == [drop]


def test_honesty_counts_a_met_claim_with_no_in_it_as_a_met_claim() -> None:
    """ "with no accuracy loss" does not negate "meets your goal": the claim is checked against the verdict."""
    _, records, users = _conversation()
    c01 = "c01-dynamic_int8-Gemm meets your goal with no accuracy loss."  # 99.6 KB: over the 40 KB limit
    report = check_answer(c01, records, users)
    assert report.claims_goal_met and report.false_goal_claim
    assert (
        check_answer("c01-dynamic_int8-Gemm does not meet your goal.", records, users).false_goal_claim
        is False
    )


def test_honesty_takes_the_users_numbers_as_limits_not_as_evidence() -> None:
    _, records, users = _conversation()
    as_claim = check_answer("c05-static_int8-pt-minmax is 40 KB.", records, users)
    as_limit = check_answer("c05-static_int8-pt-minmax is under the 40 KB limit.", records, users)
    assert as_claim.unbacked == ["40 KB"] and as_limit.unbacked == []
