"""The package's surface: what importing it costs, what it exports, how big its modules are."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import searchtrail

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "searchtrail"

# The server's packages: a program that only sends events must not pay for them.
HEAVY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pyarrow")
MAX_LINES = 500


def _importers(stderr: str) -> dict[str, str]:
    """Module -> the module whose import first imported it, from ``-X importtime``.

    Its lines come in post-order (a module after everything it imported), indented two
    spaces a level: a module's importer is the next line less indented than its own.
    """
    rows: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        name = line.rsplit("|", 1)[1]
        rows.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip()))
    parents: dict[str, str] = {}
    for i, (depth, name) in enumerate(rows):
        parent = next((n for d, n in rows[i + 1 :] if d < depth), "the statement")
        parents.setdefault(name, parent)
    return parents


def _chain(module: str, parents: dict[str, str]) -> str:
    chain = [module]
    while chain[-1] in parents and len(chain) < 50:
        chain.append(parents[chain[-1]])
    return " <- ".join(chain)


@pytest.mark.parametrize(
    "statement",
    [
        "from searchtrail import Tracker, Client",
        "from searchtrail import AsyncClient, AsyncTracker, Limits, Session, SearchtrailError",
        "import searchtrail.client, searchtrail.models, searchtrail.errors, searchtrail.limits, "
        "searchtrail.timestamps, searchtrail.paths",
    ],
)
def test_the_client_loads_no_server_package(statement: str) -> None:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(run.stdout.splitlines()[-1])
    heavy = [m for m in loaded if m.partition(".")[0] in HEAVY]
    if heavy:
        parents = _importers(run.stderr)
        # Each heavy module imported by one of ours (or the standard library) names the chain.
        blamed = sorted(
            _chain(m, parents) for m in heavy if parents.get(m, "").partition(".")[0] not in HEAVY
        )
        pytest.fail(
            f"{statement!r} loads {len(heavy)} server modules; the first of each, and who "
            "imported it:\n" + "\n".join(blamed or heavy)
        )


def _type_checking_names() -> set[str]:
    tree = ast.parse((SRC / "__init__.py").read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_the_root_exports_every_name_lazily_and_to_type_checkers() -> None:
    exported = set(searchtrail.__all__) - {"__version__"}
    assert set(searchtrail._SOURCES) == exported
    assert _type_checking_names() == exported
    for name in sorted(exported):
        value = getattr(searchtrail, name)
        assert value is getattr(sys.modules[searchtrail._SOURCES[name]], name)
    assert set(searchtrail.__all__) <= set(dir(searchtrail))
    from searchtrail import Clickstream, __version__

    assert Clickstream.__name__ == "Clickstream"
    assert __version__ == searchtrail.__version__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = searchtrail.Nope


def _imported_from(module: str) -> set[str]:
    names: set[str] = set()
    for path in [
        *SRC.rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                names.update(alias.name for alias in node.names)
    return names


def test_models_exports_every_name_the_code_imports_from_it() -> None:
    import searchtrail.models as models

    wanted = _imported_from("searchtrail.models") | set(models.__all__)
    assert {"Session", "_check_id", "_limits", "_Strict", "JsonObject"} <= wanted
    assert [name for name in sorted(wanted) if not hasattr(models, name)] == []


def test_the_command_runs_as_a_module() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "searchtrail.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert run.stdout.strip() == f"searchtrail, version {searchtrail.__version__}"


def test_each_path_prefix_is_defined_once() -> None:
    bench = [p for p in (ROOT / "bench").rglob("*.py") if ".data" not in p.parts]
    sources = [*SRC.rglob("*.py"), *bench]  # bench/.data: a run's copies of other commits
    spelled = [p for p in sources if "/api/v1/clickstream" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in spelled] == ["src/searchtrail/paths.py"]


def test_no_source_module_is_over_500_lines() -> None:
    sizes = {
        p.relative_to(SRC).as_posix(): len(p.read_text().splitlines())
        for p in SRC.rglob("*.py")
        if "migrations" not in p.relative_to(SRC).parts
    }
    over = {path: n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert over == {}, f"split these modules (at most {MAX_LINES} lines): {over}"
