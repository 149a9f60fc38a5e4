"""The layering of docs/architecture.md, checked on the source.

The import graph of ``src/searchtrail`` is built with ``ast``: every ``import`` and
``from ... import`` anywhere in a module (function-local and ``TYPE_CHECKING`` ones
included), resolved to searchtrail module names, a package's ``__init__`` counted as a
module of the package's name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from searchtrail.models import BatchStateName, QueueStateName
from searchtrail.storage.api import BatchState, QueueState

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "searchtrail"

# Modules outside searchtrail.storage that may import SQLAlchemy, and why. (The migrations
# may too: they live in storage/sql/migrations, beside the backend whose schema they move.)
SQLALCHEMY_ALLOWED = {
    # The composition root of the `db` commands (upgrade, current, check): they open the
    # SQL backend's engine for migrate, and render URLs with SQLAlchemy's make_url.
    "searchtrail.cli": "the db commands work on the SQL backend itself",
    # Temporary: the full dump and the import work on whole tables, whose column lists and
    # types they read from the SQL backend's schema (dump.py, the importer's row builders).
    # It goes when the Transfer protocol describes tables itself; until then a second
    # backend would implement Transfer against these tables' shapes.
    "searchtrail.transfer": "dump and import read the SQL backend's table definitions",
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(modules: dict[str, Path], name: str) -> bool:
    return modules[name].name == "__init__.py"


def _resolve(modules: dict[str, Path], name: str) -> str | None:
    """The longest searchtrail module ``name`` (a module or an attribute of one) is in."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(modules: dict[str, Path], name: str) -> set[str]:
    """The searchtrail modules ``name`` imports, and the raw top-level names it imports."""
    tree = ast.parse(modules[name].read_text(), str(modules[name]))
    package = name if _is_package(modules, name) else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            out.add(source)
            # `from pkg import mod` imports the module pkg.mod
            out.update(f"{source}.{alias.name}" for alias in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name in modules:
        targets = {_resolve(modules, raw) for raw in _imports(modules, name)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the path that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_resolver_sees_local_type_checking_and_relative_imports() -> None:
    graph = import_graph()
    # function-local: open_storage imports the backend inside the function
    assert "searchtrail.storage.sql.backend" in graph["searchtrail.storage"]
    # under TYPE_CHECKING
    assert "searchtrail.transfer.dump" in graph["searchtrail.service.training"]


def test_searchtrail_modules_import_each_other_without_cycles() -> None:
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_storage_and_the_allowed_modules_import_sqlalchemy() -> None:
    modules = _modules()
    offenders = []
    for name in modules:
        if name.startswith("searchtrail.storage.") or name == "searchtrail.storage":
            continue
        if any(name == a or name.startswith(a + ".") for a in SQLALCHEMY_ALLOWED):
            continue
        raw = _imports(modules, name)
        if any(r == "sqlalchemy" or r.startswith("sqlalchemy.") for r in raw):
            offenders.append(name)
    assert offenders == [], f"SQLAlchemy outside the storage backend: {offenders}"


def test_the_storage_protocols_know_no_sql() -> None:
    raw = _imports(_modules(), "searchtrail.storage.api")
    assert not [r for r in raw if r.split(".")[0] == "sqlalchemy"]
    assert not [r for r in raw if r.startswith("searchtrail.storage.sql")]


def test_the_service_talks_to_the_protocols_not_the_backend() -> None:
    graph = import_graph()
    service = [
        n for n in graph if n == "searchtrail.service" or n.startswith("searchtrail.service.")
    ]
    service += ["searchtrail.keys", "searchtrail.export"]
    service += [n for n in graph if n.startswith("searchtrail.http")]
    reach = {
        n: sorted(t for t in graph[n] if t.startswith("searchtrail.storage.sql")) for n in service
    }
    assert {n: t for n, t in reach.items() if t} == {}


def test_only_the_dialect_modules_branch_on_the_dialect() -> None:
    """``if dialect == ...`` lives in sqlite.py and postgres.py; elsewhere the backend asks
    its Dialect. Migrations and migrate.py run on Alembic's connection and are apart."""
    allowed = {"sqlite.py", "postgres.py", "migrate.py", "env.py"}
    offenders = []
    for path in (SRC / ROOT).rglob("*.py"):
        if path.name in allowed or "versions" in path.parts:
            continue
        text = path.read_text()
        for needle in ('== "sqlite"', '== "postgresql"', '!= "sqlite"', '!= "postgresql"'):
            if needle in text and "storage" in path.parts:
                offenders.append(f"{path.relative_to(SRC)}: {needle}")
    assert offenders == []


def test_one_vocabulary_of_batch_and_queue_states() -> None:
    """models' Literal aliases (what the API validates) are the enums' values, no more."""
    assert set(get_args(BatchStateName)) == {s.value for s in BatchState}
    assert set(get_args(QueueStateName)) == {s.value for s in QueueState}


def test_no_storage_or_service_module_is_over_500_lines() -> None:
    long = {}
    for path in (SRC / ROOT).rglob("*.py"):
        rel = path.relative_to(SRC / ROOT)
        if "migrations" in rel.parts:
            continue
        if rel.parts[0] in ("storage", "service") or rel.name in ("keys.py", "export.py"):
            lines = len(path.read_text().splitlines())
            if lines > 500:
                long[str(rel)] = lines
    assert long == {}
