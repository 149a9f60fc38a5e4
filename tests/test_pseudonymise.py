"""Pseudonymous user ids (``user_id_key``): stored as keyed HMACs on every path that
stores a session, found again by raw id for an erase or an export, across a key rotation."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from searchtrail import Clickstream, Settings
from searchtrail.pseudonyms import PREFIX, Pseudonymiser, is_pseudonym
from searchtrail.storage.sql.engine import normalize_database_url
from searchtrail.storage.sql.schema import sessions
from tests.support import sqlite_only

KEY = "first key, sixteen+ chars"
NEW_KEY = "second key, also long enough"


def pseudonym(key: str, user_id: str) -> str:
    return PREFIX + hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def stored_user_ids(url: str) -> dict[str, str | None]:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(sessions.c.session_id, sessions.c.user_id))
            return {r.session_id: r.user_id for r in rows}
    finally:
        engine.dispose()


def keyed(url: str, key: str | None = KEY, *previous: str) -> Clickstream:
    return Clickstream(
        settings=Settings(database_url=url, user_id_key=key, user_id_previous_keys=list(previous))
    )


def _session(cs: Clickstream, sid: str, user: str) -> None:
    cs.create_session(session_id=sid, user_id=user, search_results=[{"object_id": "o1"}])
    cs.push_events(sid, [{"event_id": "e1", "object_id": "o1"}])


def _store_on_every_path(url: str, second_url: str, tmp_path: Path) -> None:
    """Sessions of four users, each by one path: the library, HTTP, bulk and import."""
    with keyed(second_url, None) as plain:  # a database of raw ids, dumped for the import
        _session(plain, "imp", "user-by-import-9f1")
        plain.export_all(tmp_path / "dump")
    with keyed(url) as cs:
        # First: a dump keeps its ids (batch 1...), which an import into an empty database takes.
        summary = cs.import_from(tmp_path / "dump")
        assert summary.exit_code == 0, summary.first_rejects
        _session(cs, "lib", "user-by-library-3c7")
        from searchtrail.http import create_app

        with TestClient(create_app(clickstream=cs)) as client:
            body = {"session_id": "http", "user_id": "user-by-http-5e2", "search_results": []}
            created = client.post("/session", json=body)
            assert created.status_code == 200, created.text
            assert created.json()["user_id"] == pseudonym(KEY, "user-by-http-5e2")
            got = client.get("/session", params={"session_id": "http"}).json()
            assert got["user_id"] == pseudonym(KEY, "user-by-http-5e2")
        row = {
            "session_id": "bulk", "search_query": "q", "search_results": [],
            "search_meta": None, "payload_filter": None, "sort_by": None,
            "user_id": "user-by-bulk-1d8", "created_at_ms": 1_700_000_000_000,
            "created_at_given": True, "is_irrelevant": False,
        }  # fmt: skip
        cs.bulk_register([row], [])


USERS = {
    "lib": "user-by-library-3c7",
    "http": "user-by-http-5e2",
    "bulk": "user-by-bulk-1d8",
    "imp": "user-by-import-9f1",
}


def test_every_path_stores_the_keyed_pseudonym(
    database_url: str, second_url: str, tmp_path: Path
) -> None:
    _store_on_every_path(database_url, second_url, tmp_path)
    assert stored_user_ids(database_url) == {s: pseudonym(KEY, u) for s, u in USERS.items()}
    with keyed(database_url) as cs:
        # An export and an erase by raw id find the pseudonymous sessions.
        lines = list(cs.iter_user("user-by-import-9f1"))
        assert [line["session_id"] for line in lines] == ["imp"]
        assert lines[0]["user_id"] == pseudonym(KEY, "user-by-import-9f1")
        assert cs.delete_user("user-by-http-5e2").sessions == 1
        # So does the pseudonym itself, as GET /session shows it.
        assert cs.delete_user(pseudonym(KEY, "user-by-bulk-1d8")).sessions == 1
        assert sorted(stored_user_ids(database_url)) == ["imp", "lib"]


@sqlite_only  # the bytes of the database file: PostgreSQL's rows are read above
def test_no_raw_id_reaches_the_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keyed.db'}"
    _store_on_every_path(url, f"sqlite:///{tmp_path / 'plain.db'}", tmp_path)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("keyed.db")]
    data = b"".join(p.read_bytes() for p in files)
    assert pseudonym(KEY, "user-by-library-3c7").encode() in data  # the grep can see rows
    for user in USERS.values():
        assert user.encode() not in data, user
    plain = (tmp_path / "plain.db").read_bytes()
    assert b"user-by-import-9f1" in plain  # and without a key the raw id is there


def test_a_rotated_key_still_finds_every_session_of_the_user(database_url: str) -> None:
    with keyed(database_url, None) as before:
        _session(before, "raw", "carol")  # stored before pseudonymisation was turned on
    with keyed(database_url, KEY) as first:
        _session(first, "old", "carol")
    with keyed(database_url, NEW_KEY, KEY) as rotated:
        _session(rotated, "new", "carol")
        # A replay of a session stored under the previous key is the same session.
        rotated.create_session(
            session_id="old", user_id="carol", search_results=[{"object_id": "o1"}]
        )
        assert stored_user_ids(database_url) == {
            "raw": "carol", "old": pseudonym(KEY, "carol"), "new": pseudonym(NEW_KEY, "carol"),
        }  # fmt: skip
        assert [line["session_id"] for line in rotated.iter_user("carol")] == ["raw", "old", "new"]
    with keyed(database_url, NEW_KEY) as forgot:  # the old key no longer listed
        assert [line["session_id"] for line in forgot.iter_user("carol")] == ["raw", "new"]
    with keyed(database_url, NEW_KEY, KEY) as rotated:
        erased = rotated.delete_user("carol")
        assert (erased.sessions, erased.events) == (3, 3)
        assert stored_user_ids(database_url) == {}


def test_the_pseudonymiser() -> None:
    p = Pseudonymiser(KEY, [NEW_KEY])
    assert p.stored("dave") == pseudonym(KEY, "dave")
    assert p.stored(p.stored("dave")) == p.stored("dave")  # a dump's pseudonyms stay as they are
    assert p.stored(None) is None
    assert p.candidates("dave") == ["dave", pseudonym(KEY, "dave"), pseudonym(NEW_KEY, "dave")]
    assert is_pseudonym(pseudonym(KEY, "x")) and not is_pseudonym("pu1_xyz")
    off = Pseudonymiser()
    assert not off.enabled and off.stored("dave") == "dave" and off.candidates("dave") == ["dave"]


def test_a_short_key_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="user_id_key"):
        Settings(user_id_key="short")


def test_a_bad_key_is_not_shown_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from searchtrail.settings import describe_settings_error

    monkeypatch.setenv("SEARCHTRAIL_USER_ID_KEY", "tooshort-secret")
    with pytest.raises(ValidationError) as e:
        Settings()
    message = describe_settings_error(e.value)
    assert "SEARCHTRAIL_USER_ID_KEY" in message and "tooshort-secret" not in message
