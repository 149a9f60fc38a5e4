"""What every command shares: settings from flags and environment, and how errors end it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from searchtrail.settings import Settings, describe_settings_error

__all__ = ["Command", "Group", "error_line", "load_settings", "safe_url", "scope_options"]

F = TypeVar("F", bound=Callable[..., Any])


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


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | int | None:
    """ISO 8601 (no offset = UTC) or epoch digits, as the HTTP routes take them."""
    from searchtrail.timestamps import to_epoch_ms

    if value is None:
        return None
    text = value.strip()
    given: str | int = int(text) if text.isascii() and text.isdigit() else text
    try:
        to_epoch_ms(given)
    except ValueError as exc:
        raise click.BadParameter(
            f"{exc}; a time is ISO 8601 (no offset = UTC) or epoch digits (milliseconds; "
            "below 10^11, seconds)",
            ctx,
            param,
        ) from None
    return given


def scope_options(irrelevant: str, *more: Callable[[F], F]) -> Callable[[F], F]:
    """The options that pick sessions (``--since``, ``--until``, ``--include-irrelevant``,
    ``irrelevant`` its help), then ``more``, then ``--database-url``, in that order in
    ``--help``: one definition, so the metrics and click-model commands read times alike."""
    options: list[Callable[[F], F]] = [
        click.option(
            "--since",
            metavar="TIME",
            callback=_time,
            help="Sessions created at or after this (ISO 8601 or epoch digits).",
        ),
        click.option(
            "--until", metavar="TIME", callback=_time, help="Sessions created before this."
        ),
        click.option("--include-irrelevant", is_flag=True, help=irrelevant),
        *more,
        click.option("--database-url", help="[SEARCHTRAIL_DATABASE_URL]"),
    ]

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply
