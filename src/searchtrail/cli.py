"""The ``searchtrail`` command: ``serve`` is the main one.

Every option of ``serve`` is also a ``SEARCHTRAIL_*`` environment variable; flags are
written into the environment so that each uvicorn worker process builds the same
``Settings``. Settings are validated here first, so a wrong value stops the command
with the variable's name instead of starting workers that fail.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import ValidationError

from searchtrail import __version__
from searchtrail.settings import Settings, describe_settings_error

__all__ = ["main"]


def load_settings(**overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        os.environ[f"SEARCHTRAIL_{key.upper()}"] = str(value)
    try:
        return Settings()
    except ValidationError as exc:
        click.echo(f"searchtrail: invalid setting\n{describe_settings_error(exc)}", err=True)
        click.echo("Hint: see `searchtrail serve --help` and docs/settings.md.", err=True)
        sys.exit(2)


@click.group()
@click.version_option(__version__, prog_name="searchtrail")
def main() -> None:
    """searchtrail: clickstream for search, as a service, a library and this command."""


@main.command()
@click.option("--host", help="Address to bind [SEARCHTRAIL_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port to bind [SEARCHTRAIL_PORT, default 8000].")
@click.option(
    "--database-url",
    help="sqlite:///PATH or postgresql://... [SEARCHTRAIL_DATABASE_URL, default sqlite:///searchtrail.db].",
)
@click.option("--workers", type=int, help="Worker processes [SEARCHTRAIL_WORKERS, default 1].")
@click.option("--log-level", help="critical|error|warning|info|debug [SEARCHTRAIL_LOG_LEVEL].")
@click.option("--max-events-per-push", type=int, help="[SEARCHTRAIL_MAX_EVENTS_PER_PUSH, 1000]")
@click.option(
    "--max-results-per-session", type=int, help="[SEARCHTRAIL_MAX_RESULTS_PER_SESSION, 1000]"
)
@click.option("--max-body-bytes", type=int, help="[SEARCHTRAIL_MAX_BODY_BYTES, 2000000]")
def serve(**options: Any) -> None:
    """Start the HTTP service (uvicorn)."""
    import uvicorn

    from searchtrail.service import Clickstream

    settings = load_settings(**options)
    # Create the schema once here, not racing in every worker.
    Clickstream(settings=settings).close()
    click.echo(
        f"searchtrail {__version__} on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker(s), database {_safe_url(settings.database_url)})",
        err=True,
    )
    uvicorn.run(
        "searchtrail.http.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    main()
