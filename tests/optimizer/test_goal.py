"""Tests of the deterministic English-to-Goal parser (optimizer.goals.parse)."""

import math
from typing import Any

import pytest
from pydantic import ValidationError
from test_goal_kinds import assert_readings_honest

from optimizer.goals.parse import parse_goal
from optimizer.types import CONSTRAINT_FIELDS, Goal

# Fields that keep their default unless a case says otherwise.
_DEFAULTS: dict[str, Any] = {
    "max_size_mb": None,
    "max_size_ratio": None,
    "min_size_reduction_mb": None,
    "max_memory_mb": None,
    "max_accuracy_drop_pct": None,
    "min_metric": None,
    "min_metric_ratio": None,
    "max_latency_ms": None,
    "min_speedup": None,
    "max_latency_ratio": None,
    "max_latency_increase_ms": None,
    "min_latency_reduction_ms": None,
    "objective": "balanced",
    "methods_allowed": None,
    "methods_forbidden": None,
    "methods_fallback": None,
    "precision": None,
    "precision_forbidden": None,
    "keep_float_layers": None,
    "device": None,
    "threads": None,
    "batch_size": None,
}

# sentence -> the fields it must set; every other field of _DEFAULTS must keep its default.
CASES: list[tuple[str, dict[str, Any]]] = [
    # --- absolute size -------------------------------------------------------------------------------
    ("under 5 MB, <1% accuracy loss", {"max_size_mb": 5.0, "max_accuracy_drop_pct": 1.0}),
    ("fit in 5MB", {"max_size_mb": 5.0}),
    ("smaller than 500 KB", {"max_size_mb": 0.5}),
    ("at most 2.5 megabytes", {"max_size_mb": 2.5}),
    ("the model must be below 12 MiB", {"max_size_mb": 12.582912}),
    ("size budget 300kb", {"max_size_mb": 0.3}),
    ("no bigger than 1 GB", {"max_size_mb": 1000.0}),
    ("max 40 KB", {"max_size_mb": 0.04}),
    ("≤ 5 MB", {"max_size_mb": 5.0}),
    ("5 MB or less", {"max_size_mb": 5.0}),
    (
        "make it under 40 KB with less than 1% accuracy loss",
        {"max_size_mb": 0.04, "max_accuracy_drop_pct": 1.0},
    ),
    ("the only hard limit is 12MB", {"max_size_mb": 12.0, "unparsed_words": []}),
    ("keep it under 1 gig", {"max_size_mb": 1000.0}),
    ("model size should not exceed 250 MB", {"max_size_mb": 250.0}),
    ("size: 4 MB", {"max_size_mb": 4.0}),
    # RAM is memory, not the file on disk (issue 14: two sizes were merged into one)
    ("model must fit in 512 MB of RAM", {"max_memory_mb": 512.0}),
    ("500000 bytes", {"max_size_mb": 0.5}),
    ("2 GiB at most", {"max_size_mb": 2147.483648}),
    # --- the current size or a wish is not a bound ----------------------------------------------------
    (
        "The model is 40 MB now; get it under 10 MB.",
        {"max_size_mb": 10.0, "unparsed_words": ["40", "mb", "now"]},
    ),
    ("shrink from 40MB to 10MB", {"max_size_mb": 10.0, "unparsed_words": ["40mb"]}),
    ("it's 400MB, I need 100MB", {"max_size_mb": 100.0, "unparsed_words": ["400mb"]}),
    ("under 5 MB, ideally under 3 MB", {"max_size_mb": 5.0, "unparsed_words": ["ideally", "3", "mb"]}),
    ("5 MB or 10 MB", {"unparsed_words": ["5", "mb", "10"]}),
    (
        "the size is 40 MB, make it 4x smaller",
        {"max_size_ratio": 0.25, "unparsed_words": ["size", "40", "mb"]},
    ),
    ("the size limit is 5 MB", {"max_size_mb": 5.0, "unparsed_words": []}),
    ("latency target is 3 ms", {"max_latency_ms": 3.0, "unparsed_words": []}),
    ("cap the size at 64 MB", {"max_size_mb": 64.0}),
    ("don't make it bigger than 20 MB", {"max_size_mb": 20.0}),
    # --- latency ---------------------------------------------------------------------------------------
    ("latency under 10ms", {"max_latency_ms": 10.0}),
    ("p50 below 3 ms", {"max_latency_ms": 3.0}),
    ("inference in less than 0.2 seconds", {"max_latency_ms": 200.0}),
    ("latency below 800 microseconds", {"max_latency_ms": 0.8}),
    ("800us latency", {"max_latency_ms": 0.8}),
    ("respond within 0.5 s", {"max_latency_ms": 500.0}),
    ("sub-10ms latency on CPU", {"max_latency_ms": 10.0, "device": "cpu"}),
    ("faster than 10 ms", {"max_latency_ms": 10.0}),
    ("in under a second", {"max_latency_ms": 1000.0}),
    ("under half a second", {"max_latency_ms": 500.0}),
    ("runs at 30 fps", {"unparsed_words": ["30", "fps"]}),
    ("latency: 15 ms", {"max_latency_ms": 15.0}),
    (
        "It currently takes 20 ms per image, I need under 5 ms",
        {"max_latency_ms": 5.0, "unparsed_words": ["currently", "takes", "20", "ms", "per", "image"]},
    ),
    ("p95 latency under 10 ms", {"unparsed_words": ["p95", "latency", "10", "ms"]}),
    ("p99 below 20ms and p50 below 5ms", {"max_latency_ms": 5.0, "unparsed_words": ["p99", "20ms"]}),
    # --- speedup ---------------------------------------------------------------------------------------
    ("twice as fast, accuracy within half a point", {"min_speedup": 2.0, "max_accuracy_drop_pct": 0.5}),
    ("2x faster", {"min_speedup": 2.0}),
    ("speed it up 3x", {"min_speedup": 3.0}),
    ("3 times faster", {"min_speedup": 3.0}),
    ("at least 1.5 times faster", {"min_speedup": 1.5}),
    ("at least 50% faster", {"min_speedup": 1.5}),
    ("cut latency in half", {"min_speedup": 2.0}),
    ("halve the latency", {"min_speedup": 2.0}),
    ("reduce latency by 50%", {"min_speedup": 2.0}),
    ("reduce inference time by 75%", {"min_speedup": 4.0}),
    ("30% lower latency", {"min_speedup": 1.4286}),
    ("speedup of at least 2", {"min_speedup": 2.0}),
    ("one and a half times faster", {"min_speedup": 1.5}),
    ("double the throughput", {"min_speedup": 2.0}),
    ("3-fold speedup", {"min_speedup": 3.0}),
    ("3x reduction in latency", {"min_speedup": 3.0}),
    # --- size ratio ------------------------------------------------------------------------------------
    ("a quarter of its size", {"max_size_ratio": 0.25}),
    ("75% smaller", {"max_size_ratio": 0.25}),
    ("5% smaller", {"max_size_ratio": 0.95}),
    ("reduce the size by 4x", {"max_size_ratio": 0.25}),
    ("3x smaller", {"max_size_ratio": 0.3333}),
    ("shrink it by at least 60%", {"max_size_ratio": 0.4}),
    ("compress 4x", {"max_size_ratio": 0.25}),
    ("at least 8x compression", {"max_size_ratio": 0.125}),
    ("half the size", {"max_size_ratio": 0.5}),
    ("at least 4x compression", {"max_size_ratio": 0.25}),
    ("reduce the size to 25%", {"max_size_ratio": 0.25}),
    ("at most 30% of the original size", {"max_size_ratio": 0.3}),
    ("1/4 of the size", {"max_size_ratio": 0.25}),
    ("two thirds the size", {"max_size_ratio": 0.6667}),
    ("reduce the size by a quarter", {"max_size_ratio": 0.75}),
    ("cut the size in half", {"max_size_ratio": 0.5}),
    ("compression ratio of 8", {"max_size_ratio": 0.125}),
    ("8:1 compression", {"max_size_ratio": 0.125}),
    ("an order of magnitude smaller", {"max_size_ratio": 0.1}),
    ("ten times smaller", {"max_size_ratio": 0.1}),
    ("a 60% size reduction", {"max_size_ratio": 0.4}),
    ("gpt2 with 50% less memory", {"max_size_ratio": 0.5, "unparsed_words": ["gpt2"]}),
    ("Model should be smaller than 25% of the original", {"max_size_ratio": 0.25}),
    ("shrink it to 1/10th", {"max_size_ratio": 0.1}),
    ("a model one fifth the size", {"max_size_ratio": 0.2}),
    # --- accuracy drop ---------------------------------------------------------------------------------
    ("<1% accuracy loss", {"max_accuracy_drop_pct": 1.0}),
    ("accuracy drop under 0.5 points", {"max_accuracy_drop_pct": 0.5}),
    ("lose no more than 2% accuracy", {"max_accuracy_drop_pct": 2.0}),
    ("keep accuracy within 1 point", {"max_accuracy_drop_pct": 1.0}),
    ("don't lose more than half a percent", {"max_accuracy_drop_pct": 0.5}),
    ("accuracy loss below 1.5 pp", {"max_accuracy_drop_pct": 1.5}),
    ("max 1% drop", {"max_accuracy_drop_pct": 1.0}),
    ("lose 1%", {"max_accuracy_drop_pct": 1.0}),
    ("lose at most 0.3%", {"max_accuracy_drop_pct": 0.3}),
    ("accuracy within 2 points", {"max_accuracy_drop_pct": 2.0}),
    ("within 0.2 pp", {"max_accuracy_drop_pct": 0.2}),
    ("accuracy can drop by at most 0.5%", {"max_accuracy_drop_pct": 0.5}),
    ("accuracy should not drop by more than 1 point", {"max_accuracy_drop_pct": 1.0}),
    ("Accuracy degradation of less than 0.3%", {"max_accuracy_drop_pct": 0.3}),
    ("no more than 1.5 points worse", {"max_accuracy_drop_pct": 1.5}),
    ("50 basis points of accuracy loss at most", {"max_accuracy_drop_pct": 0.5}),
    ("top-1 drop below 0.5 pp", {"max_accuracy_drop_pct": 0.5}),
    ("no accuracy loss", {"max_accuracy_drop_pct": 0.0}),
    ("without losing accuracy", {"max_accuracy_drop_pct": 0.0}),
    ("can't lose accuracy", {"max_accuracy_drop_pct": 0.0}),
    ("accuracy must not drop", {"max_accuracy_drop_pct": 0.0}),
    ("lossless compression", {"max_accuracy_drop_pct": 0.0}),
    ("it should be at least as accurate as the original", {"max_accuracy_drop_pct": 0.0}),
    ("keep the f1 score within 0.5 points", {"max_accuracy_drop_pct": 0.5}),
    ("accuracy drop of 0.5 or less", {"unparsed_words": ["accuracy", "drop", "0.5"]}),
    # --- accuracy floors: absolute on the metric's scale, or relative to the original (issue 14) -------
    ("digits-cnn with accuracy of at least 98%", {"min_metric": 0.98, "unparsed_words": ["digits-cnn"]}),
    ("accuracy must stay above 98%", {"min_metric": 0.98, "unparsed_words": []}),
    ("keep 99% of the original accuracy", {"min_metric_ratio": 0.99, "unparsed_words": []}),
    # --- objective -------------------------------------------------------------------------------------
    ("as small as possible", {"objective": "size"}),
    ("smallest model that keeps accuracy", {"objective": "size", "max_accuracy_drop_pct": 0.0}),
    ("as fast as possible", {"objective": "latency"}),
    ("minimise latency", {"objective": "latency"}),
    ("lowest latency", {"objective": "latency"}),
    ("keep accuracy as high as possible", {"objective": "accuracy"}),
    ("best accuracy", {"objective": "accuracy"}),
    ("I care most about accuracy", {"objective": "accuracy"}),
    ("accuracy is more important than size", {"objective": "accuracy", "unparsed_words": []}),
    ("smallest accuracy drop", {"objective": "accuracy"}),
    ("fastest model under 5MB", {"objective": "latency", "max_size_mb": 5.0}),
    ("as small and as fast as possible", {"unparsed_words": ["small", "fast", "possible"]}),
    # --- methods and precision -------------------------------------------------------------------------
    (
        "int8 only, no pruning",
        {"precision": "int8", "methods_allowed": ["quantize"], "methods_forbidden": ["prune"]},
    ),
    ("don't prune", {"methods_forbidden": ["prune"]}),
    ("only quantization", {"methods_allowed": ["quantize"]}),
    ("pruning is fine", {"unparsed_words": []}),
    ("prune only, no quantization", {"methods_allowed": ["prune"], "methods_forbidden": ["quantize"]}),
    ("without quantizing", {"methods_forbidden": ["quantize"]}),
    ("use 4-bit weights", {"precision": "int4"}),
    ("fp16 on GPU", {"precision": "fp16", "device": "gpu"}),
    ("half precision on cuda", {"precision": "fp16", "device": "gpu"}),
    ("int8 on cpu", {"precision": "int8", "device": "cpu"}),
    ("quantize to int8 or int4", {"unparsed_words": ["quantize", "int8", "int4"]}),
    ("bf16 please", {"unparsed_words": ["bf16"]}),
    (
        "prune 30% of channels then quantize to int8",
        {"precision": "int8", "unparsed_words": ["30%", "channels"]},
    ),
    (
        "use 8-bit activations and 4-bit weights",
        {"unparsed_words": ["8-bit", "activations", "4-bit", "weights"]},
    ),
    ("don't prune more than 50% of the weights", {"unparsed_words": ["prune", "50%", "weights"]}),
    # --- device ----------------------------------------------------------------------------------------
    ("I don't have a GPU", {"device": "cpu"}),
    ("I need a 4-bit version for the edge", {"precision": "int4", "device": "cpu"}),
    ("trained on GPU, deploy on a Raspberry Pi 4", {"device": "cpu", "unparsed_words": ["trained", "gpu"]}),
    ("run on cpu or gpu", {"unparsed_words": ["cpu", "gpu"]}),
    ("I have 2 GPUs but want it to run on CPU", {"device": "cpu", "unparsed_words": ["2", "gpus"]}),
    ("targeting edge devices like phones", {"device": "cpu", "unparsed_words": []}),
    ("fp16 on a GPU and int8 on CPU", {"unparsed_words": ["fp16", "gpu", "int8", "cpu"]}),
    # --- model names carry numbers that are not constraints --------------------------------------------
    ("compress distilbert to under 100 MB", {"max_size_mb": 100.0, "unparsed_words": ["distilbert"]}),
    ("resnet50 under 20 MB", {"max_size_mb": 20.0, "unparsed_words": ["resnet50"]}),
    ("minilm-l6 twice as fast", {"min_speedup": 2.0, "unparsed_words": ["minilm-l6"]}),
    (
        "mobilenet_v2 on a phone, 4x smaller",
        {"max_size_ratio": 0.25, "device": "cpu", "unparsed_words": ["mobilenet_v2"]},
    ),
    ("llama-3-8b under 5 GB", {"max_size_mb": 5000.0, "unparsed_words": ["llama-3-8b"]}),
    ("t5-small in 60MB", {"max_size_mb": 60.0, "unparsed_words": ["t5-small"]}),
    (
        "efficientnet-b0 at 2ms p50 on gpu",
        {"max_latency_ms": 2.0, "device": "gpu", "unparsed_words": ["efficientnet-b0"]},
    ),
    ("batch size 32, under 10 MB", {"max_size_mb": 10.0, "batch_size": 32, "unparsed_words": []}),
    # --- several constraints at once -------------------------------------------------------------------
    (
        "Make it 4x smaller and 2x faster with under 1% accuracy drop",
        {"max_size_ratio": 0.25, "min_speedup": 2.0, "max_accuracy_drop_pct": 1.0},
    ),
    (
        "shrink it by 60% while losing at most 1% accuracy",
        {"max_size_ratio": 0.4, "max_accuracy_drop_pct": 1.0},
    ),
    (
        "accuracy loss < 1%, size < 10MB, latency < 5ms",
        {"max_accuracy_drop_pct": 1.0, "max_size_mb": 10.0, "max_latency_ms": 5.0},
    ),
    ("Goal: <= 10 MB & >= 2x speedup", {"max_size_mb": 10.0, "min_speedup": 2.0}),
    (
        "Please quantize my distilbert model, it needs to be under 100MB and not lose more than 1% accuracy",
        {"max_size_mb": 100.0, "max_accuracy_drop_pct": 1.0, "unparsed_words": ["distilbert"]},
    ),
    (
        "Can you make resnet18 run 2x faster on CPU? Accuracy drop up to 0.5 percentage points is OK",
        {"min_speedup": 2.0, "device": "cpu", "max_accuracy_drop_pct": 0.5, "unparsed_words": ["resnet18"]},
    ),
    (
        "compress it as much as you can without losing more than 1 point of accuracy",
        {"objective": "size", "max_accuracy_drop_pct": 1.0, "unparsed_words": []},
    ),
    (
        "the model should weigh no more than 1.5GB and respond in under 300 ms",
        {"max_size_mb": 1500.0, "max_latency_ms": 300.0},
    ),
    ("2 ms latency target with no accuracy drop", {"max_latency_ms": 2.0, "max_accuracy_drop_pct": 0.0}),
    (
        "The original model is 98 MB and 45 ms on CPU. Aim for under 25 MB and under 15 ms with at most "
        "1 point accuracy drop.",
        {
            "max_size_mb": 25.0,
            "max_latency_ms": 15.0,
            "max_accuracy_drop_pct": 1.0,
            "device": "cpu",
            "unparsed_words": ["98", "mb", "45", "ms"],
        },
    ),
    (
        "Our SLA is 50ms at p50 and 120ms at p99",
        {"max_latency_ms": 50.0, "unparsed_words": ["120ms", "p99"]},
    ),
    (
        "I only want pruning, 3x compression, accuracy within 1%",
        {"methods_allowed": ["prune"], "max_size_ratio": 0.3333, "max_accuracy_drop_pct": 1.0},
    ),
    (
        "reduce the model size by at least 70% and the latency by at least 30%",
        {"max_size_ratio": 0.3, "min_speedup": 1.4286},
    ),
    ("tolerate a 1-point drop", {"max_accuracy_drop_pct": 1.0}),
    # --- follow-ups in a conversation ----------------------------------------------------------------
    ("make it smaller", {"unparsed_words": ["smaller"]}),
    ("what about int4?", {"precision": "int4", "unparsed_words": []}),
    ("and under 1ms please", {"max_latency_ms": 1.0, "unparsed_words": []}),
    ("Same, but allow 2% accuracy loss", {"max_accuracy_drop_pct": 2.0}),
]

# Sentences written after the rules were done, as a user would write them; each passed (or a rule was
# generalised) without any rule written for the sentence itself.
FRESH_CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "Could you get this BERT model below 50 megs without hurting accuracy much?",
        {"max_size_mb": 50.0, "unparsed_words": ["bert", "hurting", "accuracy"]},
    ),
    (
        "We're shipping to Android phones; the APK budget for the model is 8 MB.",
        {"max_size_mb": 8.0, "device": "cpu", "unparsed_words": ["apk"]},
    ),
    (
        "Needs to answer within 30 milliseconds on a single CPU core.",
        {"max_latency_ms": 30.0, "device": "cpu"},
    ),
    (
        "Shave off at least half of the latency while keeping the F1 drop below 0.5 points.",
        {"min_speedup": 2.0, "max_accuracy_drop_pct": 0.5},
    ),
    (
        "I'm fine with 2 points of accuracy loss if the model becomes 4 times smaller.",
        {"max_accuracy_drop_pct": 2.0, "max_size_ratio": 0.25},
    ),
    (
        "Target 3x lower p50 latency on our A100s, fp16 is OK.",
        {"min_speedup": 3.0, "precision": "fp16", "device": "gpu"},
    ),
    (
        "Please compress mobilenet_v3_small for a microcontroller: under 256 KiB, int8, no pruning.",
        {
            "max_size_mb": 0.262144,
            "precision": "int8",
            "methods_forbidden": ["prune"],
            "device": "cpu",
            "unparsed_words": ["mobilenet_v3_small"],
        },
    ),
    (
        "What's the smallest int4 version of whisper-base that still loses under 1 WER point?",
        {"objective": "size", "precision": "int4", "max_accuracy_drop_pct": 1.0},
    ),
    (
        "Make it lighter — 70% reduction in size is the goal, accuracy hit no more than 1%.",
        {"max_size_ratio": 0.3, "max_accuracy_drop_pct": 1.0},
    ),
    (
        "Quantization only please, keep top-1 within 0.3 points of the fp32 baseline.",
        {"methods_allowed": ["quantize"], "max_accuracy_drop_pct": 0.3},
    ),
    (
        "Aim for 1.8x speedup on x86 with at most a 1 pp drop.",
        {"min_speedup": 1.8, "device": "cpu", "max_accuracy_drop_pct": 1.0},
    ),
    (
        "Latency should go from 12ms to under 4ms on GPU.",
        {"max_latency_ms": 4.0, "device": "gpu", "unparsed_words": ["12ms"]},
    ),
    ("Size doesn't matter much, just make it as fast as you can.", {"objective": "latency"}),
    (
        "It must be no larger than 0.5 GB and run at least 40% faster.",
        {"max_size_mb": 500.0, "min_speedup": 1.4},
    ),
    (
        "Distill distilbert? No — just prune it, 50% sparsity, keep accuracy loss under 1%.",
        {
            "methods_allowed": ["prune"],
            "max_accuracy_drop_pct": 1.0,
            "unparsed_words": ["distill", "distilbert", "50%"],
        },
    ),
]


def _check(text: str, expected: dict[str, Any]) -> None:
    goal = parse_goal(text)
    for name, default in _DEFAULTS.items():
        want = expected.get(name, default)
        got = getattr(goal, name)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-6), f"{name} of {text!r}: {got!r} != {want!r}"
        else:
            assert got == want, f"{name} of {text!r}: {got!r} != {want!r}"
    if "unparsed_words" in expected:
        assert goal.unparsed_words == expected["unparsed_words"]
    assert goal.has_constraints == any(getattr(goal, name) is not None for name in CONSTRAINT_FIELDS)
    assert goal.text == text


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[text for text, _ in CASES])
def test_parse_goal_reads_sentence(text: str, expected: dict[str, Any]) -> None:
    _check(text, expected)


@pytest.mark.parametrize(("text", "expected"), FRESH_CASES, ids=[text for text, _ in FRESH_CASES])
def test_parse_goal_reads_unseen_sentence(text: str, expected: dict[str, Any]) -> None:
    _check(text, expected)


@pytest.mark.parametrize("text", [text for text, _ in CASES + FRESH_CASES])
def test_parse_goal_readings_account_for_every_word(text: str) -> None:
    """What was read and what was not cover the sentence, and each field set has the words that set it."""
    assert_readings_honest(text)


def test_parse_goal_has_enough_sentences() -> None:
    assert len(CASES) + len(FRESH_CASES) >= 70
    assert len({text for text, _ in CASES + FRESH_CASES}) == len(CASES) + len(FRESH_CASES)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", ".,;!?"])
def test_parse_goal_empty_text_has_no_constraints(text: str) -> None:
    goal = parse_goal(text)
    assert goal.has_constraints is False
    assert goal.constraint_names() == []
    assert goal.unparsed_words == []
    assert goal.objective == "balanced"
    assert goal.text == text


def test_parse_goal_gibberish_lists_unparsed_words() -> None:
    goal = parse_goal("Flibber the wobble, zorp 42 quux!")
    assert goal.has_constraints is False
    assert goal.unparsed_words == ["flibber", "wobble", "zorp", "42", "quux"]


def test_parse_goal_unparsed_words_skip_stop_words() -> None:
    goal = parse_goal("please make the model a lot nicer for us")
    assert goal.unparsed_words == ["nicer"]


def test_parse_goal_vague_wishes_set_nothing() -> None:
    goal = parse_goal("make it smaller and faster with negligible accuracy loss")
    assert goal.has_constraints is False
    assert {"smaller", "faster", "negligible"} <= set(goal.unparsed_words)


@pytest.mark.parametrize(
    "text",
    [
        "9" * 400 + " MB",
        "150% smaller",
        "lose 200%",
        "0x faster",
        "reduce latency by 100%",
        "0.0000001 ms",
        "\0\0 under \0 5 MB",
        "🚀 2x faster 🚀",
        "under " * 500 + "5 MB",
        "1/0 of the size",
    ],
)
def test_parse_goal_never_raises_on_odd_text(text: str) -> None:
    goal = parse_goal(text)
    assert goal.text == text
    for name in goal.constraint_names():
        assert math.isfinite(getattr(goal, name))


def test_parse_goal_impossible_values_are_left_unparsed() -> None:
    goal = parse_goal("150% smaller")
    assert goal.max_size_ratio is None
    assert goal.unparsed_words == ["150%", "smaller"]


def test_parse_goal_is_deterministic() -> None:
    text = "under 5 MB, 2x faster on gpu, <1% accuracy loss, int8 only"
    assert parse_goal(text) == parse_goal(text)


@pytest.mark.parametrize(
    "fields",
    [
        {"max_size_mb": -1},
        {"max_size_mb": 0},
        {"max_size_mb": float("inf")},
        {"max_size_ratio": 0},
        {"max_size_ratio": 1.5},
        {"max_accuracy_drop_pct": -0.1},
        {"max_accuracy_drop_pct": float("nan")},
        {"max_latency_ms": 0},
        {"min_speedup": -2},
        {"objective": "cheapest"},
        {"precision": "int2"},
        {"device": "tpu"},
        {"methods_allowed": ["distill"]},
        {"methods_allowed": []},
        {"methods_forbidden": ["prune", "prune"]},
        {"methods_allowed": ["quantize"], "methods_forbidden": ["quantize"]},
        {"has_constraints": True},
        {"max_size_mb": 5.0, "has_constraints": False},
        {"colour": "blue"},
    ],
)
def test_parse_goal_validation_rejects_bad_values(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Goal(**fields)


def test_parse_goal_validation_accepts_edge_values() -> None:
    goal = Goal(max_accuracy_drop_pct=0.0, max_size_ratio=1.0)
    assert goal.has_constraints is True
    assert Goal().has_constraints is False


def test_parse_goal_json_has_exactly_the_schema_fields() -> None:
    goal = parse_goal("under 5 MB, <1% accuracy loss, int8 only, no pruning, on cpu")
    data = goal.model_dump(mode="json")
    assert set(data) == {
        "max_size_mb",
        "max_size_ratio",
        "min_size_reduction_mb",
        "max_memory_mb",
        "max_accuracy_drop_pct",
        "min_metric",
        "min_metric_ratio",
        "max_latency_ms",
        "min_speedup",
        "max_latency_ratio",
        "max_latency_increase_ms",
        "min_latency_reduction_ms",
        "objective",
        "methods_allowed",
        "methods_forbidden",
        "methods_requested",
        "methods_fallback",
        "precision",
        "precision_forbidden",
        "keep_float_layers",
        "device",
        "threads",
        "batch_size",
        "unparsed_words",
        "readings",
        "has_constraints",
        "text",
    }
    assert data["methods_allowed"] == ["quantize"]
    assert data["methods_forbidden"] == ["prune"]
    assert isinstance(data["unparsed_words"], list)
    assert data["has_constraints"] is True
    assert Goal.model_validate_json(goal.model_dump_json()) == goal


def test_parse_goal_result_is_frozen() -> None:
    goal = parse_goal("under 5 MB")
    with pytest.raises(ValidationError):
        goal.max_size_mb = 1.0  # type: ignore[misc]


def test_parse_goal_with_changes_revalidates() -> None:
    goal = parse_goal("as small as possible")
    assert goal.has_constraints is False
    smaller = goal.with_changes(max_size_mb=2.0)
    assert smaller.max_size_mb == 2.0
    assert smaller.has_constraints is True
    assert smaller.objective == "size"
    assert smaller.text == goal.text
    assert goal.max_size_mb is None  # the original is untouched
    assert smaller.with_changes(max_size_mb=None).has_constraints is False
    with pytest.raises(ValidationError):
        goal.with_changes(max_size_mb=-3.0)
    with pytest.raises(ValidationError):
        goal.with_changes(colour="blue")
    with pytest.raises(ValidationError):
        goal.with_changes(methods_allowed=["prune"], methods_forbidden=["prune"])


def test_parse_goal_describe() -> None:
    assert (
        parse_goal("under 5 MB, <1% accuracy loss").describe()
        == "size <= 5.0 MB, accuracy drop <= 1.0 pt, objective: balanced"
    )
    assert parse_goal("").describe() == "no constraints, objective: balanced"
    full = parse_goal("4x smaller, 2x faster, under 3 ms, int8 only on cpu, no pruning, as small as possible")
    assert full.describe() == (
        "size <= 25% of original, p50 latency <= 3.0 ms, speedup >= 2.0x, precision: int8, device: cpu, "
        "methods allowed: quantize, methods forbidden: prune, objective: size"
    )


def test_parse_goal_constraint_names() -> None:
    goal = parse_goal("twice as fast, accuracy within half a point, under 10 MB")
    assert goal.constraint_names() == ["max_size_mb", "max_accuracy_drop_pct", "min_speedup"]
    assert parse_goal("fp16 on gpu").constraint_names() == []


def test_parse_goal_wishes_are_not_bounds() -> None:
    goal = parse_goal("I'd love a 2x speedup but 1.5x is acceptable")
    assert goal.min_speedup is None
    assert goal.unparsed_words == ["love", "2x", "speedup", "1.5x"]


def test_parse_goal_strictest_bound_wins() -> None:
    goal = parse_goal("under 10 MB; it must also be below 8 MB")
    assert goal.max_size_mb == 8.0
    goal = parse_goal("at least 2x faster, speedup of at least 3")
    assert goal.min_speedup == 3.0


# --------------------------------------------------------------------------- methods asked for, follow-ups


@pytest.mark.parametrize(
    ("text", "requested"),
    [
        ("prune it, under 40 KB", ["prune"]),
        ("try pruning, at most 2% accuracy loss", ["prune"]),
        ("quantize it to under 5 MB", ["quantize"]),
        ("under 40 KB, no pruning", None),
        ("under 40 KB", None),
    ],
)
def test_parse_goal_reads_the_methods_asked_for_as_a_field(text: str, requested: list[str] | None) -> None:
    goal = parse_goal(text)
    assert goal.methods_requested == requested
    assert goal.asks_for("prune") is (requested == ["prune"])


def test_parse_goal_with_a_prior_merges_the_follow_up_into_it() -> None:
    prior = parse_goal("under 40 KB with at most 1% accuracy loss, no pruning")
    relaxed = parse_goal("I can accept up to 2% accuracy loss", prior=prior)
    assert relaxed.max_size_mb == pytest.approx(0.04) and relaxed.max_accuracy_drop_pct == 2.0
    assert relaxed.methods_forbidden == ["prune"]
    assert (
        relaxed.text
        == "under 40 KB with at most 1% accuracy loss, no pruning; I can accept up to 2% accuracy loss"
    )
    # a new size bound replaces the old kind; a method allowed again is no longer forbidden
    again = parse_goal("half the size, and prune it", prior=relaxed)
    assert again.max_size_mb is None and again.max_size_ratio == 0.5
    assert again.max_accuracy_drop_pct == 2.0
    assert again.methods_forbidden is None and again.methods_requested == ["prune"]
    # a follow-up that sets nothing changes nothing but the text
    same = parse_goal("thanks", prior=prior)
    assert same.model_dump(exclude={"text", "unparsed_words", "readings"}) == prior.model_dump(
        exclude={"text", "unparsed_words", "readings"}
    )
    assert same.readings == []  # the readings are the follow-up's


def test_goal_merged_with_a_goal_set_field_by_field() -> None:
    """An LLM fills the structured goal through the tool schema: only the fields it set count."""
    prior = Goal(max_size_mb=5.0, max_accuracy_drop_pct=1.0, objective="size")
    merged = prior.merged_with(Goal(min_speedup=1.5))
    assert (merged.max_size_mb, merged.max_accuracy_drop_pct, merged.min_speedup) == (5.0, 1.0, 1.5)
    assert merged.objective == "size"
