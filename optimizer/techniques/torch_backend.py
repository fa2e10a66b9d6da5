"""The PyTorch side of QuantTaaS: load a :class:`~optimizer.types.TorchSource`, train briefly, count, export.

This module imports torch at the top. Only the torch recipes import it (``optimizer.techniques.prune`` inside its torch
functions, ``optimizer.techniques.qat``, ``optimizer.techniques.chain`` when a step needs torch), never ``import optimizer``.

Every torch path ends in an ONNX file that :func:`optimizer.measure.evaluate.evaluate_model` measures on onnxruntime,
so a pruned or QAT model is compared with the same numbers as every other candidate:

- float models (pruned or not) go through the TorchScript exporter, the one the zoo's models were exported with,
  so a size difference is the model's, not the exporter's (:func:`export_float`);
- quantized PT2E graphs (QAT, neural-compressor) go through ``torch.export`` and the dynamo exporter, which turns
  ``quantized_decomposed`` ops into QuantizeLinear/DequantizeLinear; the debug metadata it attaches to every node
  (stack traces, FX node text: more bytes than a small model's weights) is removed (:func:`export_pt2e`).
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import importlib
import logging
import math
import struct
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from optimizer.errors import DataError, ModelLoadError, TechniqueError
from optimizer.measure.data import Dataset, load_data
from optimizer.types import TensorInfo, TorchSource

log = logging.getLogger(__name__)

BATCH = 32
SEED = 0
MAX_BATCH_DIM = 65536

# --------------------------------------------------------------------------- loading


def load_module(src: TorchSource) -> nn.Module:
    """Build ``src.module(**src.kwargs)`` and load its state_dict (``weights_only=True``); returned in eval mode.

    Raises:
        ModelLoadError: the class cannot be imported or built, the file is missing or not a state_dict, or the
            state_dict does not fit the class.
    """
    mod_name, _, cls_name = src.module.partition(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(
            f"cannot import the PyTorch model class {src.module!r}: {e}",
            hint="give the class as 'package.module:ClassName', importable in this environment",
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelLoadError(f"{src.module!r} is not a torch.nn.Module class")
    try:
        module = cls(**src.kwargs)
    except TypeError as e:
        raise ModelLoadError(
            f"cannot build {src.module} with {src.kwargs}: {e}", hint="fix TorchSource.kwargs"
        ) from e
    path = Path(src.state_dict_path)
    if not path.is_file():
        raise ModelLoadError(f"state_dict file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(
            f"{path.name} is not a loadable state_dict: {e.__class__.__name__}: {str(e)[:200]}",
            hint="save it with torch.save(model.state_dict(), path); pickled code is refused (weights_only=True)",
        ) from e
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name} holds a {type(state).__name__}, not a state_dict")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ModelLoadError(
            f"the state_dict in {path.name} does not fit {src.module}: {str(e)[:300]}",
            hint="pass the constructor arguments the weights were trained with in TorchSource.kwargs",
        ) from e
    return module.eval()


def source_inputs(src: TorchSource) -> list[TensorInfo]:
    """The model inputs the source declares (float32, dynamic batch), to validate data files against."""
    return [
        TensorInfo(name=n, dtype="float32", shape=["batch", *shape])
        for n, shape in zip(src.input_names, src.input_shapes, strict=True)
    ]


def load_train_data(src: TorchSource) -> Dataset | None:
    """The training data of ``src`` (None when it has none).

    Raises:
        DataError: the file does not match the source's inputs.
    """
    if src.train_path is None:
        return None
    return load_data(src.train_path, source_inputs(src), metric="agreement")


def example_inputs(src: TorchSource, data: Dataset | None = None, n: int = 4) -> tuple[torch.Tensor, ...]:
    """``n`` samples of each input: the first of ``data`` when given (real values), else zeros.

    More than one sample, so ``torch.export`` keeps the batch axis dynamic rather than specialising it to 1.
    """
    if data is not None and all(name in data.inputs for name in src.input_names) and data.samples >= 2:
        k = min(n, data.samples)
        return tuple(
            torch.from_numpy(np.ascontiguousarray(data.inputs[name][:k])) for name in src.input_names
        )
    return tuple(torch.zeros((n, *shape), dtype=torch.float32) for shape in src.input_shapes)


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch on ``n`` threads: small batches gain nothing from more, and on a shared 2-core machine the
    default pool made training several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def first_output(out: Any) -> torch.Tensor:
    """The first tensor of a model's output (a tensor, or a tuple/list/dict of them)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TechniqueError(f"the model returned {type(out).__name__}; expected a tensor or a tuple of tensors")


# --------------------------------------------------------------------------- training


def _is_class_labels(labels: np.ndarray | None, out: torch.Tensor) -> bool:
    return (
        labels is not None
        and labels.ndim == 1
        and np.issubdtype(labels.dtype, np.integer)
        and out.ndim == 2
        and int(labels.max(initial=0)) < out.shape[1]
        and int(labels.min(initial=0)) >= 0
    )


def fit(
    module: nn.Module,
    data: Dataset,
    input_names: Sequence[str],
    *,
    epochs: int,
    lr: float,
    teacher: nn.Module | None = None,
    batch: int = BATCH,
    seed: int = SEED,
    train_mode: bool = True,
) -> dict[str, Any]:
    """Train ``module`` in place with Adam (cosine-decayed ``lr``) for ``epochs`` over ``data``.

    The loss is cross-entropy against ``data.labels`` when they are class ids for the first output; otherwise
    the mean squared error to the outputs of ``teacher`` (distillation from the original model). Adam is written
    out: constructing a ``torch.optim`` optimizer imports torch's compiler stack, seconds on these machines.
    ``train_mode=False`` leaves the module's mode alone (PT2E graphs are switched by the caller).

    Returns what was done: epochs, samples, steps, loss kind and the last epoch's mean loss.

    Raises:
        DataError: there are no class labels and no teacher to distil from.
    """
    xs = [torch.from_numpy(np.ascontiguousarray(data.inputs[n])) for n in input_names]
    with torch.no_grad():
        probe = first_output(module(*(x[:2] for x in xs)))
    use_ce = _is_class_labels(data.labels, probe)
    if not use_ce and teacher is None:
        raise DataError(
            "fine-tuning needs class labels for the first output, or the original model to distil from",
            hint="add integer `labels` (class ids) to the training .npz",
        )
    y = torch.from_numpy(np.asarray(data.labels, dtype=np.int64)) if use_ce else None
    params = [p for p in module.parameters() if p.requires_grad]
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = data.samples
    steps_per_epoch = max(1, math.ceil(n / batch))
    total = max(1, epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    if train_mode:
        module.train()
    step = 0
    epoch_loss = 0.0
    for _ in range(epochs):
        epoch_loss = 0.0
        for idx in torch.randperm(n, generator=gen).split(batch):
            out = first_output(module(*(x[idx] for x in xs)))
            if use_ce:
                assert y is not None
                loss = nn.functional.cross_entropy(out, y[idx])
            else:
                assert teacher is not None
                with torch.no_grad():
                    target = first_output(teacher(*(x[idx] for x in xs)))
                loss = nn.functional.mse_loss(out, target)
            for p in params:
                p.grad = None
            loss.backward()
            step += 1
            rate = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
            with torch.no_grad():
                for p, a, b in zip(params, m1, m2, strict=True):
                    g = p.grad
                    if g is None:
                        continue
                    a.mul_(beta1).add_(g, alpha=1 - beta1)
                    b.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    a_hat = a / (1 - beta1**step)
                    b_hat = b / (1 - beta2**step)
                    p.sub_(rate * a_hat / (b_hat.sqrt() + eps))
            epoch_loss += float(loss.detach()) * len(idx)
    if train_mode:
        module.eval()
    return {
        "epochs": epochs,
        "samples": n,
        "steps": step,
        "lr": lr,
        "loss": "cross_entropy" if use_ce else "distillation_mse",
        "final_loss": round(epoch_loss / max(n, 1), 6),
    }


def teacher_copy(module: nn.Module, data: Dataset | None) -> nn.Module | None:
    """A frozen copy of ``module`` to distil from, only when ``data`` has no class labels (else None)."""
    if data is None or (data.labels is not None and np.issubdtype(data.labels.dtype, np.integer)):
        return None
    teacher = copy.deepcopy(module).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


# --------------------------------------------------------------------------- counting


def count_params(module: nn.Module) -> int:
    """Parameters of ``module`` (every tensor registered as a parameter)."""
    return int(sum(p.numel() for p in module.parameters()))


def count_macs_params(module: nn.Module, example: tuple[torch.Tensor, ...]) -> tuple[int, int]:
    """(multiply-accumulates per sample, parameters), counted by torch-pruning's op counter."""
    import torch_pruning as tp

    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(module, example[:1] if len(example) == 1 else example)
    return int(macs), int(params)


# --------------------------------------------------------------------------- export


def export_float(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, src: TorchSource) -> Path:
    """Export a float module with the TorchScript exporter (dynamic batch), as the zoo models were.

    Raises:
        TechniqueError: the export failed.
    """
    from optimizer.models.convert import torch_to_onnx

    axes = {name: {0: "batch"} for name in (*src.input_names, *src.output_names)}
    try:
        torch_to_onnx(
            module.eval(),
            example,
            path,
            input_names=list(src.input_names),
            output_names=list(src.output_names),
            dynamic_axes=axes,
        )
    except Exception as e:
        raise TechniqueError(
            f"exporting the PyTorch model to ONNX failed: {e.__class__.__name__}: {str(e)[:300]}",
            hint="the pruned model must stay exportable with torch.onnx.export",
        ) from e
    return path


def batch_dims(example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
    """``dynamic_shapes`` for torch.export: axis 0 of every input is one shared dynamic batch dimension."""
    dim = torch.export.Dim("batch", min=1, max=MAX_BATCH_DIM)
    return tuple({0: dim} for _ in example)


def strip_debug_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop per-node metadata and doc strings (stack traces, FX node text) in place; the graph is unchanged."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    model.graph.doc_string = ""
    return model


def export_pt2e(graph_module: Any, example: tuple[torch.Tensor, ...], path: Path, src: TorchSource) -> Path:
    """Export a converted PT2E graph (quantize/dequantize ops) to ONNX QDQ with the dynamo exporter.

    Raises:
        TechniqueError: torch.export or the ONNX exporter failed.
    """
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_Sink()):
            warnings.simplefilter("ignore")
            program = torch.export.export(graph_module, example, dynamic_shapes=batch_dims(example))
            onnx_program = torch.onnx.export(
                program,
                example,
                dynamo=True,
                external_data=False,
                input_names=list(src.input_names),
                output_names=list(src.output_names),
                verbose=False,
            )
            if onnx_program is None:  # pragma: no cover - dynamo=True always returns a program
                raise TechniqueError("torch.onnx.export returned no program")
            model = onnx_program.model_proto
    except TechniqueError:
        raise
    except Exception as e:
        raise TechniqueError(
            f"exporting the quantized graph to ONNX failed: {e.__class__.__name__}: {str(e)[:300]}",
            hint="the PT2E graph holds an op the ONNX exporter cannot translate",
        ) from e
    onnx.save(strip_debug_info(model), str(path))
    return path


class _Sink:
    """A stdout that swallows the exporter's progress lines (they would corrupt ``--json`` output)."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


# --------------------------------------------------------------------------- a small CNN and Fashion-MNIST


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (conv, ReLU, 2x2 max-pool), a hidden linear layer and a linear head.

    For square images of ``image_size`` (a multiple of 4) with ``in_channels`` channels; used for the
    Fashion-MNIST tests and benchmark (about 110 K parameters at 28x28 with the defaults).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        side = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.hidden = nn.Linear(c2 * side * side, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(torch.flatten(self.features(x), 1))))


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def fashion_mnist_available(root: Path = FASHION_MNIST_DIR) -> bool:
    """True when the Debian package ``dataset-fashion-mnist`` (or a copy of its files) is at ``root``."""
    return all((root / f).is_file() for pair in _FASHION_FILES.values() for f in pair)


def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    """An IDX file (.gz or plain) as a uint8 array, its first ``limit`` items.

    Raises:
        DataError: not an unsigned-byte IDX file.
    """
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] != 0x08:
            raise DataError(f"{path.name} is not an unsigned-byte IDX file")
        ndim = head[3]
        dims = list(struct.unpack(f">{ndim}I", f.read(4 * ndim)))
        n = dims[0] if limit is None else min(dims[0], limit)
        per_item = int(np.prod(dims[1:])) if ndim > 1 else 1
        raw = f.read(n * per_item)
    return np.frombuffer(raw, dtype=np.uint8).reshape(n, *dims[1:])


def load_fashion_mnist(
    train_samples: int, test_samples: int, root: Path = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first ``train_samples``/``test_samples`` Fashion-MNIST images as float32 [N,1,28,28] in 0..1, and
    int64 labels: ``(x_train, y_train, x_test, y_test)``.

    Raises:
        DataError: the files are missing (install the Debian package ``dataset-fashion-mnist``) or malformed.
    """
    if not fashion_mnist_available(root):
        raise DataError(
            f"Fashion-MNIST is not installed at {root}",
            hint="apt-get install dataset-fashion-mnist (Debian), or copy the four IDX .gz files there",
        )
    out: list[np.ndarray] = []
    for split, n in (("train", train_samples), ("test", test_samples)):
        images, labels = _FASHION_FILES[split]
        x = read_idx(root / images, n).astype(np.float32)[:, None, :, :] / 255.0
        y = read_idx(root / labels, n).astype(np.int64)
        out += [x, y]
    return out[0], out[1], out[2], out[3]
