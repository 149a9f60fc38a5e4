"""``searchtrail serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import click

from searchtrail import __version__
from searchtrail.cli._common import Command, load_settings, safe_url
from searchtrail.logs import JsonFormatter, uvicorn_log_config

__all__ = ["serve"]

# prometheus_client's multiprocess directory (searchtrail.http.telemetry.MULTIPROC_ENV,
# not imported: that would import prometheus_client before the variable is set).
_METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@click.command(cls=Command)
@click.option("--host", help="Address to bind [SEARCHTRAIL_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to bind [SEARCHTRAIL_PORT, default 8000].")
@click.option(
    "--database-url",
    help="sqlite:///PATH or postgresql://... [SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db].",
)
@click.option("--workers", type=int, help="Worker processes [SEARCHTRAIL_WORKERS, default 1].")
@click.option("--log-level", help="critical|error|warning|info|debug [SEARCHTRAIL_LOG_LEVEL].")
@click.option(
    "--log-format",
    help="text|json: json logs one JSON object per line, one per request "
    "[SEARCHTRAIL_LOG_FORMAT, default text].",
)
@click.option("--max-events-per-push", type=int, help="[SEARCHTRAIL_MAX_EVENTS_PER_PUSH, 1000]")
@click.option(
    "--max-results-per-session", type=int, help="[SEARCHTRAIL_MAX_RESULTS_PER_SESSION, 1000]"
)
@click.option("--max-body-bytes", type=int, help="[SEARCHTRAIL_MAX_BODY_BYTES, 2000000]")
@click.option(
    "--strict-fields",
    is_flag=True,
    default=None,
    help="Refuse keys the contract does not name with 422 [SEARCHTRAIL_STRICT_FIELDS].",
)
@click.option(
    "--shutdown-grace-s",
    type=int,
    help="Seconds SIGTERM lets requests in flight finish [SEARCHTRAIL_SHUTDOWN_GRACE_S, 30].",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Bind a non-loopback --host although no API key exists [SEARCHTRAIL_INSECURE].",
)
def serve(**options: Any) -> None:
    """Start the HTTP service (uvicorn); SIGTERM drains it (docs/operating-health.md)."""
    from uvicorn.config import LOGGING_CONFIG

    from searchtrail.http.serving import run
    from searchtrail.service import Clickstream
    from searchtrail.timestamps import now_ms

    settings = load_settings(**options)
    say = _sayer(settings.log_format)
    # Check (or create, when empty) the schema once here, not racing in every worker.
    with Clickstream(settings=settings) as cs:
        # PostgreSQL: this month's and the next one's partitions, before any worker writes.
        cs.storage.ensure_partitions(now_ms())
        has_keys = cs.storage.keys.exist()
        on_sqlite = cs.storage.dialect == "sqlite"
    if has_keys:
        say("searchtrail: API keys are required (see `searchtrail keys list`).")
    else:
        if not _is_loopback(settings.host) and not settings.insecure:
            say(
                f"searchtrail: refusing to listen on {settings.host} with no API key: anyone "
                "who reaches the port could read and change everything.\n"
                "Create a key first (searchtrail keys create --name NAME --scope ingest), "
                "listen on 127.0.0.1, or pass --insecure (SEARCHTRAIL_INSECURE=1) if "
                "something in front of the service guards it.",
                level=logging.ERROR,
            )
            sys.exit(2)
        say(
            "searchtrail: no API key exists, so authentication is OFF"
            + (
                f" and --insecure exposes the service on {settings.host}"
                if not _is_loopback(settings.host)
                else "; listening on loopback only"
            )
            + " (create one with `searchtrail keys create`).",
            level=logging.WARNING,
        )
    say(
        f"searchtrail {__version__} on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker(s), database {safe_url(settings.database_url)})"
    )
    if settings.workers > 1 and on_sqlite:
        say(
            "searchtrail: on SQLite more workers make writes slower, not faster: each "
            "worker writes on its own and waits its turn for the database's one write "
            "lock (docs/settings.md, workers). Use one worker, or PostgreSQL.",
            level=logging.WARNING,
        )
    # Every worker's metrics go to files here, summed by whichever worker is scraped
    # (http/telemetry.py). Set before any process imports prometheus_client, which picks
    # its file-backed values on import; fresh, so no count of an earlier run is added.
    metrics_dir = tempfile.mkdtemp(prefix="searchtrail-metrics-")
    os.environ[_METRICS_DIR_ENV] = metrics_dir
    try:
        run(
            settings,
            log_config=uvicorn_log_config(settings.log_format, settings.log_level)
            or LOGGING_CONFIG,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _sayer(log_format: str) -> Callable[..., None]:
    """What serve says before uvicorn starts, to stderr: plain lines, or in the JSON
    format the logs that follow have (each stderr line a JSON object)."""
    formatter = JsonFormatter() if log_format == "json" else None

    def say(message: str, level: int = logging.INFO) -> None:
        if formatter is not None:
            record = logging.LogRecord("searchtrail.serve", level, __file__, 0, message, (), None)
            message = formatter.format(record)
        click.echo(message, err=True)

    return say


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
