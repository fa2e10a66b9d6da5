"""The assistant's one Settings object, read from ``QUANTTAAS_*`` environment variables or a ``.env`` file.

Nothing here is required: with no variable set, the offline planner answers and the tools run in process.

- ``QUANTTAAS_LLM``: a litellm model string (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
  ``ollama/qwen2.5``) or the base URL of an OpenAI-compatible server (``http://127.0.0.1:8080/v1``; the model name
  then comes from ``QUANTTAAS_LLM_MODEL``). Keys come from the provider's usual variables (``OPENAI_API_KEY``...).
- ``QUANTTAAS_LLM_API_BASE``: an API base for the model string (e.g. a non-default Ollama host).
- ``QUANTTAAS_MCP_URL``: drive a running server over streamable HTTP (e.g. ``http://127.0.0.1:8000/mcp/``);
  ``QUANTTAAS_TOKEN`` is sent as a bearer token when set.
- ``QUANTTAAS_MCP_COMMAND``: drive a server started as a subprocess over stdio (e.g. ``quanttaas mcp``).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFLINE = "offline"


class AssistantSettings(BaseSettings):
    """Which brain answers, which server the tools run on, and the agent loop's limits."""

    model_config = SettingsConfigDict(env_prefix="QUANTTAAS_", env_file=".env", extra="ignore")

    llm: str | None = Field(
        default=None,
        description="litellm model string or OpenAI-compatible base URL; unset or 'offline' = the offline planner",
    )
    llm_model: str = Field(default="local", description="model name at an OpenAI-compatible base URL")
    llm_api_base: str | None = Field(default=None, description="API base passed to litellm")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="one LLM call may take this long")
    llm_temperature: float = Field(default=0.0, ge=0, le=2)
    mcp_url: str | None = Field(default=None, description="streamable HTTP MCP endpoint of a running server")
    mcp_command: str | None = Field(default=None, description="command that serves MCP on stdio")
    token: SecretStr | None = Field(default=None, description="bearer token for an HTTP server")
    max_steps: int = Field(default=24, ge=2, le=200, description="brain steps (tool rounds) per message")
    poll_interval_s: float = Field(default=0.5, gt=0, le=30, description="get_job polling interval")
    sweep_timeout_s: float = Field(
        default=3600.0, gt=0, description="stop waiting for a sweep after this long"
    )
    tool_timeout_s: float = Field(default=900.0, gt=0, description="one tool call may take this long")

    def llm_configured(self) -> bool:
        """True when an LLM (not the offline planner) is configured."""
        return bool(self.llm) and (self.llm or "").strip().lower() not in ("", OFFLINE, "none")

    def token_value(self) -> str | None:
        value = self.token.get_secret_value() if self.token is not None else ""
        return value or None
