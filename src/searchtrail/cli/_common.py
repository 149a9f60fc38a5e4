"""What every command shares: settings from flags and environment, and how errors end it."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import ValidationError

from searchtrail.settings import Settings, describe_settings_error

__all__ = ["Command", "Group", "error_line", "load_settings", "safe_url"]


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


def _end_domain_errors(invoke: Any, ctx: click.Context) -> Any:
    """Run ``invoke(ctx)``; a domain error ends the command: one line naming it, exit 1."""
    from searchtrail.errors import SearchtrailError

    try:
        return invoke(ctx)
    except SearchtrailError as exc:
        names = []
        while ctx.parent is not None:
            names.append(ctx.info_name or "")
            ctx = ctx.parent
        click.echo(f"searchtrail {' '.join(reversed(names))}: {error_line(exc)}", err=True)
        sys.exit(1)


class Command(click.Command):
    """Every command ends a domain error the same way: one line naming it, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        return _end_domain_errors(super().invoke, ctx)


class Group(click.Group):
    """A group's own callback (``invoke_without_command``) ends domain errors as well."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        return _end_domain_errors(super().invoke, ctx)


def error_line(exc: Any) -> str:
    """The error's detail, plus the driver's first line (refused, bad password...) if any."""
    cause = getattr(exc.__cause__, "orig", None)
    first = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
    return f"{exc.detail}: {first}" if first else str(exc.detail)


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
