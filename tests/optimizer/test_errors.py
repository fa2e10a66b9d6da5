"""The error tree: stable, distinct codes; one wire form; HTTP statuses by branch."""

from __future__ import annotations

import pytest

from optimizer import errors
from optimizer.errors import (
    DataError,
    EvaluationError,
    GoalError,
    InputError,
    JobError,
    ModelLoadError,
    NotFoundError,
    QuantTaaSError,
    RecipeError,
    TechniqueError,
)

EXPECTED_CODES = {
    QuantTaaSError: "internal_error",
    InputError: "input_invalid",
    ModelLoadError: "model_load",
    DataError: "data_invalid",
    RecipeError: "recipe_invalid",
    GoalError: "goal_invalid",
    NotFoundError: "not_found",
    TechniqueError: "technique_failed",
    EvaluationError: "evaluation_failed",
    JobError: "job_failed",
}


def _all_error_classes() -> list[type[QuantTaaSError]]:
    return [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, QuantTaaSError)]


def test_error_classes_have_the_documented_stable_codes() -> None:
    for cls, code in EXPECTED_CODES.items():
        assert cls.code == code, cls.__name__


def test_error_classes_have_distinct_codes_and_all_are_known() -> None:
    classes = _all_error_classes()
    codes = [c.code for c in classes]

    assert len(codes) == len(set(codes))
    assert set(classes) == set(EXPECTED_CODES), "a new error class needs a row in EXPECTED_CODES"


def test_error_codes_appear_in_the_module_docstring_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in _all_error_classes():
        if cls is QuantTaaSError:
            continue
        assert cls.__name__ in doc
        if cls is not InputError:
            assert cls.code in doc


@pytest.mark.parametrize("cls", list(EXPECTED_CODES), ids=lambda c: c.__name__)
def test_error_to_dict_has_code_message_hint(cls: type[QuantTaaSError]) -> None:
    err = cls("something went wrong")

    body = err.to_dict()

    assert body == {"code": cls.code, "message": "something went wrong", "hint": cls.default_hint}
    assert body["hint"]
    assert str(err) == f"[{cls.code}] something went wrong (hint: {cls.default_hint})"


def test_error_to_dict_carries_explicit_hint_and_details() -> None:
    err = ModelLoadError("bad opset", hint="re-export", details={"opset": 99})

    assert err.to_dict() == {
        "code": "model_load",
        "message": "bad opset",
        "hint": "re-export",
        "details": {"opset": 99},
    }
    assert err.message == "bad opset"
    assert err.args == ("bad opset",)


@pytest.mark.parametrize(
    "cls", [ModelLoadError, DataError, RecipeError, GoalError, NotFoundError, InputError]
)
def test_input_errors_map_to_4xx(cls: type[QuantTaaSError]) -> None:
    assert issubclass(cls, InputError)
    assert 400 <= cls.http_status < 500


def test_not_found_maps_to_404_and_other_input_errors_to_400() -> None:
    assert NotFoundError.http_status == 404
    assert {c.http_status for c in (ModelLoadError, DataError, RecipeError, GoalError)} == {400}


@pytest.mark.parametrize("cls", [TechniqueError, EvaluationError, JobError, QuantTaaSError])
def test_non_input_errors_map_to_500(cls: type[QuantTaaSError]) -> None:
    assert not issubclass(cls, InputError)
    assert cls.http_status == 500
