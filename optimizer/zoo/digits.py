"""Zoo case ``digits-cnn``: a small CNN trained at build time on scikit-learn's 8x8 digits.

Data: ``load_digits()`` (1,797 images, 10 classes), pixels scaled from 0..16 to 0..1, shaped [N,1,8,8];
a stratified 80/20 split with a fixed seed gives 1,437 training and 360 test images. Training: 20 epochs of
Adam with a one-cycle learning rate (peak 0.01), batch 32, seed 0, one torch thread (2-5 s, 98-99% test
accuracy).

Files: ``model.onnx`` (input ``input`` [N,1,8,8] float32, output ``logits`` [N,10], dynamic batch),
``calib.npz`` (the first 200 training images, no labels), ``eval.npz`` (the test split, metric ``top1``),
``train.npz`` (the training split with labels) and ``digits_cnn.pt`` (the state_dict of :class:`DigitsCNN`,
loadable with ``torch.load(path, weights_only=True)``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from optimizer.measure.data import save_data
from optimizer.models.convert import torch_to_onnx
from optimizer.zoo import CALIB_FILE, EVAL_FILE, MODEL_FILE, BuildResult

STATE_DICT_FILE = "digits_cnn.pt"
TRAIN_FILE = "train.npz"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
SEED = 0
EPOCHS = 20
BATCH = 32
CALIB_SAMPLES = 200
PEAK_LR = 1e-2


class DigitsCNN(nn.Module):
    """Three 3x3 conv layers (16, 32, 64 channels) with two max-pools and a linear head: 25,866 parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.classifier = nn.Linear(64 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed split ``(x_train, y_train, x_test, y_test)``; images are float32 [N,1,8,8] in 0..1."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    return x_tr, y_tr, x_te, y_te


def train(x: np.ndarray, y: np.ndarray, *, epochs: int = EPOCHS, seed: int = SEED) -> DigitsCNN:
    """Train a fresh :class:`DigitsCNN` on ``x`` [N,1,8,8], ``y`` [N] (deterministic for a given seed).

    Runs on one thread: batches this small gain nothing from more, and on a busy machine two torch threads
    were 4x slower than one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, y, epochs=epochs, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _one_cycle(step: int, total: int, peak: float) -> float:
    """One-cycle learning rate: cosine warm-up from peak/25 over the first 30% of steps, cosine decay to ~0."""
    warm = max(1, int(0.3 * total))
    if step < warm:
        lo, hi, frac = peak / 25, peak, step / warm
    else:
        lo, hi, frac = peak, peak / 1e4, (step - warm) / max(1, total - warm)
    return hi + (lo - hi) * (1 + math.cos(math.pi * frac)) / 2


def _train(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> DigitsCNN:
    # Adam written out: constructing any torch.optim optimizer imports torch's compiler stack (5-9 s here)
    torch.manual_seed(seed)
    model = DigitsCNN()
    params = list(model.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    total = epochs * ((len(x) + BATCH - 1) // BATCH)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    step = 0
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            model.zero_grad(set_to_none=False)
            loss.backward()
            step += 1
            lr = _one_cycle(step - 1, total, PEAK_LR)
            with torch.no_grad():
                for p, a, b in zip(params, m1, m2, strict=True):
                    g = p.grad
                    assert g is not None
                    a.mul_(beta1).add_(g, alpha=1 - beta1)
                    b.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    a_hat = a / (1 - beta1**step)
                    b_hat = b / (1 - beta2**step)
                    p.sub_(lr * a_hat / (b_hat.sqrt() + eps))
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on ``x``, ``y``."""
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def build(out: Path) -> BuildResult:
    """Train, export and write the case files into ``out``.

    Raises:
        RuntimeError: the trained model misses the 95% test-accuracy floor.
    """
    x_tr, y_tr, x_te, y_te = load_split()
    model = train(x_tr, y_tr)
    acc = accuracy(model, x_te, y_te)
    if acc < 0.95:
        raise RuntimeError(f"digits CNN reached only {acc:.3f} test accuracy (floor 0.95)")
    torch.save(model.state_dict(), out / STATE_DICT_FILE)
    torch_to_onnx(
        model,
        (torch.from_numpy(x_te[:2]),),
        out / MODEL_FILE,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    save_data(out / CALIB_FILE, {INPUT_NAME: x_tr[:CALIB_SAMPLES]})
    save_data(out / EVAL_FILE, {INPUT_NAME: x_te}, y_te, metric="top1")
    save_data(out / TRAIN_FILE, {INPUT_NAME: x_tr}, y_tr, metric="top1")
    return BuildResult(
        torch_source=STATE_DICT_FILE,
        train_path=TRAIN_FILE,
        notes={
            "torch_test_accuracy": round(acc, 4),
            "train_samples": len(x_tr),
            "eval_samples": len(x_te),
            "params": sum(p.numel() for p in model.parameters()),
        },
    )
