"""The one Settings object, read from the environment (prefix ``QUANTTAAS_``) or a ``.env`` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "quanttaas"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUANTTAAS_", env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=_default_home, description="where the zoo cache, jobs and artifacts live"
    )
    threads: int = Field(default=1, ge=1, description="onnxruntime intra-op threads used for measurements")
    latency_runs: int = Field(default=50, ge=3)
    warmup_runs: int = Field(default=5, ge=0)

    @property
    def zoo_dir(self) -> Path:
        return self.home / "zoo"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
