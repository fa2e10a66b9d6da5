"""A corpus of real models nobody here trained, each with data built from packages (never downloaded).

Every case is a model file, calibration inputs and evaluation data (labels and a task metric where the package
gives a way to make them; otherwise no labels, and the sweep scores fidelity to the original by the kind of
output). From the base install: the zoo's digits-cnn, ppocr-rec and minilm-l6, and rapidocr-onnxruntime's PP-OCR
text detector and angle classifier; from the lock's ``corpus`` extra (``make venv`` installs it): silero-vad (+ Debian
pocketsphinx-testdata for speech), ddddocr (+ captcha), nudenet (YOLOv8n). A case whose package or data is missing
on a machine is skipped with a clear message saying what to install (:class:`CorpusSkip`).

Used by ``evals/bench_corpus.py`` and by a small test subset (tests/evals).
"""

from __future__ import annotations

import importlib.util
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optimizer.measure.data import save_data

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


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


_VAD_FRAME = 512  # new samples per call at 16 kHz (silero_vad's OnnxWrapper)
_VAD_CONTEXT = 64  # the previous call's last samples, prepended: the model's input is 576 samples
# a frame is speech when its RMS reaches this share of its utterance's loud frames (p90)
_VAD_SPEECH_RMS = 0.25


def _silero_vad(out: Path) -> CorpusCase:
    """Silero VAD v6 (16 kHz, opset 15) on the real utterances of Debian's pocketsphinx-testdata, each padded with
    1 s of silence on both sides and mixed with faint white noise, cut into the 512-sample frames the model
    streams over.

    The model is recurrent: its ``state`` input carries what it heard before, and on a frame fed with a zero state
    it reads speech barely better than a coin (55% here). So the clips are streamed once through the fp32 model,
    as silero_vad's own ``OnnxWrapper`` does (state and 64 samples of context carried from call to call), and each
    sample is one call: the 576-sample window and the state that entered it. A candidate thus reads each frame
    from the original's state (the error of one step, not its accumulation over a clip).

    Labels come from how the clip was made: 1 for a frame inside the utterance whose RMS reaches
    ``_VAD_SPEECH_RMS`` of the utterance's loud frames, 0 for a frame wholly in the padding; the frames between
    (quiet stretches inside an utterance, frames across its edges) are left out rather than guessed. Every other
    labelled frame is evaluated (653 frames, 345 of speech; the fp32 model reads 99.7% of them right), and
    calibration takes 64 windows from the rest.
    """
    pkg = _package_dir("silero_vad", "silero-vad")
    root = Path("/usr/share/pocketsphinx")
    wavs = sorted(root.rglob("*.wav")) if root.exists() else []
    if not wavs:
        raise CorpusSkip(
            "silero-vad is installed but no labelled speech is: `apt-get install pocketsphinx-testdata`"
        )
    import wave

    import onnxruntime as ort

    model = out / "model.onnx"
    shutil.copyfile(pkg / "data" / "silero_vad_16k_op15.onnx", model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # ~1700 tiny calls: threads only cost here
    session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    sr = np.array(16000, np.int64)
    rng = np.random.default_rng(3)
    windows, states, labels = [], [], []
    for w in wavs:
        with wave.open(str(w)) as f:
            audio = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float32) / 32768.0
        pad = np.zeros(16000, np.float32)
        clip = np.concatenate([pad, audio, pad])
        clip = clip + rng.normal(0, 0.01, clip.shape).astype(np.float32)
        first, last = pad.shape[0], pad.shape[0] + audio.shape[0]
        loud = float(
            np.percentile([_rms(audio[i : i + _VAD_FRAME]) for i in range(0, audio.shape[0], _VAD_FRAME)], 90)
        )
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(_VAD_CONTEXT, np.float32)
        for start in range(0, clip.shape[0] - _VAD_FRAME + 1, _VAD_FRAME):
            stop = start + _VAD_FRAME
            window = np.concatenate([context, clip[start:stop]])
            label = -1
            if first <= start and stop <= last:
                label = 1 if _rms(audio[start - first : stop - first]) >= _VAD_SPEECH_RMS * loud else -1
            elif stop <= first or start >= last:
                label = 0
            windows.append(window)
            states.append(state[:, 0])
            labels.append(label)
            _, state = session.run(None, {"input": window[None], "state": state, "sr": sr})
            context = window[-_VAD_CONTEXT:]
    y = np.asarray(labels, np.int64)
    x, st = np.stack(windows), np.stack(states)
    labelled = np.flatnonzero(y >= 0)
    chosen = labelled[::2]
    rest = np.setdiff1d(np.arange(y.shape[0]), chosen)
    calib_idx = np.random.default_rng(4).choice(rest, size=min(64, rest.shape[0]), replace=False)
    return CorpusCase(
        "silero-vad",
        model,
        save_data(
            out / "eval.npz",
            {"input": x[chosen], "state": st[chosen], "sr": sr},
            y[chosen],
            metric="top1",
        ),
        save_data(out / "calib.npz", {"input": x[calib_idx], "state": st[calib_idx], "sr": sr}),
        "Silero VAD v6 (LSTM; inputs input [B,576], state [2,B,128], sr int64 scalar; output one speech "
        "probability) on pocketsphinx speech + noise, each frame with the state streamed to it: top-1",
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


# ddddocr's captcha style: captcha's own renderer (its DroidSansMono font, noise dots and curve, warp), made
# readable enough that exact match measures reading rather than guessing. With captcha's defaults (characters
# rotated +-30 degrees, overlapping, random spaces) and digits + lowercase, ddddocr's fp32 model read 12 of 100
# exactly (CER 0.45): it confuses 1/l/7 and 0/o, and the case of c, s, v, w, x, z, k, p, u. Rotation +-10, no
# overlap and no inserted spaces, on an alphabet without those look-alikes, it read 79 of 100 (CER 0.06); on the
# 64 images of this case, 55 (exact match 0.859, CER 0.028), its misses mostly an upper-case n or e, or a dropped r.
_CAPTCHA_ALPHABET = "23456789abdefhnrt"
_CAPTCHA_STYLE: dict[str, object] = {
    "character_rotate": (-10, 10),
    "word_space_probability": 1.0,  # captcha inserts a space before a character when a draw exceeds this
    "word_offset_dx": 0.0,  # no overlap between neighbouring characters
}
_DDDDOCR_HEIGHT = 64


def _captchas(n: int, seed: int) -> tuple[list[str], list[PILImage]]:
    """``n`` captcha images of 4-6 characters and their texts, the same for the same seed.

    captcha 0.7 draws every random choice from the ``secrets`` module (``randbelow``, ``randbits``, ``choice``),
    which cannot be seeded: for the duration of the rendering its module global ``captcha.image.secrets`` is
    swapped for an object with the same three functions taken from one seeded ``random.Random``, then restored.
    The texts are drawn from that same generator. (Not thread-safe: the swap is process-wide.)
    """
    import types

    import captcha.image as captcha_image

    r = random.Random(seed)
    style = type("CorpusCaptcha", (captcha_image.ImageCaptcha,), dict(_CAPTCHA_STYLE))
    renderer = style()  # 160 x 60, captcha's default size
    saved = captcha_image.secrets
    captcha_image.secrets = types.SimpleNamespace(  # type: ignore[assignment]
        randbelow=r.randrange, randbits=r.getrandbits, choice=r.choice
    )
    try:
        texts = ["".join(r.choice(_CAPTCHA_ALPHABET) for _ in range(r.randint(4, 6))) for _ in range(n)]
        images = [renderer.generate_image(t) for t in texts]
    finally:
        captcha_image.secrets = saved
    return texts, images


def ddddocr_preprocess(image: PILImage) -> np.ndarray:
    """One image as ddddocr 1.6's ``OCREngine`` feeds its bundled models: resized (LANCZOS, in colour) to height
    64 with the width scaled by the same factor, then greyscale, /255, as [1, 64, W] float32."""
    from PIL.Image import Resampling

    width = int(image.size[0] * (_DDDDOCR_HEIGHT / image.size[1]))
    grey = image.resize((width, _DDDDOCR_HEIGHT), Resampling.LANCZOS).convert("L")
    return (np.asarray(grey, np.float32) / 255.0)[None]


def _ddddocr(out: Path, samples: int = 64, calib_samples: int = 32) -> CorpusCase:
    """ddddocr's fp32 recogniser ``common.onnx`` (what ``DdddOcr(beta=True)`` runs; the default ``DdddOcr()``
    runs the int8 ``common_old.onnx``) on seeded captchas, scored by exact match against the rendered text.

    The model is copied unchanged: input ``input1`` [1, 1, 64, W] (batch fixed at 1), output time-major CTC
    logits [T, 1, 8210] (declared [1, seqlen]); the classes are ddddocr's beta charset (class 0 the blank ""),
    stored in the data file as ``meta__charset``. Captchas are 160 x 60, so W = 170 for every image.
    """
    pkg = _package_dir("ddddocr", "ddddocr")
    _package_dir("captcha", "captcha")
    from ddddocr.charsets import CHARSET_BETA

    model = out / "model.onnx"
    shutil.copyfile(pkg / "common.onnx", model)
    texts, images = _captchas(samples, seed=12)
    _, calib_images = _captchas(calib_samples, seed=13)
    return CorpusCase(
        "ddddocr",
        model,
        save_data(
            out / "eval.npz",
            {"input1": np.stack([ddddocr_preprocess(i) for i in images])},
            np.asarray(texts),
            metric="ctc_exact_match",
            meta={"charset": np.asarray(CHARSET_BETA)},
        ),
        save_data(out / "calib.npz", {"input1": np.stack([ddddocr_preprocess(i) for i in calib_images])}),
        "ddddocr common.onnx (CTC captcha recogniser, LSTM, time-major output, 8210 classes) on seeded "
        "captcha images: exact match",
    )


def _portrait_views(n: int, seed: int) -> list[np.ndarray]:
    """``n`` views of the one photograph of a person that ships offline (matplotlib's sample Grace Hopper portrait):
    random crops of 60-100% of it, half mirrored, brightness 0.7-1.3, as RGB uint8 arrays."""
    import matplotlib
    from PIL import Image, ImageEnhance, ImageOps

    sample = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    photo = Image.open(sample).convert("RGB")
    r = random.Random(seed)
    views = []
    for _ in range(n):
        w, h = photo.size
        s = r.uniform(0.6, 1.0)
        cw, ch = int(w * s), min(h, int(h * s * r.uniform(0.8, 1.2)))
        x0, y0 = r.randint(0, w - cw), r.randint(0, h - ch)
        view = photo.crop((x0, y0, x0 + cw, y0 + ch))
        if r.random() < 0.5:
            view = ImageOps.mirror(view)
        views.append(np.asarray(ImageEnhance.Brightness(view).enhance(r.uniform(0.7, 1.3))))
    return views


def nudenet_preprocess(rgb: np.ndarray, size: int = 320) -> np.ndarray:
    """One RGB image as nudenet 3.4's ``NudeDetector.detect`` feeds its model a file it reads: padded with black at
    the bottom and right to a square, resized to ``size`` (bilinear, as cv2.dnn.blobFromImage), /255, [3, size,
    size] with the planes in B, G, R order (it reads BGR with cv2, swaps red and blue with ``COLOR_RGBA2BGR``, and
    ``blobFromImage(swapRB=True)`` swaps them back)."""
    import cv2

    side = max(rgb.shape[:2])
    square = cv2.copyMakeBorder(
        rgb, 0, side - rgb.shape[0], 0, side - rgb.shape[1], cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[:, :, ::-1].astype(np.float32).transpose(2, 0, 1) / 255.0)


def _nudenet(out: Path) -> CorpusCase:
    """NudeNet's YOLOv8n detector (320 x 320) on views of a portrait, where it finds a face (FACE_FEMALE, scores
    0.4-0.7), and on text pages, where it must find nothing. No labels: the metric is the F1 of a candidate's
    boxes against the original's. (Text pages alone, as this case once had, gave the original no box at all, so
    a candidate that found nothing anywhere scored a perfect 1.0.)"""
    pkg = _package_dir("nudenet", "nudenet")
    model = out / "model.onnx"
    shutil.copyfile(pkg / "320n.onnx", model)
    r = random.Random(9)
    pages = [np.repeat(_page(r, 320, 320)[:1], 3, axis=0) * 0.5 + 0.5 for _ in range(4)]
    imgs = np.stack([*(nudenet_preprocess(v) for v in _portrait_views(12, seed=9)), *pages]).astype(
        np.float32
    )
    calib = np.stack([nudenet_preprocess(v) for v in _portrait_views(8, seed=10)]).astype(np.float32)
    return CorpusCase(
        "nudenet-yolov8n",
        model,
        save_data(out / "eval.npz", {"images": imgs}),
        save_data(out / "calib.npz", {"images": calib}),
        "YOLOv8n detector head [1, 4 + C, anchors] on portrait views and text pages: box agreement (fidelity)",
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
