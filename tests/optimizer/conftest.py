"""Tiny models built in code, once per session: a torch CNN, a MatMul MLP, and hand-made ONNX graphs."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer.measure.data import Dataset, load_data, save_data
from optimizer.models.inspect import inspect_model

CNN_INPUT_SHAPE = (1, 16, 16)
CNN_CLASSES = 10
MLP_IN, MLP_HIDDEN, MLP_OUT = 64, 256, 10


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_cnn() -> object:
    """A small CNN trained for a few steps on a synthetic task, so its top-1 decisions have real margins."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(1, 16, 3, padding=1)
            self.c2 = nn.Conv2d(16, 32, 3, padding=1)
            self.fc1 = nn.Linear(32 * 4 * 4, 128)
            self.fc2 = nn.Linear(128, CNN_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    model = CNN()
    # class k = which of 10 fixed random patterns is mixed into the noise
    patterns = torch.randn(CNN_CLASSES, *CNN_INPUT_SHAPE)
    params = list(model.parameters())
    # one thread: on a small, shared machine torch's default thread pool makes this 50x slower;
    # plain SGD: torch.optim's first step imports the compiler stack (seconds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(60):
            y = torch.randint(0, CNN_CLASSES, (32,))
            x = torch.randn(32, *CNN_INPUT_SHAPE) * 0.5 + patterns[y]
            loss = nn.functional.cross_entropy(model(x), y)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= 0.05 * p.grad
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.patterns = patterns  # type: ignore[assignment]
    return model


def _export(model: object, example: object, path: Path, *, opset: int, out_name: str) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,  # type: ignore[arg-type]
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=[out_name],
            dynamic_axes={"x": {0: "N"}, out_name: {0: "N"}},
        )
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def torch_cnn() -> object:
    return _train_cnn()


@pytest.fixture(scope="session")
def cnn_path(models_dir: Path, torch_cnn: object) -> Path:
    """Conv-Relu-Pool x2, Gemm x2; input ``x`` [N,1,16,16], output ``logits`` [N,10]; opset 13."""
    import torch

    return _export(
        torch_cnn, torch.randn(1, *CNN_INPUT_SHAPE), models_dir / "cnn.onnx", opset=13, out_name="logits"
    )


@pytest.fixture(scope="session")
def cnn_opset11_path(models_dir: Path, torch_cnn: object) -> Path:
    import torch

    return _export(
        torch_cnn, torch.randn(1, *CNN_INPUT_SHAPE), models_dir / "cnn11.onnx", opset=11, out_name="logits"
    )


@pytest.fixture(scope="session")
def mlp_path(models_dir: Path) -> Path:
    """Two bias-free Linear layers on a 2-D input, exported as MatMul (int4-able: inner dims 64 and 256)."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(MLP_IN, MLP_HIDDEN, bias=False), nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_OUT, bias=False)
    ).eval()
    return _export(model, torch.randn(1, MLP_IN), models_dir / "mlp.onnx", opset=13, out_name="y")


def cnn_samples(torch_cnn: object, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs drawn like the training data, and their true classes."""
    rng = np.random.default_rng(seed)
    patterns = torch_cnn.patterns.numpy()  # type: ignore[attr-defined]
    y = rng.integers(0, CNN_CLASSES, n)
    x = (rng.standard_normal((n, *CNN_INPUT_SHAPE)) * 0.5 + patterns[y]).astype(np.float32)
    return x, y.astype(np.int64)


@pytest.fixture(scope="session")
def cnn_calib_path(models_dir: Path, torch_cnn: object) -> Path:
    x, _ = cnn_samples(torch_cnn, 32, seed=10)
    return save_data(models_dir / "cnn_calib.npz", {"x": x})


@pytest.fixture(scope="session")
def cnn_eval_path(models_dir: Path, torch_cnn: object) -> Path:
    x, y = cnn_samples(torch_cnn, 48, seed=11)
    return save_data(models_dir / "cnn_eval.npz", {"x": x}, y)


@pytest.fixture(scope="session")
def cnn_calib(cnn_calib_path: Path, cnn_path: Path) -> Dataset:
    return load_data(cnn_calib_path, inspect_model(cnn_path).inputs)


@pytest.fixture(scope="session")
def cnn_eval(cnn_eval_path: Path, cnn_path: Path) -> Dataset:
    return load_data(cnn_eval_path, inspect_model(cnn_path).inputs)


@pytest.fixture(scope="session")
def mlp_calib(models_dir: Path, mlp_path: Path) -> Dataset:
    x = np.random.default_rng(12).standard_normal((32, MLP_IN)).astype(np.float32)
    path = save_data(models_dir / "mlp_calib.npz", {"x": x})
    return load_data(path, inspect_model(mlp_path).inputs)


# --------------------------------------------------------------------------- hand-made ONNX graphs


def tiny_graph(opset: int = 13) -> onnx.ModelProto:
    """x[N,4] -> Gemm(W1[8,4], b1[8]) -> Relu -> MatMul(Constant W2[8,3]) -> Reshape(shape=int64[2]) -> out[N,3].

    40 parameters in initializers, 24 in a Constant node; the int64 shape tensor is not a weight.
    """
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W1")
    b1 = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1")
    shape = numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), "shape")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "W2_value")
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Constant", [], ["W2"], name="w2_const", value=w2),
        helper.make_node("MatMul", ["r", "W2"], ["y"], name="fc2"),
        helper.make_node("Reshape", ["y", "shape"], ["out"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        initializer=[w1, b1, shape],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test", producer_version="1.0"
    )
    model.ir_version = 8
    return model


def constant_weight_mlp() -> onnx.ModelProto:
    """x[N,64] -> MatMul(Constant [64,48]) -> Relu -> Gemm(Constant [48,10], Constant bias [10]) -> y[N,10].

    Every weight sits in a Constant node, as Paddle2ONNX writes them.
    """
    rng = np.random.default_rng(3)

    def const(name: str, arr: np.ndarray) -> onnx.NodeProto:
        return helper.make_node(
            "Constant", [], [name], name=f"{name}_const", value=numpy_helper.from_array(arr, name + "_v")
        )

    nodes = [
        const("W1", (rng.standard_normal((64, 48)) * 0.2).astype(np.float32)),
        const("W2", (rng.standard_normal((48, 10)) * 0.2).astype(np.float32)),
        const("B2", rng.standard_normal(10).astype(np.float32)),
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], name="gemm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture
def sha256() -> Callable[[Path], str]:
    return file_sha256


@pytest.fixture
def make_tiny_graph() -> Callable[..., onnx.ModelProto]:
    return tiny_graph


@pytest.fixture
def constant_weight_mlp_path(tmp_path: Path) -> Path:
    path = tmp_path / "constant_weights.onnx"
    onnx.save(constant_weight_mlp(), str(path))
    return path


@pytest.fixture(scope="session")
def make_cnn_samples(torch_cnn: object) -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
    return lambda n, seed: cnn_samples(torch_cnn, n, seed)


@pytest.fixture
def tiny_graph_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_graph(), str(path))
    return path


@pytest.fixture
def save_model(tmp_path: Path) -> Callable[[onnx.ModelProto, str], Path]:
    def save(model: onnx.ModelProto, name: str) -> Path:
        path = tmp_path / name
        onnx.save(model, str(path))
        return path

    return save
