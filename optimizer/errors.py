"""The one error tree of QuantTaaS.

Every error a caller can act on derives from :class:`QuantTaaSError` and carries a stable ``code`` (for
programs), a ``message`` (for people) and a ``hint`` (what to do next)::

    QuantTaaSError                      code            surface mapping
    ├── InputError                      (base, 400)     bad input a caller can fix
    │   ├── ModelLoadError              model_load      corrupt / truncated / non-ONNX file, unknown opset
    │   ├── DataError                   data_invalid    .npz missing, names/shapes/dtypes do not match the model
    │   ├── RecipeError                 recipe_invalid  a recipe that is invalid or unsupported for this model
    │   ├── GoalError                   goal_invalid    a goal that cannot be used
    │   └── NotFoundError               not_found       unknown model, zoo entry, job or artifact
    ├── TechniqueError                  technique_failed  a backend (onnxruntime, torch) failed; raised ``from`` the cause
    ├── EvaluationError                 evaluation_failed running or scoring a model failed
    └── JobError                        job_failed      a background job could not run or resume

HTTP maps ``InputError`` to 400 (404 for ``NotFoundError``) and everything else to 500; every surface renders
:meth:`QuantTaaSError.to_dict`.
"""

from __future__ import annotations

from typing import Any


class QuantTaaSError(Exception):
    """Base of every error QuantTaaS raises on purpose."""

    code: str = "internal_error"
    http_status: int = 500
    default_hint: str = "This is a bug in QuantTaaS; please report it with the command you ran."

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The wire form every surface uses: ``{"code", "message", "hint"}`` (+ ``details`` when present)."""
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return f"[{self.code}] {self.message} (hint: {self.hint})"


class InputError(QuantTaaSError):
    """Bad input the caller can fix."""

    code = "input_invalid"
    http_status = 400
    default_hint = "Check the arguments against the documentation (`quanttaas --help`)."


class ModelLoadError(InputError):
    code = "model_load"
    default_hint = "Pass a valid ONNX file (.onnx) or a torch.export program (.pt2)."


class DataError(InputError):
    code = "data_invalid"
    default_hint = (
        "Give a .npz whose arrays are named after the model inputs (first axis = samples), "
        "plus an optional `labels` array; `quanttaas inspect MODEL` lists the inputs."
    )


class RecipeError(InputError):
    code = "recipe_invalid"
    default_hint = "See `quanttaas quantize --help` for the recipes and their options."


class GoalError(InputError):
    code = "goal_invalid"
    default_hint = 'State at least one limit, e.g. "under 5 MB, less than 1% accuracy loss".'


class NotFoundError(InputError):
    code = "not_found"
    http_status = 404
    default_hint = "Check the name or id; list what exists first."


class TechniqueError(QuantTaaSError):
    code = "technique_failed"
    default_hint = (
        "The backend could not apply this recipe to this model; try another recipe or keep the layer in fp32."
    )


class EvaluationError(QuantTaaSError):
    code = "evaluation_failed"
    default_hint = "Check that the evaluation data matches the model and that the model runs on onnxruntime."


class JobError(QuantTaaSError):
    code = "job_failed"
    default_hint = "Look at the job's error and its finished trials; resume or start it again."
