"""Training data and whole-database transfer: export a batch, dump, import."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from searchtrail.export import ExportSummary, Format, Layout, export_batch
from searchtrail.service._base import ServiceBase

if TYPE_CHECKING:
    from searchtrail.transfer.dump import DumpFormat, DumpSummary
    from searchtrail.transfer.importer import ImportSummary
    from searchtrail.transfer.records import ImportSource

__all__ = ["TrainingOperations"]


class TrainingOperations(ServiceBase):
    def export(
        self,
        batch_id: int,
        out: str | Path,
        *,
        format: Format = "jsonl",
        layout: Layout = "sessions",
        weights: Mapping[str, float] | None = None,
        include_irrelevant: bool = False,
        test_fraction: float | None = None,
        split_at: int | str | None = None,
        progress: bool | None = None,
    ) -> ExportSummary:
        """Write a released batch as training data; see ``searchtrail.export``.

        ``weights`` default to the ``export_event_weights`` setting; ``split_at`` is a
        timestamp (epoch s, ms or ISO 8601) from which sessions go to the test split.
        """
        return export_batch(
            self.storage,
            self._batch_id(batch_id),
            out,
            format=format,
            layout=layout,
            weights=self.settings.export_event_weights if weights is None else weights,
            include_irrelevant=include_irrelevant,
            test_fraction=test_fraction,
            split_at=split_at,
            progress=progress,
        )

    # -- full dump and import -----------------------------------------------------

    def export_all(
        self, out: str | Path, *, format: DumpFormat = "jsonl", progress: bool | None = None
    ) -> DumpSummary:
        """Dump every table, every column, ids included, into the directory ``out``; see
        ``searchtrail.transfer.dump``. ``import_from`` reads it back."""
        from searchtrail.transfer.dump import export_all

        return export_all(self.storage.transfer, out, format=format, progress=progress)

    def import_from(
        self,
        source: str | Path | ImportSource,
        *,
        format: str = "searchtrail",
        rejects: str | Path | None = None,
        json_array: bool = False,
        progress: bool | None = None,
    ) -> ImportSummary:
        """Import a dump (``format="searchtrail"``) or another source; see
        ``searchtrail.transfer.importer``. Rows are validated under this service's limits,
        without the time window; refused rows go to ``rejects`` (JSONL)."""
        from searchtrail.transfer import open_source
        from searchtrail.transfer.importer import import_source
        from searchtrail.transfer.records import ImportOptions

        if isinstance(source, str | Path):
            name = str(source)
            opened = open_source(Path(source), format, ImportOptions(json_array=json_array))
        else:
            name, opened = getattr(source, "name", "source"), source
        return import_source(
            self.storage.transfer,
            opened,
            limits=self.limits,
            rejects=rejects,
            progress=progress,
            source_name=name,
            database=self.storage.location,
        )
