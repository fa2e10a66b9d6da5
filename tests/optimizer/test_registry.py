"""A technique is one registered record: a toy technique added in one place shows up in the sweep, the command line
and the tool descriptions, and its candidates round-trip through reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import Field

from optimizer.cli import main
from optimizer.measure.data import Dataset
from optimizer.search.pareto import ParetoReport
from optimizer.search.sweep import SweepOptions, build_grid, run_sweep
from optimizer.techniques import registry
from optimizer.techniques.registry import GridContext, Proposal, SizeBasis, Technique
from optimizer.types import Goal, RecipeBase


class ToyRoundRecipe(RecipeBase):
    """Round every float initializer to a few decimals (a toy: it only shows the registry's reach)."""

    kind: Literal["toy_round"] = "toy_round"
    decimals: int = Field(default=2, ge=0, le=6, description="decimals the weights keep")
    quantizing: ClassVar[bool] = True


def apply_toy(ctx: Any, recipe: ToyRoundRecipe, src: Path, out: Path, index: int) -> dict[str, Any]:
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            rounded = np.round(numpy_helper.to_array(init), recipe.decimals).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(rounded, init.name))
    onnx.save(model, str(out))
    ctx.onnx_only_since = index
    return {"backend": "numpy", "finetuned": False}


def _dense(recipe: Any, basis: SizeBasis) -> float:
    return basis.overhead + basis.float_bytes


def _propose(ctx: GridContext) -> list[Proposal]:
    return [Proposal(ToyRoundRecipe(), "anchor")]


@pytest.fixture
def toy() -> Iterator[Technique]:
    technique = registry.register(
        Technique(
            recipe_type=ToyRoundRecipe,
            description="rounds the weights to a few decimals (a test technique)",
            predict_size=_dense,
            methods=frozenset({"quantize"}),
            precision=None,
            apply=apply_toy,
            aliases=("toy-round",),
            propose=_propose,
        )
    )
    yield technique
    registry.unregister(technique.kind)


def test_registry_toy_technique_is_proposed_measured_and_read_back_from_the_report(
    toy: Technique, cnn_path: Path, cnn_eval: Dataset, cnn_calib: Dataset, tmp_path: Path
) -> None:
    from optimizer.models.inspect import inspect_model

    grid = build_grid(inspect_model(cnn_path), None, has_calib=True)
    [item] = [g for g in grid if g.recipe.kind == "toy_round"]
    assert item.family == "anchor" and item.predicted_size > 0

    report = run_sweep(
        cnn_path,
        cnn_eval,
        calib=cnn_calib,
        goal=Goal(objective="accuracy"),
        out_dir=tmp_path,
        options=SweepOptions(
            executor="serial", exhaustive=True, profile=False, latency_runs=3, remeasure_runs=6
        ),
    )
    [toy_c] = [c for c in report.candidates if c.recipe.kind == "toy_round"]
    assert toy_c.ok and toy_c.metrics is not None and Path(str(toy_c.model_path)).is_file()
    assert toy_c.detail["steps"][0]["backend"] == "numpy"
    again = ParetoReport.model_validate_json(report.model_dump_json())
    assert again.candidate(toy_c.id).recipe == toy_c.recipe  # the kind is readable wherever reports are read


def test_registry_toy_technique_gets_command_line_flags_from_its_fields(
    toy: Technique, cnn_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "toy.onnx"
    assert main(["quantize", str(cnn_path), "--recipe", "toy-round", "--decimals", "1", "-o", str(out)]) == 0
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer if t.dims]
    assert all(np.allclose(w, np.round(w, 1)) for w in weights if w.dtype == np.float32)
    # a flag of another technique is refused for this one, with the flags it does take
    assert (
        main(["quantize", str(cnn_path), "--recipe", "toy-round", "--sparsity", "0.5", "-o", str(out)]) == 2
    )
    assert "--decimals" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    assert "toy_round: rounds the weights" in capsys.readouterr().out


def test_registry_toy_technique_is_in_the_tool_descriptions(toy: Technique) -> None:
    from mcp_server.tools import get_tool, list_techniques

    assert "toy_round" in get_tool("run_sweep").describe()
    infos = {t.kind: t for t in list_techniques(None, None).techniques}  # type: ignore[arg-type]
    assert infos["toy_round"].description.startswith("rounds the weights")
    assert "decimals" in infos["toy_round"].recipe_schema["properties"]
    registry.unregister("toy_round")
    assert "toy_round" not in get_tool("run_sweep").describe()


def test_registry_every_builtin_recipe_type_has_one_technique() -> None:
    from optimizer.types import recipe_kinds

    kinds = [t.kind for t in registry.techniques()]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) <= set(recipe_kinds())
    for t in registry.techniques():
        assert t.description and (t.apply is not None or t.kind == "chain")
        if isinstance(t.apply, str):
            assert callable(t.step_fn()), t.kind  # the import path resolves
