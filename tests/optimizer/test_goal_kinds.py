"""The kinds of sentence issue 14 found read silently wrong, each as a family of paraphrases.

Every family holds several phrasings of one meaning, among them variants written as a practitioner would write
them and never looked at while the rules were written; a sentence passes when it sets exactly the fields given
(every other field keeps its default) and, unless the case says otherwise, leaves no content word unread. Every
sentence of every family is also checked for honest bookkeeping: each word is either in a reading, in
``unparsed_words`` or a stop-word, never in both, and each field set has a reading that set it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from optimizer.goals.parse import _STOPWORDS, _normalise, parse_goal
from optimizer.types import Goal

_DEFAULTS: dict[str, Any] = {
    name: info.default
    for name, info in Goal.model_fields.items()
    if name not in ("unparsed_words", "readings", "has_constraints", "text", "methods_requested")
}

Case = tuple[str, dict[str, Any]]

FAMILIES: dict[str, list[Case]] = {
    # "Top-1 must not drop below 75%" was a 75-point drop allowance: it is a floor on the metric itself
    "absolute accuracy floor": [
        ("Top-1 must not drop below 75%", {"min_metric": 0.75}),
        ("accuracy must not fall below 90%", {"min_metric": 0.9}),
        ("don't let the accuracy go under 85%", {"min_metric": 0.85}),
        ("accuracy should stay above 97.5%", {"min_metric": 0.975}),
        ("keep top-1 accuracy at or above 70%", {"min_metric": 0.7}),
        ("I need at least 95% accuracy", {"min_metric": 0.95}),
        ("the F1 score has to be at least 0.8", {"min_metric": 0.8}),
        ("minimum accuracy of 92%", {"min_metric": 0.92}),
        ("accuracy >= 0.9", {"min_metric": 0.9}),
        ("top-1 no lower than 76%", {"min_metric": 0.76}),
        ("accuracy can't dip below eighty percent", {"min_metric": 0.8}),
        ("The model has to score at least 88% top-1.", {"min_metric": 0.88}),
        ("validation accuracy needs to remain at least 91%", {"min_metric": 0.91}),
        ("we can't go below 0.85 F1", {"min_metric": 0.85}),
        ("top-5 must be 95% or higher", {"min_metric": 0.95}),
        ("accuracy floor: 80%", {"min_metric": 0.8}),
        ("keep the accuracy from dropping under 70%", {"min_metric": 0.7}),
    ],
    # "not below 90% of the baseline" was a 90-point drop allowance: a share of the original's metric
    "relative accuracy floor": [
        ("not below 90% of the baseline", {"min_metric_ratio": 0.9}),
        ("accuracy should not be below 90% of the baseline", {"min_metric_ratio": 0.9}),
        ("keep at least 95% of the original accuracy", {"min_metric_ratio": 0.95}),
        ("retain 98% of the fp32 model's accuracy", {"min_metric_ratio": 0.98}),
        ("accuracy must stay within 2% of the original", {"min_metric_ratio": 0.98}),
        ("lose no more than 3% of the baseline accuracy", {"min_metric_ratio": 0.97}),
        ("a relative accuracy drop of at most 1%", {"min_metric_ratio": 0.99}),
        ("F1 must remain above 95% of its current value", {"min_metric_ratio": 0.95}),
        ("top-1 at least 97% of what it was", {"min_metric_ratio": 0.97}),
        ("at least 99% of baseline top-1", {"min_metric_ratio": 0.99}),
        ("the score mustn't fall under 95% of the original", {"min_metric_ratio": 0.95}),
        ("accuracy should be no worse than 98% of what we have now", {"min_metric_ratio": 0.98}),
    ],
    # a drop in points stays a drop in points
    "accuracy drop in points": [
        ("<1% accuracy loss", {"max_accuracy_drop_pct": 1.0}),
        ("accuracy may drop by at most 0.5%", {"max_accuracy_drop_pct": 0.5}),
        ("accuracy drop below 1%", {"max_accuracy_drop_pct": 1.0}),
        ("keep top-1 within 0.3 points of the fp32 baseline", {"max_accuracy_drop_pct": 0.3}),
        ("lose at most 2 points of F1", {"max_accuracy_drop_pct": 2.0}),
    ],
    # "keep latency within 10% of the original" was a 10x speed-up; "may increase by at most 20%" the wrong way
    "relative latency": [
        ("keep latency within 10% of the original", {"max_latency_ratio": 1.1}),
        ("latency may increase by at most 20%", {"max_latency_ratio": 1.2}),
        ("it's fine if inference gets up to 15% slower", {"max_latency_ratio": 1.15}),
        ("no more than 5% latency overhead", {"max_latency_ratio": 1.05}),
        ("a slowdown of at most 10% is acceptable", {"max_latency_ratio": 1.1}),
        ("latency can be at most 25% higher than now", {"max_latency_ratio": 1.25}),
        ("latency shouldn't grow more than 30%", {"max_latency_ratio": 1.3}),
        ("allow up to 2x the original latency", {"max_latency_ratio": 2.0}),
        ("at most twice as slow", {"max_latency_ratio": 2.0}),
        ("throughput may decrease by at most 10%", {"max_latency_ratio": 1.1111}),
        ("latency may grow by up to 10%", {"max_latency_ratio": 1.1}),
        ("inference can be 20% slower at most", {"max_latency_ratio": 1.2}),
        ("a 5% latency increase is acceptable", {"max_latency_ratio": 1.05}),
        ("response time can't be more than 15% above the original", {"max_latency_ratio": 1.15}),
        ("latency within 1.2x of the baseline", {"max_latency_ratio": 1.2}),
    ],
    # faster stays a speed-up (documented: "X% faster" is X% more speed, "X% lower latency" 1 / (1 - X))
    "speed-up": [
        ("at least 30% faster", {"min_speedup": 1.3}),
        ("30% lower latency", {"min_speedup": 1.4286}),
        ("cut latency by 30%", {"min_speedup": 1.4286}),
        ("two and a half times faster", {"min_speedup": 2.5}),
        ("latency at most 80% of the original", {"min_speedup": 1.25}),
    ],
    # "reduce the size by 4 MB" was "under 4 MB"
    "size reduction amount": [
        ("reduce the size by 4 MB", {"min_size_reduction_mb": 4.0}),
        ("shrink the model by at least 10 MB", {"min_size_reduction_mb": 10.0}),
        ("make it 4 MB smaller", {"min_size_reduction_mb": 4.0}),
        ("save at least 500 KB", {"min_size_reduction_mb": 0.5}),
        ("shave 2 MB off the file", {"min_size_reduction_mb": 2.0}),
        ("a size reduction of 3 MB", {"min_size_reduction_mb": 3.0}),
        ("take 1.5 megabytes off the model", {"min_size_reduction_mb": 1.5}),
        ("cut 20 MB from the checkpoint", {"min_size_reduction_mb": 20.0}),
        ("make it 2 MB lighter", {"min_size_reduction_mb": 2.0}),
        ("reduce model size by 3.5 megabytes", {"min_size_reduction_mb": 3.5}),
        ("cut at least 100 KB from the file size", {"min_size_reduction_mb": 0.1}),
    ],
    # "at most 5 ms slower" was "under 5 ms"
    "latency change amount": [
        ("at most 5 ms slower", {"max_latency_increase_ms": 5.0}),
        ("latency may go up by no more than 2 ms", {"max_latency_increase_ms": 2.0}),
        ("adding at most 3 ms of latency is fine", {"max_latency_increase_ms": 3.0}),
        ("no more than 1 ms extra latency", {"max_latency_increase_ms": 1.0}),
        ("keep latency within 5 ms of the original", {"max_latency_increase_ms": 5.0}),
        ("reduce latency by 5 ms", {"min_latency_reduction_ms": 5.0}),
        ("shave 10 ms off the inference time", {"min_latency_reduction_ms": 10.0}),
        ("make it at least 3 ms faster", {"min_latency_reduction_ms": 3.0}),
        ("a latency reduction of at least 4 ms", {"min_latency_reduction_ms": 4.0}),
        ("latency must not increase by more than 4 milliseconds", {"max_latency_increase_ms": 4.0}),
        ("shave off 2 ms", {"min_latency_reduction_ms": 2.0}),
        ("make inference 10 ms quicker", {"min_latency_reduction_ms": 10.0}),
    ],
    # kB is decimal, KiB binary; numbers in words; two sizes in one sentence are two limits
    "units": [
        ("under 500 kB", {"max_size_mb": 0.5}),
        ("under 500 kilobytes", {"max_size_mb": 0.5}),
        ("under 500 KiB", {"max_size_mb": 0.512}),
        ("at most 1.5 MiB", {"max_size_mb": 1.572864}),
        ("no bigger than 3 gigabytes", {"max_size_mb": 3000.0}),
        ("under two hundred milliseconds", {"max_latency_ms": 200.0}),
        ("under one and a half megabytes", {"max_size_mb": 1.5}),
        ("a third of the size", {"max_size_ratio": 0.3333}),
        ("under twenty-five megabytes", {"max_size_mb": 25.0}),
        ("below a hundred and fifty KB", {"max_size_mb": 0.15}),
        ("within three hundred microseconds", {"max_latency_ms": 0.3}),
        ("at most three quarters of a second", {"max_latency_ms": 750.0}),
        ("under a third of a second", {"max_latency_ms": 333.333}),
        ("one thousand two hundred KB at most", {"max_size_mb": 1.2}),
        ("under 300 kB on disk", {"max_size_mb": 0.3}),
        ("keep it below two megabytes", {"max_size_mb": 2.0}),
        ("at most fifty milliseconds", {"max_latency_ms": 50.0}),
    ],
    "two sizes": [
        ("5 MB on disk and 2 MB of RAM", {"max_size_mb": 5.0, "max_memory_mb": 2.0}),
        ("under 10 MB file size and under 50 MB of memory", {"max_size_mb": 10.0, "max_memory_mb": 50.0}),
        ("at most 100 MB RAM, 20 MB on disk", {"max_memory_mb": 100.0, "max_size_mb": 20.0}),
        ("peak memory below 1 GB, model under 300 MB", {"max_memory_mb": 1000.0, "max_size_mb": 300.0}),
        ("under 10 MB on disk, under 64 MB of RAM at runtime", {"max_size_mb": 10.0, "max_memory_mb": 64.0}),
    ],
    # "avoid fp16" set fp16
    "forbidden precision": [
        ("avoid fp16", {"precision_forbidden": ["fp16"]}),
        ("no fp16 please", {"precision_forbidden": ["fp16"]}),
        ("don't use half precision", {"precision_forbidden": ["fp16"]}),
        ("fp16 is not supported on our hardware", {"precision_forbidden": ["fp16"]}),
        ("skip 4-bit", {"precision_forbidden": ["int4"]}),
        ("we can't run fp16 kernels", {"precision_forbidden": ["fp16"]}),
        ("stay away from int4", {"precision_forbidden": ["int4"]}),
        ("int8, not int4", {"precision": "int8", "precision_forbidden": ["int4"]}),
        ("fp16 won't work on our hardware", {"precision_forbidden": ["fp16"]}),
        ("int4 is off the table", {"precision_forbidden": ["int4"]}),
        # a wish is not a rule: left for the assistant to ask about
        ("prefer not to use fp16", {"unparsed_words": ["prefer", "fp16"]}),
    ],
    # "GPUs aren't available" set GPU
    "no GPU": [
        ("GPUs aren't available", {"device": "cpu"}),
        ("there's no GPU", {"device": "cpu"}),
        ("no GPU available", {"device": "cpu"}),
        ("we won't have a GPU in production", {"device": "cpu"}),
        ("CUDA is not an option", {"device": "cpu"}),
        ("without any GPU", {"device": "cpu"}),
        ("we can't use GPUs", {"device": "cpu"}),
        ("there are no GPUs on the target device", {"device": "cpu"}),
        ("GPU inference is not an option", {"device": "cpu"}),
        ("the server has no GPU", {"device": "cpu"}),
    ],
    # "don't quantize the first and last layers" forbade quantization
    "layers kept in float": [
        ("don't quantize the first and last layers", {"keep_float_layers": ["first", "last"]}),
        ("keep the first layer in fp32", {"keep_float_layers": ["first"]}),
        ("quantize everything except the last layer", {"keep_float_layers": ["last"]}),
        ("quantize all layers but the first and last", {"keep_float_layers": ["first", "last"]}),
        ("the classifier head must stay in full precision", {"keep_float_layers": ["last"]}),
        ("leave the input and output layers unquantized", {"keep_float_layers": ["first", "last"]}),
        ("the first and last layers should not be quantized", {"keep_float_layers": ["first", "last"]}),
        ("no quantization of the first layer", {"keep_float_layers": ["first"]}),
        ("keep the final layer unquantized", {"keep_float_layers": ["last"]}),
        ("do not touch the input layer", {"keep_float_layers": ["first"]}),
    ],
    # "no QAT, post-training only" forbade all quantization
    "post-training only": [
        ("no QAT, post-training only", {"methods_forbidden": ["qat"]}),
        ("post-training quantization only", {"methods_allowed": ["quantize"], "methods_forbidden": ["qat"]}),
        ("without quantization-aware training", {"methods_forbidden": ["qat"]}),
        ("PTQ only", {"methods_allowed": ["quantize"], "methods_forbidden": ["qat"]}),
        ("we can't retrain the model", {"methods_forbidden": ["qat"]}),
        ("only quantization", {"methods_allowed": ["quantize"]}),
        ("only QAT", {"methods_allowed": ["qat"]}),
        ("only post-training methods", {"methods_forbidden": ["qat"]}),
        ("no fine-tuning please", {"methods_forbidden": ["qat"]}),
    ],
    # "don't just quantize it, try pruning too" allowed only quantization
    "more than one method": [
        ("don't just quantize it, try pruning too", {}),
        ("not only quantization, prune as well", {}),
        ("in addition to quantizing, also try pruning", {}),
        ("quantization alone won't be enough, so prune too", {}),
        ("prune as well as quantize", {}),
    ],
    # "only prune if quantization alone isn't enough" allowed only pruning
    "fallback method": [
        ("only prune if quantization alone isn't enough", {"methods_fallback": ["prune"]}),
        ("prune only if needed", {"methods_fallback": ["prune"]}),
        ("use pruning as a last resort", {"methods_fallback": ["prune"]}),
        ("if int8 can't hit the target, prune", {"methods_fallback": ["prune"]}),
        ("fall back to pruning if quantization fails", {"methods_fallback": ["prune"]}),
        ("if quantizing isn't enough you may prune", {"methods_fallback": ["prune"]}),
        ("try pruning only if int8 misses the goal", {"methods_fallback": ["prune"]}),
        ("prune as a last resort", {"methods_fallback": ["prune"]}),
    ],
    # "I don't care about latency, only about size" gave objective latency
    "objective by contrast": [
        ("I don't care about latency, only about size", {"objective": "size"}),
        ("latency doesn't matter, only size does", {"objective": "size"}),
        ("speed is secondary; size is what matters", {"objective": "size"}),
        ("I don't care about size, just accuracy", {"objective": "accuracy"}),
        ("accuracy is irrelevant to me, make it as fast as possible", {"objective": "latency"}),
        ("prioritise speed over size", {"objective": "latency"}),
        ("I'm not worried about accuracy, all I care about is speed", {"objective": "latency"}),
        ("size is the priority, latency doesn't matter", {"objective": "size"}),
        ("forget about latency, I want the smallest model", {"objective": "size"}),
    ],
}

# Two batches written in one go after the rules above passed, and run once before any change: the first read 29
# of 40 right (one silent misreading: "latency going up 25%" became a speed-up), the second 26 of 40 (two: "GPU? We
# don't have one" set the GPU, "we'd rather not go to 4 bits" forbade int4). The rules were then generalised (verb
# forms, wish words, what a change applies to), not written per sentence; both batches stay here as they were
# written, but for three expectations of the second batch that were themselves wrong (marked).
UNSEEN_BATCH_1: list[Case] = [
    ("Our product team says top-1 can't sink below 72 percent.", {"min_metric": 0.72}),
    ("Make sure exact match stays at 0.9 or above", {"min_metric": 0.9}),
    ("We need to hold on to 97% of the baseline F1.", {"min_metric_ratio": 0.97}),
    ("Relative accuracy loss must be under 2%", {"min_metric_ratio": 0.98}),
    ("Accuracy must not degrade by more than 1.5 points", {"max_accuracy_drop_pct": 1.5}),
    ("p50 latency is allowed to rise by 10% at most", {"max_latency_ratio": 1.1}),
    ("I can live with latency going up 25%", {"max_latency_ratio": 1.25}),
    ("Up to 5% more latency is OK", {"max_latency_ratio": 1.05}),
    ("It may run up to 3x slower than the original", {"max_latency_ratio": 3.0}),
    ("Trim the model by 8 megabytes", {"min_size_reduction_mb": 8.0}),
    ("We need to free up at least 50 MB", {"min_size_reduction_mb": 50.0}),
    ("Get the file 1 GB smaller", {"min_size_reduction_mb": 1000.0}),
    ("A slowdown of 2 ms is the most we can accept", {"max_latency_increase_ms": 2.0}),
    ("Knock 15 ms off the p50", {"min_latency_reduction_ms": 15.0}),
    ("latency should drop by at least 20 milliseconds", {"min_latency_reduction_ms": 20.0}),
    ("It has to fit in 750 kB", {"max_size_mb": 0.75}),
    ("keep it under 4 MiB", {"max_size_mb": 4.194304}),
    ("under forty-five milliseconds per image", {"max_latency_ms": 45.0}),
    ("no more than two and a half gigabytes", {"max_size_mb": 2500.0}),
    ("respond in under a quarter of a second", {"max_latency_ms": 250.0}),
    ("max 3 MB of flash and 512 KB of RAM", {"max_size_mb": 3.0, "max_memory_mb": 0.512}),
    ("peak RAM under 256 MB; the file itself under 40 MB", {"max_memory_mb": 256.0, "max_size_mb": 40.0}),
    ("please avoid half-precision floats", {"precision_forbidden": ["fp16"]}),
    ("int4 isn't acceptable", {"precision_forbidden": ["int4"]}),
    ("anything but 4-bit", {"precision_forbidden": ["int4"]}),
    ("we have no GPUs at all", {"device": "cpu"}),
    ("no CUDA on the edge box", {"device": "cpu"}),
    ("the deployment machine lacks a GPU", {"device": "cpu"}),
    ("leave the last layer in float32", {"keep_float_layers": ["last"]}),
    ("please don't quantize the classifier", {"keep_float_layers": ["last"]}),
    ("keep the first and the last layers at full precision", {"keep_float_layers": ["first", "last"]}),
    ("stick to post-training quantization", {"methods_allowed": ["quantize"], "methods_forbidden": ["qat"]}),
    ("QAT is not an option", {"methods_forbidden": ["qat"]}),
    ("don't use quantization-aware training", {"methods_forbidden": ["qat"]}),
    ("try both pruning and quantization", {}),
    ("pruning only as a fallback", {"methods_fallback": ["prune"]}),
    ("resort to pruning only when int8 falls short", {"methods_fallback": ["prune"]}),
    ("Latency is not a concern; make it as small as you can", {"objective": "size"}),
    ("Size is irrelevant, accuracy above all", {"objective": "accuracy"}),
    ("We value accuracy over speed", {"objective": "accuracy"}),
]
UNSEEN_BATCH_2: list[Case] = [
    ("the new model must keep top-1 above 0.76", {"min_metric": 0.76}),
    ("accuracy can't be lower than 93 percent", {"min_metric": 0.93}),
    ("we need mAP of at least 0.5", {"min_metric": 0.5}),
    ("keep at least 96 percent of the original F1 score", {"min_metric_ratio": 0.96}),
    ("a relative drop of no more than 0.5% in accuracy", {"min_metric_ratio": 0.995}),
    ("a 1 point accuracy drop is the limit", {"max_accuracy_drop_pct": 1.0}),
    ("latency must stay within 5% of today's", {"max_latency_ratio": 1.05}),
    ("inference time may increase by up to a third", {"max_latency_ratio": 1.3333}),
    ("we tolerate at most a 50% slowdown", {"max_latency_ratio": 1.5}),
    ("it can be twice as slow, no more", {"max_latency_ratio": 2.0}),
    ("cut the model size by 25 MB", {"min_size_reduction_mb": 25.0}),
    ("it should be at least 300 KB smaller than the original", {"min_size_reduction_mb": 0.3}),
    # first expected fully read: "would be enough" is a condition the schema has no field for
    ("saving 1 MB would be enough", {"min_size_reduction_mb": 1.0, "unparsed_words": ["enough"]}),
    ("add no more than 0.5 ms to the latency", {"max_latency_increase_ms": 0.5}),
    ("a latency penalty of up to 3 ms is fine", {"max_latency_increase_ms": 3.0}),
    ("speed it up by at least 2 ms", {"min_latency_reduction_ms": 2.0}),
    ("below 64 KiB", {"max_size_mb": 0.065536}),
    ("under 100 kilobytes please", {"max_size_mb": 0.1}),
    ("in less than thirty milliseconds", {"max_latency_ms": 30.0}),
    ("smaller than one point five megabytes", {"max_size_mb": 1.5}),
    ("fit into 8 MB of storage and use at most 32 MB of memory", {"max_size_mb": 8.0, "max_memory_mb": 32.0}),
    ("2 GB VRAM max, 500 MB file", {"max_memory_mb": 2000.0, "max_size_mb": 500.0}),
    ("no half precision", {"precision_forbidden": ["fp16"]}),
    (
        "we'd rather not go to 4 bits; fp16 is out of the question",
        {"precision_forbidden": ["fp16"], "unparsed_words": ["rather", "4", "bits"]},
    ),
    ("int4 and fp16 are both unsupported", {"precision_forbidden": ["fp16", "int4"]}),
    ("GPU? We don't have one", {"device": "cpu"}),  # expected left unread at first: the reading is right
    ("the target has no CUDA", {"device": "cpu"}),
    ("CPU inference only, GPUs are not available", {"device": "cpu"}),
    ("don't quantize the output layer", {"keep_float_layers": ["last"]}),
    ("keep the stem in fp32", {"keep_float_layers": ["first"]}),
    ("exclude the first and last layers from quantization", {"keep_float_layers": ["first", "last"]}),
    (
        "no training, just post-training quantization",
        {"methods_allowed": ["quantize"], "methods_forbidden": ["qat"]},
    ),
    ("QAT only", {"methods_allowed": ["qat"]}),
    ("besides quantization, try sparsity", {}),
    ("if nothing else works, prune", {"methods_fallback": ["prune"]}),
    ("pruning is a last resort", {"methods_fallback": ["prune"]}),
    ("latency is what matters, not size", {"objective": "latency"}),
    ("I care about accuracy, not speed", {"objective": "accuracy"}),
    (
        "forget the size, make it fast",
        {"unparsed_words": ["fast"]},
    ),  # first expected latency: "fast" is vague
    ("speed matters less than size", {"objective": "size"}),
]

# Three more batches, sentences that mix the kinds as users do, written and run the same way: 15 of 20, 14 of 20 and
# 11 of 20 right at first, with 4, 3 and 4 silent misreadings ("cut 30% of the latency" as 3.3x, "fp16 not
# allowed" as fp16, "memory use below 300 MB" as file size, "get rid of 10 MB" as "under 10 MB", "don't quantize
# the embedding layer" as no quantization at all, "Jetson-free" as a GPU, ...). Four expectations were incomplete
# and were corrected: two fallbacks that name two methods or sit in a sentence with a limit, "fp16 is pointless,
# avoid it" (expected unread, now a forbidden precision), "size comes second" (expected unread, now read).
UNSEEN_BATCH_3: list[Case] = [
    (
        "Compress resnet18 for a Jetson-free edge box: under 20 MB, top-1 must not fall below 68%, and no fp16.",
        {
            "max_size_mb": 20.0,
            "min_metric": 0.68,
            "precision_forbidden": ["fp16"],
            "device": "cpu",
            "unparsed_words": ["resnet18", "jetson-free"],
        },
    ),
    (
        "We only have CPUs. Keep accuracy within 1% of the baseline and latency within 10% of the original.",
        {"device": "cpu", "min_metric_ratio": 0.99, "max_latency_ratio": 1.1},
    ),
    (
        "Reduce the size by at least 5 MB while losing no more than half a point of accuracy",
        {"min_size_reduction_mb": 5.0, "max_accuracy_drop_pct": 0.5},
    ),
    (
        "int8 please, but keep the first conv layer in float; post-training only",
        {"precision": "int8", "keep_float_layers": ["first"], "methods_forbidden": ["qat"]},
    ),
    (
        "I don't care about speed at all. Smallest model with top-1 above 0.7",
        {"objective": "size", "min_metric": 0.7},
    ),
    (
        "latency may go up by 2 ms at most, but memory must stay under 100 MB",
        {"max_latency_increase_ms": 2.0, "max_memory_mb": 100.0},
    ),
    (
        "Make it at least 40% smaller and no more than 5% slower",
        {"max_size_ratio": 0.6, "max_latency_ratio": 1.05},
    ),
    (
        "Quantize and prune, but prune only if int8 alone doesn't get under 10 MB",
        {"max_size_mb": 10.0, "methods_fallback": ["prune"]},
    ),
    (
        "no GPU in production; fp16 is pointless there, so avoid it",
        {"device": "cpu", "precision_forbidden": ["fp16"]},
    ),
    (
        "The accuracy must not drop by more than 2 points and must stay above 90%",
        {"max_accuracy_drop_pct": 2.0, "min_metric": 0.9},
    ),
    (
        "Shrink it to a quarter of its size; a 3% relative drop in F1 is the most I accept",
        {"max_size_ratio": 0.25, "min_metric_ratio": 0.97},
    ),
    (
        "Target: 4 MB file, 16 MB RAM, p50 under 8 ms on a Raspberry Pi",
        {"max_size_mb": 4.0, "max_memory_mb": 16.0, "max_latency_ms": 8.0, "device": "cpu"},
    ),
    ("two and a half megabytes, not more", {"max_size_mb": 2.5, "unparsed_words": []}),
    ("don't go below ninety percent accuracy", {"min_metric": 0.9}),
    (
        "under 1.2 seconds with at least ninety five percent accuracy",
        {"max_latency_ms": 1200.0, "min_metric": 0.95},
    ),
    ("avoid int4 and don't prune", {"precision_forbidden": ["int4"], "methods_forbidden": ["prune"]}),
    (
        "can you make it 3 ms faster without losing accuracy?",
        {"min_latency_reduction_ms": 3.0, "max_accuracy_drop_pct": 0.0},
    ),
    ("it may be up to 50% slower if it gets 4x smaller", {"max_latency_ratio": 1.5, "max_size_ratio": 0.25}),
    ("keep 95% of top-1 and cut 30% of the latency", {"min_metric_ratio": 0.95, "min_speedup": 1.4286}),
    ("sparsity only as a last resort; QAT is fine", {"methods_fallback": ["prune"]}),
]
UNSEEN_BATCH_4: list[Case] = [
    (
        "Please get bert-base under 120 MB without losing more than 1% of its accuracy",
        {"max_size_mb": 120.0, "min_metric_ratio": 0.99, "unparsed_words": ["bert-base"]},
    ),
    ("top-1 shouldn't go lower than 74.5%, and it must run on CPU", {"min_metric": 0.745, "device": "cpu"}),
    ("make the p50 no worse than 1.1x the original", {"max_latency_ratio": 1.1}),
    (
        "we can afford 10% more latency but the file must shrink by 30 MB",
        {"max_latency_ratio": 1.1, "min_size_reduction_mb": 30.0},
    ),
    ("memory use below 300 MB and disk size below 50 MB", {"max_memory_mb": 300.0, "max_size_mb": 50.0}),
    (
        "make it three times smaller, fp16 not allowed",
        {"max_size_ratio": 0.3333, "precision_forbidden": ["fp16"]},
    ),
    ("no pruning and no QAT", {"methods_forbidden": ["prune", "qat"]}),
    (
        "the last layer stays fp32, everything else int8",
        {"keep_float_layers": ["last"], "precision": "int8", "unparsed_words": ["everything"]},
    ),
    (
        "latency isn't important to us; we just want the best accuracy under 10 MB",
        {"objective": "accuracy", "max_size_mb": 10.0},
    ),
    ("save 20 ms per request", {"min_latency_reduction_ms": 20.0}),
    (
        "Our SLA allows 5 ms more than the current model",
        {"max_latency_increase_ms": 5.0, "unparsed_words": ["sla", "allows"]},
    ),
    ("keep top-1 accuracy at least at 0.9 of the original", {"min_metric_ratio": 0.9}),
    ("accuracy should decline by no more than 0.2 points", {"max_accuracy_drop_pct": 0.2}),
    ("under 500kB and under 2 ms", {"max_size_mb": 0.5, "max_latency_ms": 2.0}),
    ("one hundred and twenty eight kilobytes at most", {"max_size_mb": 0.128}),
    ("can't use a GPU, and int4 is not supported", {"device": "cpu", "precision_forbidden": ["int4"]}),
    ("try pruning and QAT if plain int8 is not enough", {"methods_fallback": ["prune", "qat"]}),
    ("speed first, size second", {"objective": "latency", "unparsed_words": ["size", "second"]}),
    ("ninety-nine percent of the original accuracy must be kept", {"min_metric_ratio": 0.99}),
    ("the model may not be more than 20% slower than it is now", {"max_latency_ratio": 1.2}),
]
UNSEEN_BATCH_5: list[Case] = [
    ("I want the model at most 2 MB, and top-5 no lower than 0.93", {"max_size_mb": 2.0, "min_metric": 0.93}),
    (
        "the phone app can spare 50 MB of RAM at most",
        {"max_memory_mb": 50.0, "device": "cpu", "unparsed_words": ["app", "spare"]},
    ),
    ("halve the size but don't let F1 fall under 0.88", {"max_size_ratio": 0.5, "min_metric": 0.88}),
    ("keep latency the same or better", {"max_latency_ratio": 1.0}),
    ("latency can double, size must drop by 80%", {"max_latency_ratio": 2.0, "max_size_ratio": 0.2}),
    (
        "we need 3x faster inference and can lose up to 2% relative accuracy",
        {"min_speedup": 3.0, "min_metric_ratio": 0.98},
    ),
    ("get rid of at least 10 megabytes", {"min_size_reduction_mb": 10.0}),
    ("it should respond 50 ms sooner than today", {"min_latency_reduction_ms": 50.0}),
    ("under seventy-five KB please", {"max_size_mb": 0.075}),
    ("bf16 and fp16 are both out", {"precision_forbidden": ["fp16"], "unparsed_words": ["bf16"]}),
    ("no GPUs, no TPUs, just a laptop", {"device": "cpu", "unparsed_words": ["tpus"]}),
    ("don't quantize the embedding layer", {"unparsed_words": ["quantize", "embedding", "layer"]}),
    (
        "QAT is allowed but only if PTQ loses more than 1 point",
        {"methods_fallback": ["qat"], "max_accuracy_drop_pct": 1.0},
    ),
    ("do not prune more than 30% of the channels", {"unparsed_words": ["prune", "30%", "channels"]}),
    ("I'm indifferent to size; accuracy is king", {"objective": "accuracy"}),
    ("the top priority is latency, size comes second", {"objective": "latency"}),
    (
        "the original takes 12 ms; keep it within 1 ms of that",
        {"max_latency_increase_ms": 1.0, "unparsed_words": ["takes", "12", "ms"]},
    ),
    ("accuracy mustn't be less than 0.97 of what fp32 gets", {"min_metric_ratio": 0.97}),
    (
        "at least a 25% size reduction and at most a 25% slowdown",
        {"max_size_ratio": 0.75, "max_latency_ratio": 1.25},
    ),
    (
        "keep it under 6 MiB on disk and 1 GiB of memory",
        {"max_size_mb": 6.291456, "max_memory_mb": 1073.741824},
    ),
]

# The last batch, written after all the changes above: 14 of 20 right at first, two silent misreadings ("WER can't
# get worse than 2 points" as a floor of 0.02 with "shrink whisper-tiny by 20 MB" as "under 20 MB"; "1.5 GB of GPU
# memory" as the file size). Three expectations were corrected: "GPU memory" names the GPU as the device, "prune the
# rest if needed" reads "the rest", and "leave" stays unread with the layers it names (no field for "first two").
UNSEEN_BATCH_6: list[Case] = [
    (
        "shrink whisper-tiny by at least 20 MB but WER can't get worse than 2 points",
        {"min_size_reduction_mb": 20.0, "max_accuracy_drop_pct": 2.0, "unparsed_words": ["whisper-tiny"]},
    ),
    ("accuracy above 0.8 is mandatory", {"min_metric": 0.8, "unparsed_words": ["mandatory"]}),
    ("keep at least ninety percent of the original top-1", {"min_metric_ratio": 0.9}),
    ("don't let latency rise more than 10 percent", {"max_latency_ratio": 1.1}),
    (
        "please make inference 25% faster and the model 25% smaller",
        {"min_speedup": 1.25, "max_size_ratio": 0.75},
    ),
    ("it has to fit in 1.5 GB of GPU memory", {"max_memory_mb": 1500.0, "device": "gpu"}),
    (
        "our flash has 4 MB and RAM is 256 KB",
        {"max_size_mb": 4.0, "max_memory_mb": 0.256, "unparsed_words": ["flash"]},
    ),
    ("trim 500 kB from the model", {"min_size_reduction_mb": 0.5}),
    (
        "at most 10 ms slower than now and at least 2x smaller",
        {"max_latency_increase_ms": 10.0, "max_size_ratio": 0.5},
    ),
    ("No 4-bit quantization, please", {"precision_forbidden": ["int4"]}),
    ("our ARM board has no GPU and can't do fp16", {"device": "cpu", "precision_forbidden": ["fp16"]}),
    ("leave the first two layers in float", {"unparsed_words": ["leave", "first", "two", "layers", "float"]}),
    (
        "keep input and output layers in fp32, prune the rest if needed",
        {"keep_float_layers": ["first", "last"], "methods_fallback": ["prune"]},
    ),
    ("we cannot fine-tune, no labels", {"methods_forbidden": ["qat"], "unparsed_words": ["labels"]}),
    ("size is what I care about most", {"objective": "size"}),
    ("don't worry about accuracy too much, speed is key", {"objective": "latency"}),
    ("accuracy: not below 97% of the fp32 model", {"min_metric_ratio": 0.97}),
    (
        "the latency budget is 12 ms but ideally 8",
        {"max_latency_ms": 12.0, "unparsed_words": ["ideally", "8"]},
    ),
    ("reduce p50 by 40%", {"min_speedup": 1.6667}),
    (
        "I can't afford more than 0.3% accuracy loss or more than 5% extra latency",
        {"max_accuracy_drop_pct": 0.3, "max_latency_ratio": 1.05},
    ),
]

# the methods each sentence of "more than one method" asks for: both, and nothing restricted
_ASKED = {
    "don't just quantize it, try pruning too": ["prune", "quantize"],
    "not only quantization, prune as well": ["prune", "quantize"],
    "in addition to quantizing, also try pruning": ["prune", "quantize"],
    "quantization alone won't be enough, so prune too": ["prune", "quantize"],
    "prune as well as quantize": ["prune", "quantize"],
    "try both pruning and quantization": ["prune", "quantize"],
    "besides quantization, try sparsity": ["prune", "quantize"],
}


CASES = [(kind, text, fields) for kind, cases in FAMILIES.items() for text, fields in cases] + [
    (f"unseen {i}", text, fields)
    for i, batch in enumerate(
        (UNSEEN_BATCH_1, UNSEEN_BATCH_2, UNSEEN_BATCH_3, UNSEEN_BATCH_4, UNSEEN_BATCH_5, UNSEEN_BATCH_6), 1
    )
    for text, fields in batch
]


def _words(text: str) -> list[str]:
    return [w.rstrip(".-'/+") for w in re.findall(r"[a-z0-9%][\w%.+'/-]*", text)]


@pytest.mark.parametrize(("kind", "text", "expected"), CASES, ids=[f"{k}: {t}" for k, t, _ in CASES])
def test_parse_goal_reads_each_kind_of_sentence(kind: str, text: str, expected: dict[str, Any]) -> None:
    goal = parse_goal(text)
    for name, default in _DEFAULTS.items():
        want = expected.get(name, default)
        got = getattr(goal, name)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-4), f"{kind}: {name} of {text!r}: {got!r} != {want!r}"
        else:
            assert got == want, f"{kind}: {name} of {text!r}: {got!r} != {want!r}"
    assert goal.unparsed_words == expected.get("unparsed_words", []), text
    if text in _ASKED:
        assert goal.methods_requested == _ASKED[text]


def assert_readings_honest(text: str) -> None:
    """Every word of ``text`` is read (in a reading), unread (in ``unparsed_words``) or a stop-word, never both
    (a word written twice may be both); every field set has a reading, and no reading claims an unset field."""
    goal = parse_goal(text)
    read = {w for r in goal.readings for w in _words(r.text)}
    unread = set(goal.unparsed_words)
    all_words = _words(_normalise(text))
    twice = {w for w in all_words if all_words.count(w) > 1}
    assert not (read & unread) - twice, f"{text!r}: both read and unread: {read & unread}"
    for word in all_words:
        assert word in read or word in unread or word in _STOPWORDS, f"{text!r}: {word!r} is unaccounted for"
    set_fields = {
        n for n in goal.model_fields_set if n not in ("unparsed_words", "readings", "text", "has_constraints")
    }
    claimed = {f for r in goal.readings for f in r.fields}
    assert set_fields <= claimed, f"{text!r}: set without a reading: {set_fields - claimed}"
    assert claimed <= set_fields, f"{text!r}: claims {claimed - set_fields}"


@pytest.mark.parametrize(("kind", "text", "expected"), CASES, ids=[f"{k}: {t}" for k, t, _ in CASES])
def test_parse_goal_readings_account_for_every_word_once(
    kind: str, text: str, expected: dict[str, Any]
) -> None:
    assert_readings_honest(text)


def test_parse_goal_families_are_families() -> None:
    assert all(len(cases) >= 4 for cases in FAMILIES.values())
    texts = [text for _, text, _ in CASES]
    assert len(texts) == len(set(texts)) >= 250


@pytest.mark.parametrize(
    ("text", "unread"),
    [
        ("accuracy must not drop below 150%", ["150%"]),
        ("keep 0% of the original accuracy", ["0%"]),
        ("reduce the size by 0 MB", ["0", "mb"]),
        ("under 20000000 TB", ["20000000", "tb"]),
        ("a 1500% relative accuracy drop", ["1500%"]),
        ("at least 0 ms faster", ["0", "ms"]),
        ("latency within 100000% of the original", ["100000%"]),
    ],
)
def test_parse_goal_impossible_values_of_the_new_kinds_are_not_understood(
    text: str, unread: list[str]
) -> None:
    goal = parse_goal(text)
    assert goal.has_constraints is False, goal.describe()
    assert set(unread) <= set(goal.unparsed_words)
    assert not any(set(unread) & set(_words(r.text)) for r in goal.readings)


@pytest.mark.parametrize(
    ("text", "unread"),
    [
        ("reduce memory by 100 MB", ["100", "mb"]),  # no field for a memory saving
        ("at most 1 MB bigger than the original", ["1", "mb", "bigger"]),
        ("increase by 20%", ["increase", "20%"]),  # increase of what?
    ],
)
def test_parse_goal_leaves_what_the_schema_cannot_hold_visible(text: str, unread: list[str]) -> None:
    goal = parse_goal(text)
    assert goal.has_constraints is False
    assert set(unread) <= set(goal.unparsed_words)


def test_parse_goal_readings_say_which_words_set_which_field() -> None:
    goal = parse_goal("under 5 MB on disk and 2 MB of RAM, top-1 must not drop below 75%, avoid fp16")
    by_field = {f: r.text for r in goal.readings for f in r.fields}
    assert by_field["max_size_mb"] == "under 5 mb on disk"
    assert by_field["max_memory_mb"] == "2 mb of ram"
    assert "75%" in by_field["min_metric"] and "below" in by_field["min_metric"]
    assert by_field["precision_forbidden"] == "avoid fp16"
    assert goal.describe() == (
        "size <= 5.0 MB, peak memory <= 2.0 MB, metric >= 0.75 (75%), precision not: fp16, objective: balanced"
    )


def test_parse_goal_a_contradiction_is_neither_read_nor_set() -> None:
    goal = parse_goal("use fp16, avoid fp16")
    assert goal.precision is None and goal.precision_forbidden is None
    assert "fp16" in goal.unparsed_words
    assert not any("precision" in r.fields for r in goal.readings)


def test_parse_goal_follow_up_replaces_every_bound_of_the_same_quantity() -> None:
    prior = parse_goal("top-1 must not drop below 75%, latency within 10% of the original, under 5 MB")
    assert (prior.min_metric, prior.max_latency_ratio, prior.max_size_mb) == (0.75, 1.1, 5.0)
    relaxed = parse_goal("I can accept 2% accuracy loss and at most 5 ms slower", prior=prior)
    assert relaxed.min_metric is None and relaxed.max_accuracy_drop_pct == 2.0
    assert relaxed.max_latency_ratio is None and relaxed.max_latency_increase_ms == 5.0
    assert relaxed.max_size_mb == 5.0
    smaller = parse_goal("and reduce the size by 4 MB, avoid int4", prior=relaxed)
    assert smaller.max_size_mb is None and smaller.min_size_reduction_mb == 4.0
    assert smaller.precision_forbidden == ["int4"]
    again = parse_goal("int4 is fine after all, use int4", prior=smaller)
    assert again.precision == "int4" and again.precision_forbidden is None


def test_goal_new_fields_are_bounded_and_described_in_the_schema() -> None:
    props = Goal.model_json_schema()["properties"]
    for name in (
        "min_size_reduction_mb",
        "max_memory_mb",
        "min_metric",
        "min_metric_ratio",
        "max_latency_ratio",
        "max_latency_increase_ms",
        "min_latency_reduction_ms",
    ):
        number = next(arm for arm in props[name]["anyOf"] if arm.get("type") == "number")
        assert {"minimum", "exclusiveMinimum"} & set(number), name
        assert {"maximum", "exclusiveMaximum"} & set(number), name
        assert len(props[name]["description"]) > 30, name
    for name in ("precision_forbidden", "keep_float_layers", "methods_fallback", "readings"):
        assert props[name]["description"], name
