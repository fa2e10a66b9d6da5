"""The assistant of a browser session: the brain that answers it, and which model a message names."""

from __future__ import annotations

import os

from sessionkit import fake_assistant

from ui.session import mentions_model, use_llm


def test_mentions_model_matches_whole_names_only() -> None:
    assert mentions_model("make Digits-CNN smaller", ["digits-cnn"])
    assert not mentions_model("make digits-cnn2 smaller", ["digits-cnn"])
    assert not mentions_model("make it smaller", ["digits-cnn", ""])


def test_use_llm_gives_the_key_to_the_brain_only() -> None:
    a = fake_assistant()
    before = dict(os.environ)
    name = use_llm(a, "anthropic/claude-3-5-haiku-latest", "key-123", "http://127.0.0.1:9/v1")
    assert name == "anthropic/claude-3-5-haiku-latest"
    assert a.inner.brain.api_key == "key-123" and a.inner.brain.api_base == "http://127.0.0.1:9/v1"
    assert dict(os.environ) == before


def test_use_llm_returns_to_the_offline_planner_for_an_empty_model() -> None:
    a = fake_assistant()
    use_llm(a, "openai/gpt-4o-mini", "k")
    assert use_llm(a, "  ") == "offline-planner" and a.inner.brain is a.inner.planner
