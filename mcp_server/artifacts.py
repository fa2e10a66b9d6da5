"""Published job artifacts (report, chart, best and candidate models) on local disk or any fsspec URL.

A sweep always writes to a local working folder (``server/work/<job_id>``); when the job ends its public files are
*published* to the artifact store. With the default local store the working folder is the store (nothing is
copied); with an fsspec URL (``gs://bucket/prefix``, ``s3://...``, ``memory://...``) they are uploaded.

An artifact id is ``<job_id>/<file>`` with ``file`` one of ``report.json``, ``pareto.html``, ``best.onnx`` or
``candidates/<candidate id>.onnx``. Ids are checked against a strict pattern before they touch a file system, and a
local path is resolved and checked to lie inside the store, so no id can reach outside it.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from optimizer.errors import NotFoundError

log = logging.getLogger(__name__)

JOB_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_NAME = r"(?:report\.json|pareto\.html|best\.onnx|candidates/[A-Za-z0-9][A-Za-z0-9_.-]{0,150}\.onnx)"
#: the id pattern in a form JSON-schema validators of every language accept (no named groups)
ARTIFACT_ID_PATTERN = rf"^[0-9a-f]{{16}}/{_NAME}$"
ARTIFACT_ID_RE = re.compile(rf"^(?P<job>[0-9a-f]{{16}})/(?P<name>{_NAME})$")
PUBLIC_FILES = ("report.json", "pareto.html", "best.onnx")

MEDIA_TYPES = {".onnx": "application/octet-stream", ".json": "application/json", ".html": "text/html"}


def parse_artifact_id(artifact_id: str) -> tuple[str, str]:
    """Split an artifact id into (job id, file name).

    Raises:
        NotFoundError: the id does not have the artifact id form (this includes every traversal attempt).
    """
    m = ARTIFACT_ID_RE.match(artifact_id)
    if m is None or ".." in artifact_id:
        raise NotFoundError(
            f"{artifact_id[:200]!r} is not an artifact id",
            hint="artifact ids look like '<job_id>/best.onnx' or '<job_id>/candidates/<id>.onnx'; "
            "get_pareto_report lists a job's artifacts",
        )
    return m["job"], m["name"]


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")


class ArtifactStore:
    """Artifacts under ``root`` (a local folder or an fsspec URL)."""

    def __init__(self, root: str, work_dir: Path):
        self.fs: AbstractFileSystem
        self.fs, self.root = url_to_fs(root)
        self.url = root
        self.work_dir = work_dir
        self.local = "file" in _protocols(self.fs)
        # a read-only home still serves the artifacts it has: the folders are made when they can be
        for folder in ([Path(self.root)] if self.local else []) + [work_dir]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                log.warning("cannot create %s: %s", folder, e)

    @property
    def in_place(self) -> bool:
        """True when the store is the local working folder itself (nothing to copy when publishing)."""
        return self.local and Path(self.root).resolve() == self.work_dir.resolve()

    def job_dir(self, job_id: str) -> Path:
        """The local working folder of a job (created)."""
        if not JOB_ID_RE.match(job_id):
            raise NotFoundError(f"no job {job_id[:100]!r}")
        path = self.work_dir / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _key(self, job_id: str, name: str) -> str:
        key = f"{self.root.rstrip('/')}/{job_id}/{name}"
        if self.local:
            resolved = Path(key).resolve()
            if not resolved.is_relative_to(Path(self.root).resolve()):
                raise NotFoundError(f"no artifact {job_id}/{name}")
            return str(resolved)
        return key

    def publish(self, job_id: str) -> list[str]:
        """Copy a finished job's public files to the store; returns their artifact ids."""
        src = self.job_dir(job_id)
        names = [n for n in PUBLIC_FILES if (src / n).is_file()]
        names += sorted(f"candidates/{p.name}" for p in (src / "candidates").glob("*.onnx"))
        names = [n for n in names if ARTIFACT_ID_RE.match(f"{job_id}/{n}")]
        if not self.in_place:
            for name in names:
                key = self._key(job_id, name)
                self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(src / name), key)
        return [f"{job_id}/{n}" for n in names]

    def list(self, job_id: str) -> list[str]:
        """Artifact ids published for a job (empty when none)."""
        base = f"{self.root.rstrip('/')}/{job_id}"
        try:
            found = self.fs.find(base)
        except (FileNotFoundError, OSError):
            return []
        stripped = self.fs._strip_protocol(base)
        ids = []
        for path in found:
            artifact_id = f"{job_id}/{posixpath.relpath(str(path), stripped)}"
            if ARTIFACT_ID_RE.match(artifact_id):
                ids.append(artifact_id)
        return sorted(ids)

    def size(self, artifact_id: str) -> int:
        """Bytes of an artifact. Raises NotFoundError when there is none."""
        job_id, name = parse_artifact_id(artifact_id)
        key = self._key(job_id, name)
        try:
            info = self.fs.info(key)
        except (FileNotFoundError, OSError):
            raise NotFoundError(
                f"no artifact {artifact_id!r}", hint="get_pareto_report lists a finished job's artifacts"
            ) from None
        if info.get("type") != "file":
            raise NotFoundError(f"no artifact {artifact_id!r}")
        return int(info.get("size") or 0)

    def read(self, artifact_id: str) -> bytes:
        """The bytes of an artifact. Raises NotFoundError when there is none."""
        self.size(artifact_id)
        job_id, name = parse_artifact_id(artifact_id)
        with self.fs.open(self._key(job_id, name), "rb") as f:
            data: bytes = f.read()
        return data

    def local_path(self, artifact_id: str) -> Path | None:
        """The local file of an artifact when the store is local (for streaming downloads), else None."""
        if not self.local:
            return None
        self.size(artifact_id)
        job_id, name = parse_artifact_id(artifact_id)
        return Path(self._key(job_id, name))


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
