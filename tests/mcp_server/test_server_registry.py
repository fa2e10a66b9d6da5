"""The tool registry itself: one declaration per tool, strict argument models, readable errors."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_server.errors import ArgumentsError, UnknownToolError
from mcp_server.tools import REGISTRY, Tool, get_tool

ISSUE_TOOLS = {
    "list_models",
    "register_model",
    "inspect_model",
    "parse_goal",
    "profile_layers",
    "run_sweep",
    "get_job",
    "cancel_job",
    "get_pareto_report",
    "recommend",
    "get_artifact",
    "list_zoo",
}


def _walk(schema: Any) -> list[dict[str, Any]]:
    """Every sub-schema of a JSON schema (properties, anyOf arms, $defs)."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        found.append(schema)
        for value in schema.values():
            found += _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _walk(value)
    return found


def test_registry_holds_every_tool_of_the_issue() -> None:
    assert set(REGISTRY) >= ISSUE_TOOLS


@pytest.mark.parametrize("tool", REGISTRY.values(), ids=list(REGISTRY))
def test_tool_name_is_its_handler_name(tool: Tool[Any, Any]) -> None:
    assert tool.handler.__name__ == tool.name


def test_tool_refuses_a_handler_with_another_name() -> None:
    def other(services: Any, args: Any) -> Any:
        return None

    t = REGISTRY["list_zoo"]
    with pytest.raises(ValueError, match="same name"):
        Tool(
            name="list_zoo",
            title=t.title,
            description=t.description,
            args_model=t.args_model,
            result_model=t.result_model,
            handler=other,
            summarize=str,
            read_only=True,
        )


@pytest.mark.parametrize("tool", REGISTRY.values(), ids=list(REGISTRY))
def test_tool_args_are_frozen_and_refuse_unknown_fields(tool: Tool[Any, Any]) -> None:
    config = tool.args_model.model_config
    assert config.get("frozen") is True
    assert config.get("extra") == "forbid"
    assert tool.input_schema().get("additionalProperties") is False


@pytest.mark.parametrize("tool", REGISTRY.values(), ids=list(REGISTRY))
def test_tool_args_bound_every_string_and_number(tool: Tool[Any, Any]) -> None:
    for sub in _walk(tool.input_schema()):
        if sub.get("type") == "string" and "enum" not in sub and "const" not in sub:
            assert "maxLength" in sub, sub
        if sub.get("type") in ("integer", "number"):
            assert {"maximum", "exclusiveMaximum"} & set(sub) and {"minimum", "exclusiveMinimum"} & set(
                sub
            ), sub


@pytest.mark.parametrize("tool", REGISTRY.values(), ids=list(REGISTRY))
def test_tool_description_says_what_it_costs(tool: Tool[Any, Any]) -> None:
    assert "cost" in tool.describe().lower()
    assert len(tool.describe()) >= 80


@pytest.mark.parametrize("tool", REGISTRY.values(), ids=list(REGISTRY))
def test_tool_arguments_are_documented(tool: Tool[Any, Any]) -> None:
    props = tool.input_schema().get("properties", {})
    for name, prop in props.items():
        documented = "description" in prop or any("description" in arm for arm in prop.get("anyOf", []))
        assert documented, f"{tool.name}.{name} has no description"


def test_long_running_flag_marks_only_run_sweep() -> None:
    assert [t.name for t in REGISTRY.values() if t.long_running] == ["run_sweep"]


def test_read_only_flags_match_what_tools_change() -> None:
    writers = {t.name for t in REGISTRY.values() if not t.read_only}
    assert writers == {"register_model", "register_data", "run_sweep", "cancel_job"}


def test_get_tool_raises_not_found_for_unknown_name() -> None:
    with pytest.raises(UnknownToolError) as e:
        get_tool("format_disk")
    assert e.value.code == "not_found" and e.value.http_status == 404


def test_tool_parse_reports_every_bad_field_without_echoing_values() -> None:
    with pytest.raises(ArgumentsError) as e:
        REGISTRY["profile_layers"].parse({"model": "SECRET/../x", "samples": 10**9, "bogus": 1})
    err = e.value
    assert err.http_status == 422 and err.code == "input_invalid"
    locs = {tuple(x["loc"]) for x in err.details["errors"]}
    assert locs == {("model",), ("samples",), ("bogus",)}
    assert "SECRET" not in str(err.to_dict())


def test_tool_parse_refuses_arguments_that_are_not_an_object() -> None:
    with pytest.raises(ArgumentsError, match="JSON object"):
        REGISTRY["list_zoo"].parse(["a", "b"])


def test_run_sweep_args_refuse_resume_mixed_with_a_new_sweep() -> None:
    with pytest.raises(ArgumentsError, match="resume_job_id"):
        REGISTRY["run_sweep"].parse({"resume_job_id": "0123456789abcdef", "model": "digits-cnn"})
    with pytest.raises(ArgumentsError, match="model"):
        REGISTRY["run_sweep"].parse({"goal": "under 1 MB"})


def test_agent_tools_mirror_the_registry() -> None:
    from mcp_server.agent_tools import openai_tools

    specs = openai_tools()
    assert [s["function"]["name"] for s in specs] == list(REGISTRY)
    assert all(s["type"] == "function" for s in specs)
    assert specs[0]["function"]["parameters"] == REGISTRY[specs[0]["function"]["name"]].input_schema()
