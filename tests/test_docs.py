"""Nothing an operator can set or run goes undocumented."""

from __future__ import annotations

from pathlib import Path

import click

from searchtrail.cli import main
from searchtrail.cli.server import serve as serve_command
from searchtrail.settings import settings_table

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    assert settings_table() in text, "regenerate docs/settings.md: scripts/docs"


def _commands(group: click.Group, prefix: str = "searchtrail") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        out.append(path)
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
    return out


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = [c for c in _commands(main) if f"`{c}" not in text]
    assert missing == [], f"add these to docs/cli.md: {missing}"


def test_every_serve_flag_is_documented_and_is_a_setting() -> None:
    """Each flag of `serve` is in its row of docs/cli.md and sets the setting of its name
    (docs/settings.md), as `--log-format` sets `log_format`."""
    from searchtrail.settings import Settings

    row = next(
        line for line in (DOCS / "cli.md").read_text().splitlines() if "`searchtrail serve`" in line
    )
    flags = [o for p in serve_command.params if isinstance(p, click.Option) for o in p.opts]
    assert [f for f in flags if f"`{f}`" not in row] == []
    assert [f for f in flags if f[2:].replace("-", "_") not in Settings.model_fields] == []
