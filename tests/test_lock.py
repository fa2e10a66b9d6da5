"""The lock pins what pyproject.toml asks for: every dependency (and the dev extra) is in requirements.lock at a
version inside its range, with hashes. A range changed without `make lock` fails here, before a fresh install
resolves something nobody ran."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = _PIN.match(line)
        if m:
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_lock_pins_every_declared_dependency_inside_its_range() -> None:
    pins = _locked()
    wrong = []
    for req in _declared():
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            wrong.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req.name}: locked {version}, pyproject asks {req.specifier}")
    assert not wrong, "run `make lock` and commit requirements.lock: " + "; ".join(wrong)


def test_lock_carries_hashes_for_every_pin() -> None:
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split("\n", 1)[0] and "--hash=sha256:" not in b]
    assert not unhashed, unhashed
    assert len(_locked()) > 100  # the whole environment, not only the direct dependencies
