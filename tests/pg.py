"""A real PostgreSQL server for the tests, started from the installed binaries.

``initdb`` and ``pg_ctl`` run in a temporary folder on a free port, listening on
127.0.0.1 only, so no server has to exist beforehand. PostgreSQL refuses to run as
root: when the tests do, the server runs as an unprivileged user (``nobody``) that
owns the folder. The schema is built once, by the migrations, in a template database.
Each test gets the working database copied from it once per run and emptied before
every test (deleting a few rows and restarting the sequences takes milliseconds where
``CREATE DATABASE`` takes a tenth of a second), so every test starts from numbers 1.

Durability settings are off (``fsync``): this server only has to survive the test
run, and a crash test kills searchtrail, not the machine. The benchmarks start the same
server with them on (``durable=True``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port

__all__ = ["REQUIRE_ENV", "PgServer", "find_bindir", "major_version", "start_server"]

REQUIRE_ENV = "SEARCHTRAIL_TESTS_REQUIRE_POSTGRES"
TEMPLATE = "searchtrail_template"
WORK = "searchtrail_test"


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres live: PATH, then pg_config, then Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def major_version(bindir: Path) -> str:
    """The server's major version ("15"): a cluster's files are only good for that one."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"\)\s*(\d+)", out)
    if found is None:
        raise RuntimeError(f"unexpected postgres --version output: {out!r}")
    return found.group(1)


@dataclass
class PgServer:
    bindir: Path
    root: Path
    port: int
    user: str | None
    keep: bool = False  # the cluster outlives the server: stop() leaves its folder
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _work_made: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str) -> None:
        """Run a server binary, as the unprivileged user when we are root."""
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    def admin(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in the ``postgres`` database; answers its rows, if any."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            cur = conn.execute(sql, params or None)
            return cur.fetchall() if cur.description else []

    def fresh_database(self) -> str:
        """The working database, emptied, with its sequences restarted; answers its URL.

        Connections a previous test left open are ended first, so none holds a lock.
        """
        import psycopg

        from searchtrail.storage.sql.schema import metadata

        url = self.url(WORK)
        if not self._work_made:
            self.admin(f"CREATE DATABASE {WORK} TEMPLATE {TEMPLATE}")
            self._work_made = True
        tables = list(reversed(metadata.sorted_tables))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            with conn.transaction():
                for table in tables:
                    conn.execute(f"DELETE FROM {table.name}")
                    for column in table.primary_key.columns:
                        conn.execute(
                            "SELECT setval(pg_get_serial_sequence(%s, %s), 1, false)",
                            (table.name, column.name),
                        )
        return url

    def new_database(self, template: str = TEMPLATE) -> str:
        """A database of its own, copied from ``template`` (``template0``: no schema at all)."""
        name = f"t{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self.run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast")
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and found no unprivileged user (postgres, nobody)")


# Test speed: this server only has to survive the test run.
NOT_DURABLE = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


def start_server(
    bindir: Path,
    *,
    durable: bool = False,
    shared_buffers: str = "64MB",
    root: Path | None = None,
    template: bool = True,
) -> PgServer:
    """initdb, start on a free port, and build the template database holding the schema.

    ``durable`` keeps PostgreSQL's own defaults (``fsync``, ``synchronous_commit``), which
    the benchmarks need: a server that need not survive a crash is faster than any user's.
    A ``root`` given is kept: a cluster already there is started again (the benchmarks
    keep their loaded get database that way), after stopping one a killed run left up.
    """
    user = _unprivileged_user()
    keep = root is not None
    if root is None:
        # Not under pytest's tmp folder: that one is private to root, and the server is not.
        root = Path(tempfile.mkdtemp(prefix="searchtrail-pg-"))
    else:
        root.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PgServer(bindir, root, free_port(), user, keep=keep)
    try:
        if not (server.datadir / "PG_VERSION").exists():
            server.run(
                str(bindir / "initdb"), "-D", str(server.datadir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        elif (server.datadir / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):  # not running: nothing to stop
                server.run(str(bindir / "pg_ctl"), "stop", "-D", str(server.datadir), "-m", "fast")
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={server.port}",
                f"-c unix_socket_directories={root}",
                *(() if durable else NOT_DURABLE),
                "-c max_connections=300",
                f"-c shared_buffers={shared_buffers}",
            ]
        )
        server.run(
            str(bindir / "pg_ctl"), "start", "-D", str(server.datadir), "-w", "-t", "60",
            "-l", str(root / "server.log"), "-o", options,
        )  # fmt: skip
    except BaseException:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if not template:
        return server
    try:
        from searchtrail.storage.sql.migrate import upgrade

        server.admin(f"CREATE DATABASE {TEMPLATE}")
        upgrade(server.url(TEMPLATE))
    except BaseException:
        server.stop()
        raise
    return server
