"""The move from SQLite to PostgreSQL, as docs/import-export.md tells it, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchtrail import Clickstream
from searchtrail.cli import main
from tests.pg import PgServer
from tests.test_dump_import import populate, table_rows


@pytest.mark.postgres
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_move_sqlite_to_postgresql(pg_server: PgServer, tmp_path: Path, fmt: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'old.db'}"
    with Clickstream(sqlite_url) as cs:
        populate(cs)
    runner = CliRunner()
    dump = tmp_path / "dump"
    exported = runner.invoke(
        main,
        ["export", "--all", "--out", str(dump), "--format", fmt, "--database-url", sqlite_url],
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["rows"]["sessions"] == 7

    pg_url = pg_server.fresh_database()
    imported = runner.invoke(main, ["import", str(dump), "--database-url", pg_url])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["new"] == 30
    assert table_rows(pg_url) == table_rows(sqlite_url)

    again = runner.invoke(main, ["import", str(dump), "--database-url", pg_url])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["new"] == 0
    assert "nothing new" in again.stderr

    # The sequences were moved past the imported ids: new rows of every kind get new ids.
    with Clickstream(pg_url) as cs:
        s = cs.create_session(session_id="after-move", search_query="hat")
        assert (s.session_number, s.batch_id) == (8, 2)
        assert cs.push_events("after-move", [{"event_id": "e"}]).stored == 1
        assert cs.use_for_improvement("s4").entry_id == 2
        assert cs.keys.create("new", ["ingest"]).key_id == 2
        assert cs.release_batch("release-2").batch_id == 2
        assert cs.create_session(session_id="next", search_query="q").batch_id == 3


def test_export_all_refuses_batch_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.db'}"
    runner = CliRunner()
    both = runner.invoke(
        main, ["export", "--all", "--batch", "1", "--out", str(tmp_path), "--database-url", url]
    )
    assert both.exit_code == 2 and "--batch ID" in both.output
    layout = runner.invoke(
        main,
        ["export", "--all", "--layout", "triplets", "--out", str(tmp_path / "d"),
         "--database-url", url],
    )  # fmt: skip
    assert layout.exit_code == 2 and "apply to --batch only" in layout.output


def test_import_of_a_directory_that_is_no_dump_names_the_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.db'}"
    result = CliRunner().invoke(main, ["import", str(tmp_path), "--database-url", url])
    assert result.exit_code == 1
    assert "no manifest.json" in result.output
    assert "Traceback" not in result.output
