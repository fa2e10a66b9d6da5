"""Each floor imports only downward, and each room of the library only the rooms below it.

Floors, bottom to top: ``optimizer`` (the library) < ``mcp_server`` (one tool registry) < ``assistant`` (the agent)
< ``ui`` (the page) < ``quanttaas`` (the product's command line). ``evals`` and ``tests`` may use anything. The
assistant reaches the library only through the tools (MCP), never by importing it. Every import counts, also one
inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("optimizer", "mcp_server", "assistant", "ui", "quanttaas")
FORBIDDEN_PAIRS = {
    ("assistant", "optimizer"): "the assistant reaches the library only through the tools (MCP)"
}
# Modules a forbidden pair still allows. optimizer/units.py is a pure formatting module (standard library only, no
# state, no model, no measurement): writing "37 KB" the way the CLI, the reports and the page do is presentation,
# not the library, and one byte formatter for every surface beats a copy in the assistant that rounds differently.
ALLOWED_ACROSS_PAIRS = {("assistant", "optimizer.units")}

# rooms of the library and the rooms each may import (see each room's docstring); "base" is types/errors/settings
BASE = {"types", "errors", "settings", "units"}
ROOMS: dict[str, set[str]] = {
    "base": set(),
    "goals": {"base"},
    "models": {"base"},
    "measure": {"base", "models"},
    "techniques": {"base", "models", "measure"},
    "search": {"base", "models", "measure", "techniques", "goals"},
    "zoo": {"base", "models", "measure", "techniques"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # "from optimizer import zoo" imports the room optimizer.zoo
            found += [
                (node.lineno, f"{module}.{alias.name}") for alias in node.names if module == "optimizer"
            ]
    return found


def _sources(floor: str) -> list[Path]:
    return sorted(p for p in (ROOT / floor).rglob("*.py") if "__pycache__" not in p.parts)


def floor_violations(floor: str) -> list[str]:
    rank = FLOORS.index(floor)
    bad = []
    for path in _sources(floor):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in FLOORS and FLOORS.index(top) > rank:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} (a higher floor)")
            if (floor, top) in FORBIDDEN_PAIRS and (floor, module) not in ALLOWED_ACROSS_PAIRS:
                bad.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module}: {FORBIDDEN_PAIRS[(floor, top)]}"
                )
    return bad


def _room(parts: tuple[str, ...]) -> str | None:
    """The room of optimizer/<parts>: a sub-package, "base" for the base modules, None for the top modules."""
    if len(parts) > 1:
        return parts[0]
    name = parts[0].removesuffix(".py")
    return "base" if name in BASE else None


def room_violations() -> list[str]:
    bad = []
    for path in _sources("optimizer"):
        room = _room(path.relative_to(ROOT / "optimizer").parts)
        if room is None:  # optimize.py, package.py, cli.py sit above the rooms and may use them all
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "optimizer" or len(parts) < 2:
                continue
            target = "base" if parts[1] in BASE else parts[1]
            if target != room and target not in ROOMS[room]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} (room {room} may not)")
    return bad


@pytest.mark.parametrize("floor", FLOORS)
def test_layers_floor_imports_only_downward(floor: str) -> None:
    assert floor_violations(floor) == []


def test_layers_library_rooms_import_only_the_rooms_below() -> None:
    assert room_violations() == []


def test_layers_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself can fail: a library module that imports the server, or a room that imports the search,
    is reported."""
    fake = tmp_path / "optimizer" / "measure"
    fake.mkdir(parents=True)
    (fake / "leak.py").write_text(
        "def f():\n    from mcp_server.tools import call_tool\n    from optimizer.search import sweep\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert len(floor_violations("optimizer")) == 1
    assert [v.split(" imports ")[1] for v in room_violations()] == ["optimizer.search (room measure may not)"]


def test_layers_assistant_may_use_only_the_pure_formatting_module_of_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one exception to "the assistant never imports the library" is exact: optimizer.units, nothing else."""
    fake = tmp_path / "assistant"
    fake.mkdir()
    (fake / "fine.py").write_text("from optimizer.units import format_bytes\n")
    (fake / "leak.py").write_text(
        "from optimizer.search.pareto import format_bytes\nimport optimizer.units_extra\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    bad = floor_violations("assistant")
    assert [v.split(" imports ")[1].split(":")[0] for v in bad] == [
        "optimizer.search.pareto",
        "optimizer.units_extra",
    ]
    assert all(v.startswith("assistant/leak.py") for v in bad)
