"""Moving data in and out: searchtrail's own full dump and imports from other sources.

``records`` holds the normalized records every import source yields; ``open_source``
picks a source by its ``--format`` name.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from searchtrail.transfer.records import ImportOptions, ImportSource, SourceFactory

__all__ = ["FORMATS", "open_source"]

# --format name -> module holding ``open_source(path, options) -> ImportSource``.
FORMATS: dict[str, str] = {
    "searchtrail": "searchtrail.transfer.dump",
    "embedding-studio": "searchtrail.transfer.embedding_studio",
}


def open_source(path: Path, format: str, options: ImportOptions | None = None) -> ImportSource:
    """Open ``path`` as an import source of ``format`` (a key of ``FORMATS``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown import format {format!r}; one of {', '.join(FORMATS)}")
    module = importlib.import_module(FORMATS[format])
    factory: SourceFactory = module.open_source
    return factory(path, options or ImportOptions())
