"""The ``searchtrail`` command: ``serve`` is the main one.

Every option of ``serve`` is also a ``SEARCHTRAIL_*`` environment variable; flags are
written into the environment so that each uvicorn worker process builds the same
``Settings``. Settings are validated here first, so a wrong value stops the command
with the variable's name instead of starting workers that fail.

One module per command group: ``server`` (serve), ``data`` (insert, export, import),
``apikeys`` (keys), ``database`` (db), ``metrics`` (metrics, its tables and CSV in
``_metrics_output``), ``clickmodel`` (fit, compare), ``privacy`` (users, prune),
``spark`` (the Spark jobs); ``_common`` holds what they share. Each command imports the
service, the store, uvicorn or pyspark only when it runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import click

from searchtrail import __version__
from searchtrail.cli._common import Group
from searchtrail.cli.apikeys import keys
from searchtrail.cli.clickmodel import clickmodel
from searchtrail.cli.data import export, import_, insert
from searchtrail.cli.database import db
from searchtrail.cli.metrics import metrics
from searchtrail.cli.privacy import prune, users
from searchtrail.cli.server import serve
from searchtrail.cli.spark import spark

__all__ = ["main"]


@click.group(cls=Group)
@click.version_option(__version__, prog_name="searchtrail")
def main() -> None:
    """searchtrail: clickstream for search, as a service, a library and this command."""


for _command in (
    serve,
    insert,
    export,
    import_,
    keys,
    db,
    metrics,
    clickmodel,
    users,
    prune,
    spark,
):
    main.add_command(_command)
