"""The module table of DESIGN.md ("Layout"), held: every import of the package, ``TYPE_CHECKING``
blocks included, follows an arrow the table allows, and no import cycle exists.

Each unit (a module, or a package such as ``emulator/``) names what it may import besides the
standard library and third-party packages; what those may import it may import too (an engine
module reaches the wire layer through ``_caller``, say). ``__init__`` (which only re-exports) and
``__main__`` are the package's face and are not held to the table.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = Path(__file__).resolve().parent.parent / "vidu_async"

#: Leaves that import nothing of the package: any unit may import them.
LEAVES: Final = frozenset({"_version", "_secret"})

MODEL: Final = ("_models", "_kinds", "_validate", "_events")
#: The package's public modules (besides its top level).
PUBLIC: Final = ("exceptions", "callbacks", "emulator", "journal")

#: unit -> the units it may import directly (the table's "may import" column).
TABLE: Final[dict[str, frozenset[str]]] = {
    # facts
    "_rules": frozenset(),
    "exceptions": frozenset(),
    "_signing": frozenset(),
    # model
    # Models validate at construction: they call _validate, which never imports them back.
    "_models": frozenset({"_rules", "exceptions", "_validate"}),
    "_kinds": frozenset({"_rules", "exceptions", "_models"}),
    # _sniff is pure (imports nothing of the package); construction sniffs bytes and data URIs.
    "_validate": frozenset({"_rules", "exceptions", "_sniff"}),
    "_events": frozenset({"_rules", "exceptions", "_models"}),
    # edge
    "_sniff": frozenset(MODEL),
    "_media": frozenset(MODEL),
    "_convert": frozenset(MODEL),
    # wire
    "_http": frozenset({"_convert", *MODEL}),
    "_transport": frozenset({"_http"}),
    # policy
    "_config": frozenset({"exceptions"}),
    "_retry": frozenset({"exceptions", "_config"}),
    "_limits": frozenset({"exceptions", "_config"}),
    # engine
    "_caller": frozenset({"_http", "_transport", "_config", "_retry", "_limits", "_media", "_sniff"}),
    "_submit": frozenset({"_caller"}),
    "_poll": frozenset({"_caller"}),
    "_download": frozenset({"_transport", "_caller"}),
    "journal": frozenset({"_convert", *MODEL}),
    "_batch_input": frozenset({"_caller", "_submit", "_poll", "_download", "journal"}),
    "_budget": frozenset({"_caller", "_submit", "_poll", "_download", "journal"}),
    "_batch": frozenset({"_caller", "_submit", "_poll", "_download", "journal", "_batch_input", "_budget"}),
    # A batch shared by many workers through the PostgreSQL journal: what _batch may import, and _batch.
    "_fleet": frozenset(
        {"_caller", "_submit", "_poll", "_download", "journal", "_batch_input", "_budget", "_batch"}
    ),
    "callbacks": frozenset({"_signing", "_convert"}),
    # face
    "_client": frozenset(
        {
            "_caller",
            "_submit",
            "_poll",
            "_download",
            "journal",
            "_batch",
            "_fleet",
            "_batch_input",
            "_budget",
            "callbacks",
        }
    ),
    # tools
    "emulator": frozenset({"_rules", "_signing", "_convert", *MODEL}),
    # The public API: the package's re-exports, its public modules, and the input items.
    "cli": frozenset({"vidu_async", *PUBLIC, "_batch_input", "_runner", "_progress"}),
    "_runner": frozenset({"vidu_async", *PUBLIC, "_batch_input", "_progress"}),
    "_progress": frozenset({"vidu_async", *PUBLIC, "_batch_input"}),
}
#: What the command line may use without reaching past it: the public face (its re-exports), and
#: ``_batch_input``, taken as it is (not what it may import in turn).
OPAQUE: Final = frozenset({"vidu_async", "_batch_input", *PUBLIC})
TOOLS: Final = frozenset({"cli", "_runner", "_progress"})
FACE: Final = frozenset({"__init__", "__main__"})


def allowed(unit: str) -> frozenset[str]:
    """What ``unit`` may import: its column, what those may import, and the leaves. The command
    line's column is taken as it is: it may use the public API, not what lies behind it."""
    seen: set[str] = set()
    todo = list(TABLE[unit])
    while todo:
        other = todo.pop()
        if other in seen:
            continue
        seen.add(other)
        if other == "vidu_async" or (unit in TOOLS and other in OPAQUE):
            continue
        todo.extend(TABLE[other])
    return frozenset(seen | LEAVES)


def unit_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every unit of the package ``path`` imports (line, unit), at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = ["vidu_async", *parts[:-1]]  # the package the file is in
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")
            if target[0] != "vidu_async":
                continue
            if len(target) == 1:  # from vidu_async import x / from . import x
                for alias in node.names:
                    name = alias.name
                    module = PACKAGE / f"{name}.py"
                    yield node.lineno, name if module.exists() or (PACKAGE / name).is_dir() else "vidu_async"
            else:
                yield node.lineno, target[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.split(".")
                if target[0] == "vidu_async":
                    yield node.lineno, target[1] if len(target) > 1 else "vidu_async"


def files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if unit_of(p) not in FACE)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in files():
        unit = unit_of(path)
        edges.setdefault(unit, set()).update(u for _, u in imports(path) if u != unit)
    return edges


class TestTable:
    """The table itself covers the package."""

    def test_every_module_has_a_row(self) -> None:
        """A new module needs its row here (and in DESIGN.md/README's table) before it lands."""
        units = {unit_of(p) for p in files()}
        assert units - LEAVES <= set(TABLE), sorted(units - LEAVES - set(TABLE))


class TestArrows:
    """Each import follows an arrow of the table."""

    @pytest.mark.parametrize("path", files(), ids=lambda p: str(p.relative_to(PACKAGE)))
    def test_imports(self, path: Path) -> None:
        unit = unit_of(path)
        if unit in LEAVES:
            wrong = [(line, u) for line, u in imports(path)]
        else:
            ok = allowed(unit) | {unit}
            wrong = [(line, u) for line, u in imports(path) if u not in ok]
        assert not wrong, f"{path.name} imports, against the table: " + ", ".join(
            f"{u} (line {line})" for line, u in wrong
        )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


class TestNoCycles:
    """No import cycle, TYPE_CHECKING imports included."""

    def test_acyclic(self) -> None:
        assert cycles(graph()) == []

    def test_the_check_sees_a_cycle(self) -> None:
        """The check itself finds a cycle, long or short."""
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
