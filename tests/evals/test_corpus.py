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


@pytest.mark.parametrize(
    ("case", "module"), [("silero-vad", "silero_vad"), ("ddddocr", "captcha"), ("nudenet-yolov8n", "nudenet")]
)
def test_corpus_case_whose_package_is_missing_is_skipped_with_what_to_install(
    case: str, module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    # the corpus packages are installed by `make venv`: hide one to see what a machine without it is told
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )

    with pytest.raises(CorpusSkip, match=f"pip install {module.replace('_', '-')}"):
        build_case(case, tmp_path)
    assert set(BUILDERS) >= {"digits-cnn", "ppocr-rec", "minilm-l6", "ppocr-det", "ppocr-cls", case}


def test_corpus_detector_without_labels_is_scored_by_map_fidelity(tmp_path: Path) -> None:
    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.models.inspect import inspect_model

    case = build_case("ppocr-det", tmp_path)
    data = load_data(case.eval_path, inspect_model(case.model_path).inputs).head(2)
    metrics, _ = evaluate_model(case.model_path, data, as_reference=True, latency_runs=0)
    assert metrics.metric_name == "cosine" and metrics.metric == pytest.approx(1.0)
    assert metrics.metric_note and "map" in metrics.metric_note


# --------------------------------------------------------------------------- ddddocr (real files, a few seconds each)

DDDDOCR_EXACT_MATCH = 0.859  # measured: 55 of the 64 seeded captchas read exactly by common.onnx


def test_corpus_ddddocr_case_is_read_well_by_its_fp32_model_and_reproduces(tmp_path: Path) -> None:
    pytest.importorskip("ddddocr")
    pytest.importorskip("captcha")
    import numpy as np

    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.models.inspect import inspect_model

    case = build_case("ddddocr", tmp_path / "a")
    info = inspect_model(case.model_path)
    data = load_data(case.eval_path, info.inputs)
    calib = load_data(case.calib_path, info.inputs)

    metrics, _ = evaluate_model(case.model_path, data, latency_runs=0, as_reference=True)

    assert not info.quantized and info.size_bytes > 50e6
    assert data.inputs["input1"].shape == (64, 1, 64, 170) and calib.samples == 32 and calib.labels is None
    assert data.labels is not None and all(4 <= len(t) <= 6 for t in data.labels.tolist())
    assert metrics.metric_name == "ctc_exact_match"
    assert metrics.metric is not None and metrics.metric >= DDDDOCR_EXACT_MATCH - 0.1
    again = load_data(build_case("ddddocr", tmp_path / "b").eval_path, info.inputs)
    np.testing.assert_array_equal(again.inputs["input1"], data.inputs["input1"])
    assert again.labels is not None and again.labels.tolist() == data.labels.tolist()


def test_corpus_ddddocr_decoding_agrees_with_ddddocrs_own_classification(tmp_path: Path) -> None:
    ddddocr = pytest.importorskip("ddddocr")
    pytest.importorskip("captcha")
    import numpy as np

    from evals.corpus import _captchas, ddddocr_preprocess
    from optimizer.measure.data import load_data, save_data
    from optimizer.measure.evaluate import make_session, run_model
    from optimizer.measure.metrics import ctc_greedy_decode
    from optimizer.models.inspect import inspect_model

    case = build_case("ddddocr", tmp_path)
    texts, images = _captchas(6, seed=21)
    ocr = ddddocr.DdddOcr(beta=True, show_ad=False)  # the configuration that runs common.onnx
    theirs = [ocr.classification(img) for img in images]
    x = np.stack([ddddocr_preprocess(img) for img in images])
    data = load_data(save_data(tmp_path / "six.npz", {"input1": x}), inspect_model(case.model_path).inputs)
    charset = [str(c) for c in np.load(case.eval_path)["meta__charset"].tolist()]

    ours = ctc_greedy_decode(run_model(make_session(case.model_path), data)[0], charset)

    for img, row in zip(images, x, strict=True):  # the same preprocessing, to the bit
        np.testing.assert_array_equal(ocr.ocr_engine._preprocess_image(img, False)[0], row)
    assert ours == theirs
    assert sum(a == b for a, b in zip(ours, texts, strict=True)) >= 3  # and they are readings, not noise


def test_corpus_ddddocr_int8_sibling_is_detected_and_refused(
    quanttaas_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ddddocr")
    import numpy as np

    from evals.corpus import _package_dir
    from optimizer.cli import EXIT_ERROR
    from optimizer.measure.data import save_data
    from quanttaas.cli import main

    old = _package_dir("ddddocr", "ddddocr") / "common_old.onnx"  # what DdddOcr() runs by default
    x = np.random.default_rng(0).random((2, 1, 64, 170), dtype=np.float32)
    data = save_data(tmp_path / "d.npz", {"input1": x})

    assert main(["inspect", str(old)]) == 0
    assert "already quantized: yes" in capsys.readouterr().out
    rc = main(
        [
            "optimize",
            str(old),
            "--data",
            str(data),
            "--goal",
            "under 5 MB",
            "--out",
            str(tmp_path / "o"),
            "--serial",
        ]
    )
    err = capsys.readouterr().err
    assert rc == EXIT_ERROR
    assert "[recipe_invalid]" in err and "common_old.onnx is already quantized" in err
    assert "ConvInteger" in err and "DynamicQuantizeLSTM" in err and "float model" in err
    assert not (tmp_path / "o" / "report.json").exists()
    rc = main(
        [
            "quantize",
            str(old),
            "--recipe",
            "static-int8",
            "--calib",
            str(data),
            "-o",
            str(tmp_path / "q.onnx"),
        ]
    )
    assert rc == EXIT_ERROR and "already quantized" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()


# --------------------------------------------------------------------------- Silero VAD and NudeNet


def test_corpus_silero_vad_frames_are_read_far_above_chance(tmp_path: Path) -> None:
    pytest.importorskip("silero_vad")
    if not Path("/usr/share/pocketsphinx").exists():
        pytest.skip("Debian pocketsphinx-testdata (the speech) is not installed")
    import numpy as np

    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.models.inspect import inspect_model

    case = build_case("silero-vad", tmp_path)
    data = load_data(case.eval_path, inspect_model(case.model_path).inputs)

    metrics, _ = evaluate_model(case.model_path, data, latency_runs=0, as_reference=True)

    assert data.labels is not None
    share = float(np.mean(data.labels))
    assert 0.35 < share < 0.65, share  # both classes well represented: chance is about 0.5
    assert (
        metrics.metric_name == "top1" and metrics.metric is not None and metrics.metric >= 0.95
    )  # 0.997 measured


def test_corpus_nudenet_original_finds_boxes_so_box_agreement_can_fail(tmp_path: Path) -> None:
    pytest.importorskip("nudenet")
    import numpy as np

    from optimizer.measure.data import load_data
    from optimizer.measure.evaluate import evaluate_model
    from optimizer.measure.metrics import MetricInput, box_agreement

    case = build_case("nudenet-yolov8n", tmp_path)
    from optimizer.models.inspect import inspect_model

    data = load_data(case.eval_path, inspect_model(case.model_path).inputs)

    metrics, ref = evaluate_model(case.model_path, data, latency_runs=0, as_reference=True, keep_outputs=True)

    assert metrics.metric_name == "box_agreement" and metrics.metric == pytest.approx(1.0)
    assert ref is not None
    blind = [np.zeros_like(ref[0])]  # a candidate that finds nothing anywhere
    assert box_agreement(MetricInput(blind, None, {}, data.inputs, reference_outputs=ref)) < 0.5
