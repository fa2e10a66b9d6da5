"""The server's one Settings object, read from ``QUANTTAAS_*`` environment variables or a ``.env`` file.

Layout under ``home`` (``QUANTTAAS_HOME``, shared with the command line)::

    models/<id>/model.onnx      the model store (optimizer.models.store.ModelStore), shared with `quanttaas`
    data/<id>/data.npz          registered data files
    zoo/<name>/                 the zoo cache (``QUANTTAAS_ZOO_DIR`` moves it, e.g. to share one cache)
    server/jobs.sqlite          jobs and their finished trials (SQLite, WAL)
    server/jobs/<job_id>/       what a sweep writes (always local); also the artifact store by default
                                (``QUANTTAAS_ARTIFACT_URL`` publishes finished jobs' files to any fsspec URL instead)
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "quanttaas"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback IP address (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    """Where the server keeps its state, where it listens, and its limits."""

    model_config = SettingsConfigDict(env_prefix="QUANTTAAS_", env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=_default_home, description="models, data, jobs and artifacts live here"
    )
    zoo_dir: Path | None = Field(default=None, description="zoo cache folder (default: HOME/zoo)")
    host: str = Field(default="127.0.0.1", description="interface `quanttaas serve` binds to")
    port: int = Field(default=8000, ge=1, le=65535)
    token: SecretStr | None = Field(
        default=None, description="bearer token every HTTP and MCP request must carry; required off loopback"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra Host header values accepted (DNS-rebinding protection), e.g. a public name",
    )
    max_upload_bytes: int = Field(default=200_000_000, ge=1, description="largest model or data upload")
    max_body_bytes: int = Field(default=32_000_000, ge=1024, description="largest JSON request body")
    max_inline_artifact_bytes: int = Field(
        default=8_000_000, ge=0, description="get_artifact returns content inline (base64) up to this size"
    )
    artifact_url: str | None = Field(
        default=None,
        description="fsspec URL for published artifacts (e.g. gs://bucket/quanttaas); default local",
    )
    max_concurrent_jobs: int = Field(default=2, ge=1, le=64, description="sweeps that run at once; more wait")
    sweep_executor: Literal["ray", "serial"] = Field(
        default="ray", description="where sweep trials run: Ray tasks (parallel) or in the job's thread"
    )
    sweep_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="onnxruntime threads of every latency measurement; unset: the goal's ('on 4 threads'), else 1",
    )
    sweep_front_points: int = Field(
        default=0,
        ge=0,
        le=64,
        description="for size, accuracy and balanced goals, measure at least this many candidates across the "
        "Pareto front (0: only what the goal needs); the chat page asks for 8",
    )
    sweep_time_budget_s: float | None = Field(
        default=None, gt=0, description="add those front points only while a sweep has run less than this"
    )

    @property
    def state_dir(self) -> Path:
        return self.home / "server"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "jobs.sqlite"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def upload_dir(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def zoo_root(self) -> Path:
        return self.zoo_dir if self.zoo_dir is not None else self.home / "zoo"

    @property
    def artifact_root(self) -> str:
        """The artifact store's URL, or the local working folder (the default: nothing is copied)."""
        return self.artifact_url or str(self.work_dir)

    def token_value(self) -> str | None:
        """The bearer token, or None when none is configured (an empty value counts as none)."""
        value = self.token.get_secret_value() if self.token is not None else ""
        return value or None
