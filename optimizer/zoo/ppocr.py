"""Zoo case ``ppocr-rec``: the PP-OCRv4 text-line recogniser shipped in ``rapidocr-onnxruntime``.

Model: ``rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx`` copied unchanged (Paddle2ONNX, opset 12,
weights in ``Constant`` nodes: moving them to initializers is the optimizer's pre-processing job). Input ``x``
[N,3,48,W], output [N,W/8,6625] CTC probabilities. The width is fixed here to ``WIDTH`` = 320 (rapidocr's
default ``rec_img_shape``), giving 40 time steps.

Classes: ``['blank'] + metadata_props['character'].splitlines() + [' ']`` - exactly what rapidocr's
``CTCLabelDecode`` builds (blank at 0, a space appended last); stored as ``meta__charset``.

Data: text lines rendered with PIL and matplotlib's DejaVu fonts - words from a fixed list, prices, dates,
codes and word-number tags, 5-25 characters - dark text (grey 0-70) on a light background (grey
195-255), font size 22-36 px, six font faces, tight 1-4 px margins, a slight Gaussian blur on half the lines.
Codes avoid the look-alike pairs O/0 and I/1, no word starts with a capital I (read as l), and a space only
ever separates two words: the model drops most spaces between a number and a word ("15:07 market" reads
"15:07market"), which would make the metric measure spacing rather than reading.

Preprocessing follows rapidocr's ``TextRecognizer.resize_norm_img``: resize to height 48 keeping the aspect
ratio (squeezed to 320 when wider), ``(x/255 - 0.5) / 0.5``, pad right with zeros. The lines are grey, so
rapidocr's BGR channel order does not matter. ``eval.npz``: ``EVAL_LINES`` lines (seed 1) with their strings
as labels, metric ``ctc_exact_match``; ``calib.npz``: ``CALIB_LINES`` other lines (seed 2).
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.measure.data import save_data
from optimizer.zoo import CALIB_FILE, EVAL_FILE, MODEL_FILE, BuildResult

HEIGHT = 48
WIDTH = 320
EVAL_LINES = 200
CALIB_LINES = 64
EVAL_SEED = 1
CALIB_SEED = 2
INPUT_NAME = "x"
SOURCE_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
)
_WORD_TEXT = """
apple river orange market window coffee garden silver planet yellow number office ticket museum doctor summer
winter bridge camera letter people street station dinner kitchen travel weather energy system report water paper
music forest island morning evening school table chair bottle village castle engine rocket pencil button basket
candle mirror pocket jacket harbor valley meadow thunder shadow bright quiet simple little golden purple silent
gentle happy modern ancient public private total invoice order amount balance delivery address phone email
service account payment receipt customer product
"""
WORDS = tuple(_WORD_TEXT.split())
CAPITALIZABLE = tuple(w for w in WORDS if not w.startswith("i"))  # a capital I reads as l
CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0, I/1


def source_model_path() -> Path:
    """The recogniser file inside the installed rapidocr-onnxruntime package."""
    import importlib.util

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("rapidocr-onnxruntime is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / SOURCE_MODEL


def charset(model_path: Path) -> list[str]:
    """The CTC class list of the model: ``['blank'] + characters + [' ']`` (as rapidocr decodes it)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ValueError(f"{model_path} has no `character` metadata")
    return ["blank", *meta["character"].splitlines(), " "]


def _words(r: random.Random, lo: int, hi: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))


def random_text(r: random.Random) -> str:
    """One line of 5-25 characters drawn from a few realistic kinds."""
    while True:
        kind = r.randrange(8)
        if kind == 0:
            s = _words(r, 1, 2)
        elif kind == 1:
            s = _words(r, 3, 4)
        elif kind == 2:
            s = f"${r.randint(1, 9999)}.{r.randint(0, 99):02d}"
        elif kind == 3:
            s = f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1990, 2030)}"
        elif kind == 4:
            s = f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        elif kind == 5:
            s = "".join(r.choice(CODE_CHARS) for _ in range(r.randint(5, 14)))
        elif kind == 6:
            s = f"{r.choice(WORDS)}-{r.randint(10, 99999)}"
        else:
            s = f"{r.choice(CAPITALIZABLE).capitalize()} {r.choice(WORDS)}"
        if 5 <= len(s) <= 25:
            return s


def render_line(text: str, r: random.Random) -> Any:
    """``text`` rendered as a tightly cropped greyscale PIL image."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font_dir = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    font = ImageFont.truetype(str(font_dir / r.choice(FONTS)), r.randint(22, 36))
    left, top, right, bottom = font.getbbox(text)
    pad = r.randint(1, 4)
    background, ink = r.randint(195, 255), r.randint(0, 70)
    size = (math.ceil(right - left) + 2 * pad, math.ceil(bottom - top) + 2 * pad)
    img = Image.new("L", size, background)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=ink)
    if r.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.3, 1.0)))
    return img


def preprocess(img: Any, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """rapidocr's recogniser preprocessing for one greyscale PIL image -> float32 [3, height, width]."""
    from PIL import Image

    w, h = img.size
    resized_w = min(width, math.ceil(height * w / h))
    a = np.asarray(img.convert("L").resize((resized_w, height), Image.Resampling.BILINEAR), dtype=np.float32)
    a = (a / 255.0 - 0.5) / 0.5
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = a[None]
    return out


def make_lines(n: int, seed: int, exclude: set[str] | None = None) -> tuple[list[str], list[Any]]:
    """``n`` distinct random strings (none in ``exclude``) and their images, reproducible from ``seed``."""
    r = random.Random(seed)
    texts: list[str] = []
    seen = set(exclude or ())
    while len(texts) < n:
        t = random_text(r)
        if t not in seen:
            seen.add(t)
            texts.append(t)
    return texts, [render_line(t, r) for t in texts]


def build(out: Path) -> BuildResult:
    """Copy the recogniser and render the evaluation and calibration lines into ``out``.

    Raises:
        ImportError, OSError, ValueError: rapidocr-onnxruntime, PIL or the fonts are missing (the caller
            wraps them).
    """
    src = source_model_path()
    shutil.copyfile(src, out / MODEL_FILE)
    classes = charset(out / MODEL_FILE)
    eval_texts, eval_imgs = make_lines(EVAL_LINES, EVAL_SEED)
    _, calib_imgs = make_lines(CALIB_LINES, CALIB_SEED, exclude=set(eval_texts))
    save_data(
        out / EVAL_FILE,
        {INPUT_NAME: np.stack([preprocess(i) for i in eval_imgs])},
        np.asarray(eval_texts),
        metric="ctc_exact_match",
        meta={"charset": np.asarray(classes)},
    )
    save_data(out / CALIB_FILE, {INPUT_NAME: np.stack([preprocess(i) for i in calib_imgs])})
    return BuildResult(
        notes={
            "source": str(src),
            "width": WIDTH,
            "classes": len(classes),
            "eval_lines": EVAL_LINES,
            "calib_lines": CALIB_LINES,
        }
    )
