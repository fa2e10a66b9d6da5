"""A small subset of the corpus benchmark (evals/bench_corpus.py) in the suite: real models nobody here trained,
the recommendation against onnxruntime's one-liners measured side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.bench_corpus import GOALS, bench_model, verdict
from evals.corpus import BUILDERS, CorpusSkip, build_case
from optimizer.search.sweep import SweepOptions

FAST = SweepOptions(executor="serial", latency_runs=10, remeasure_runs=20, max_selective=4)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "goals"), [("digits-cnn", ["size", "speed"]), ("ppocr-cls", ["size"])])
def test_corpus_recommendation_is_at_least_as_good_as_the_one_liner(
    model: str, goals: list[str], tmp_path: Path
) -> None:
    rows = bench_model(model, tmp_path, goals, workers=1, options=FAST)
    assert [r.goal for r in rows] == goals
    for r in rows:
        assert set(r.one_liners) == {"ort_dynamic_default", "ort_static_default"}
        assert r.verdict == "PASS", (r.model, r.goal, r.verdict, r.reason)
        assert r.verdict == verdict(r, GOALS[r.goal])


def test_corpus_case_whose_package_is_missing_is_skipped_with_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    missing = [
        n
        for n, mod in (("silero-vad", "silero_vad"), ("ddddocr", "ddddocr"), ("nudenet-yolov8n", "nudenet"))
        if importlib.util.find_spec(mod) is None
    ]
    if not missing:
        pytest.skip("every optional corpus package is installed here")
    with pytest.raises(CorpusSkip, match="pip install"):
        build_case(missing[0], tmp_path)
    assert set(BUILDERS) >= {"digits-cnn", "ppocr-rec", "minilm-l6", "ppocr-det", "ppocr-cls"}


def test_corpus_detector_without_labels_is_scored_by_map_fidelity(tmp_path: Path) -> None:
    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.models.inspect import inspect_model

    case = build_case("ppocr-det", tmp_path)
    data = load_data(case.eval_path, inspect_model(case.model_path).inputs).head(2)
    metrics, _ = evaluate_model(case.model_path, data, as_reference=True, latency_runs=0)
    assert metrics.metric_name == "cosine" and metrics.metric == pytest.approx(1.0)
    assert metrics.metric_note and "map" in metrics.metric_note
