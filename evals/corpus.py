"""A corpus of real models nobody here trained, each with data built from packages (never downloaded).

Every case is a model file, calibration inputs and evaluation data (labels and a task metric where the package
gives a way to make them; otherwise no labels, and the sweep scores fidelity to the original by the kind of
output). A case whose package is not installed is skipped with a clear message (:class:`CorpusSkip`): the
project adds no dependency for its corpus. Installed here: the zoo's digits-cnn, ppocr-rec and minilm-l6, and
rapidocr-onnxruntime's PP-OCR text detector and angle classifier. Optional: silero-vad (+ Debian
pocketsphinx-testdata for speech), ddddocr (+ captcha), nudenet (YOLOv8n).

Used by ``evals/bench_corpus.py`` and by a small test subset (tests/evals).
"""

from __future__ import annotations

import importlib.util
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizer.measure.data import save_data


class CorpusSkip(Exception):
    """A corpus case cannot be built here (its package is missing); the message says what to install."""


@dataclass(frozen=True)
class CorpusCase:
    name: str
    model_path: Path
    eval_path: Path
    calib_path: Path
    what: str


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusSkip(f"{module} is not installed: `pip install {install}` to add this case")
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------- zoo cases


def _zoo(name: str, lines: int | None = None) -> Callable[[Path], CorpusCase]:
    def build(out: Path) -> CorpusCase:
        from optimizer import zoo
        from optimizer.measure.data import load_data
        from optimizer.models.inspect import inspect_model

        case = zoo.get_zoo_case(name)
        eval_path = Path(case.eval_path)
        if lines is not None:
            data = load_data(case.eval_path, inspect_model(case.model_path).inputs).take(lines)
            eval_path = save_data(
                out / "eval.npz", data.inputs, data.labels, metric=data.metric, meta=data.meta
            )
        return CorpusCase(name, Path(case.model_path), eval_path, Path(case.calib_path), case.description)

    return build


# --------------------------------------------------------------------------- rapidocr: detector and classifier

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _page(r: random.Random, height: int, width: int) -> np.ndarray:
    """A light page with a few rendered text lines (DejaVu fonts), as rapidocr's detector preprocesses it:
    RGB scaled by ImageNet mean and std, CHW float32."""
    from PIL import Image

    from optimizer.zoo.ppocr import random_text, render_line

    page = Image.new("L", (width, height), r.randint(200, 255))
    y = r.randint(2, 12)
    while y < height - 30:
        line = render_line(random_text(r), r)
        if line.size[0] > width - 8:
            line = line.resize((width - 8, max(8, line.size[1] * (width - 8) // line.size[0])))
        page.paste(line, (r.randint(2, max(2, width - line.size[0] - 2)), y))
        y += line.size[1] + r.randint(6, 20)
    rgb = np.asarray(page.convert("RGB"), np.float32) / 255.0
    return np.ascontiguousarray(((rgb - _MEAN) / _STD).transpose(2, 0, 1))


def _ppocr_det(out: Path, samples: int = 12) -> CorpusCase:
    pkg = _package_dir("rapidocr_onnxruntime", "rapidocr-onnxruntime")
    model = out / "model.onnx"
    shutil.copyfile(pkg / "models" / "ch_PP-OCRv4_det_infer.onnx", model)
    r = random.Random(5)
    pages = np.stack([_page(r, 160, 320) for _ in range(samples)])
    calib = np.stack([_page(r, 160, 320) for _ in range(8)])
    # no labels: the sweep scores fidelity to the original probability map (chosen by the output's kind)
    return CorpusCase(
        "ppocr-det",
        model,
        save_data(out / "eval.npz", {"x": pages}),
        save_data(out / "calib.npz", {"x": calib}),
        "PP-OCRv4 text detector (DBNet, dynamic H and W): probability map, fidelity metric",
    )


def _cls_image(img: object, height: int = 48, width: int = 192) -> np.ndarray:
    from optimizer.zoo.ppocr import preprocess

    return preprocess(img, width=width, height=height)


def _ppocr_cls(out: Path, samples: int = 96) -> CorpusCase:
    from optimizer.zoo.ppocr import random_text, render_line

    pkg = _package_dir("rapidocr_onnxruntime", "rapidocr-onnxruntime")
    model = out / "model.onnx"
    shutil.copyfile(pkg / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx", model)
    r = random.Random(7)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i in range(n):
            img = render_line(random_text(r), r)
            flip = i % 2
            if flip:
                img = img.rotate(180, expand=True)
            xs.append(_cls_image(img))
            ys.append(flip)
        return np.stack(xs), np.asarray(ys, np.int64)

    x, y = make(samples)
    cx, _ = make(32)
    return CorpusCase(
        "ppocr-cls",
        model,
        save_data(out / "eval.npz", {"x": x}, y, metric="top1"),
        save_data(out / "calib.npz", {"x": cx}),
        "PP-OCR angle classifier (0 / 180 degrees) on rendered lines, half of them rotated: top-1",
    )


# --------------------------------------------------------------------------- optional packages


def _silero_vad(out: Path) -> CorpusCase:
    pkg = _package_dir("silero_vad", "silero-vad")
    root = Path("/usr/share/pocketsphinx")
    wavs = sorted(root.rglob("*.wav")) if root.exists() else []
    if not wavs:
        raise CorpusSkip(
            "silero-vad is installed but no labelled speech is: `apt-get install pocketsphinx-testdata`"
        )
    import wave

    model = out / "model.onnx"
    shutil.copyfile(pkg / "data" / "silero_vad_16k_op15.onnx", model)
    rng = np.random.default_rng(3)
    frames, labels = [], []
    for w in wavs[:13]:
        with wave.open(str(w)) as f:
            audio = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float32) / 32768.0
        pad = np.zeros(8000, np.float32)
        clip = np.concatenate([pad, audio, pad])
        clip = clip + rng.normal(0, 0.01, clip.shape).astype(np.float32)
        speech_span = (8000, 8000 + audio.shape[0])
        for start in range(0, clip.shape[0] - 576, 576 * 4):
            frames.append(clip[start : start + 576])
            labels.append(int(speech_span[0] <= start < speech_span[1]))
    x = np.stack(frames)
    n = x.shape[0]
    inputs = {"input": x, "state": np.zeros((n, 2, 128), np.float32), "sr": np.array(16000, np.int64)}
    calib = {k: (v[:64] if k != "sr" else v) for k, v in inputs.items()}
    return CorpusCase(
        "silero-vad",
        model,
        save_data(out / "eval.npz", inputs, np.asarray(labels, np.int64), metric="top1"),
        save_data(out / "calib.npz", calib),
        "Silero VAD v6 (LSTM; inputs input, state [2,B,128], sr int64 scalar) on pocketsphinx speech + noise",
    )


def _ddddocr(out: Path) -> CorpusCase:
    pkg = _package_dir("ddddocr", "ddddocr")
    _package_dir("captcha", "captcha")
    raise CorpusSkip(f"ddddocr found at {pkg}, but its captcha data builder is not written yet")


def _nudenet(out: Path) -> CorpusCase:
    pkg = _package_dir("nudenet", "nudenet")
    model = out / "model.onnx"
    shutil.copyfile(pkg / "320n.onnx", model)
    r = random.Random(9)
    imgs = np.stack([np.repeat(_page(r, 320, 320)[:1], 3, axis=0) * 0.5 + 0.5 for _ in range(8)])
    return CorpusCase(
        "nudenet-yolov8n",
        model,
        save_data(out / "eval.npz", {"images": imgs.astype(np.float32)}),
        save_data(out / "calib.npz", {"images": imgs[:4].astype(np.float32)}),
        "YOLOv8n detector head [1, 4 + C, anchors]: box agreement (fidelity)",
    )


BUILDERS: dict[str, Callable[[Path], CorpusCase]] = {
    "digits-cnn": _zoo("digits-cnn"),
    "ppocr-rec": _zoo("ppocr-rec", lines=48),
    "minilm-l6": _zoo("minilm-l6"),
    "ppocr-det": _ppocr_det,
    "ppocr-cls": _ppocr_cls,
    "silero-vad": _silero_vad,
    "ddddocr": _ddddocr,
    "nudenet-yolov8n": _nudenet,
}


def build_case(name: str, root: Path) -> CorpusCase:
    """Build corpus case ``name`` under ``root / name``.

    Raises:
        CorpusSkip: its package (or its data) is not installed.
        KeyError: no such case.
    """
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    return BUILDERS[name](out)


__all__ = ["BUILDERS", "CorpusCase", "CorpusSkip", "build_case"]
