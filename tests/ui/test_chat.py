"""The chat history's words: errors as readable paragraphs, never a traceback."""

from __future__ import annotations

from optimizer.errors import NotFoundError
from ui.chat import error_text, exception_text


def test_error_text_shows_the_message_code_and_hint() -> None:
    text = error_text({"code": "model_invalid", "message": "not an ONNX model", "hint": "export it again"})
    assert text == "not an ONNX model (`model_invalid`)\n\nHint: export it again"


def test_error_text_falls_back_when_there_is_no_error_envelope() -> None:
    assert error_text(None, "the tool failed") == "the tool failed"


def test_exception_text_reads_the_projects_errors_without_their_repr() -> None:
    text = exception_text(NotFoundError("no model 'x'", hint="list_models shows them"))
    assert text.startswith("no model 'x' (`not_found`)") and "Hint: list_models shows them" in text
    assert exception_text(ValueError("bad\nvalue")) == "ValueError: bad value"
