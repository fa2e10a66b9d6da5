"""Peak memory measured in a fresh process per model: the order of measurements cannot change the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimizer import zoo
from optimizer.errors import EvaluationError
from optimizer.measure.data import Dataset, load_data
from optimizer.measure.evaluate import evaluate_model
from optimizer.measure.memory import peak_memory_in_fresh_process
from optimizer.models.inspect import inspect_model


def _case(name: str) -> tuple[Path, Dataset]:
    case = zoo.get_zoo_case(name)
    data = load_data(case.eval_path, inspect_model(case.model_path).inputs)
    return Path(case.model_path), Dataset(
        data.path, {k: v[:4] for k, v in data.inputs.items()}, None, "agreement"
    )


@pytest.mark.slow
def test_evaluate_model_peak_memory_does_not_depend_on_measurement_order() -> None:
    small, small_data = _case("digits-cnn")  # 105 KB
    big, big_data = _case("ppocr-rec")  # 10.9 MB

    def peak(path: Path, data: Dataset) -> int:
        metrics, _ = evaluate_model(path, data, latency_runs=2, warmup_runs=0, as_reference=True)
        assert metrics.peak_memory_bytes is not None
        return metrics.peak_memory_bytes

    # the case: measured in one process, the first model carried onnxruntime's start-up, and swapping
    # the order swapped the numbers
    small_first, big_second = peak(small, small_data), peak(big, big_data)
    big_first, small_second = peak(big, big_data), peak(small, small_data)

    def close(a: int, b: int) -> bool:
        return abs(a - b) <= max(0.05 * max(a, b), 256 * 1024)

    assert close(small_first, small_second), (small_first, small_second)
    assert close(big_first, big_second), (big_first, big_second)
    # and the numbers mean something: the 100x larger model holds more memory
    assert big_first > small_first + 5_000_000


def test_peak_memory_in_fresh_process_names_a_model_that_does_not_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(EvaluationError, match=r"broken\.onnx"):
        peak_memory_in_fresh_process(broken, {"x": __import__("numpy").zeros((1, 4), "float32")})
