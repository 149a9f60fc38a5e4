"""The import's summary: counts per table, the message, the exit code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["EXIT_REJECTED", "SUMMARY_REJECTS", "ImportSummary", "TableCounts", "message"]

# Exit code of `searchtrail import` when rows were rejected or in conflict (the rest is
# imported); 0 when every row was imported or already there.
EXIT_REJECTED = 3
# Rejects quoted in the summary itself (all of them go to the rejects file).
SUMMARY_REJECTS = 10


class TableCounts(BaseModel):
    read: int = Field(0, description="Rows read from the source.")
    new: int = Field(0, description="Rows stored by this import.")
    already_there: int = Field(0, description="Rows the database held already, unchanged.")
    merged: int = Field(
        0, description="Collecting batches whose sessions joined the target's collecting batch."
    )
    rejected: int = Field(0, description="Rows refused (invalid, or their session was).")
    conflicts: int = Field(0, description="Rows whose key is taken by different content.")


class ImportSummary(BaseModel):
    source: str
    format: str
    database: str
    tables: dict[str, TableCounts]
    new: int = Field(0, description="Rows stored, all tables.")
    already_there: int = 0
    rejected: int = 0
    conflicts: int = 0
    rejects_file: str | None = Field(None, description="Where every refused row went.")
    first_rejects: list[dict[str, Any]] = Field(
        default_factory=list, description="The first few refused rows' source, line, reason."
    )
    message: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_REJECTED if self.rejected or self.conflicts else 0


def message(s: ImportSummary) -> str:
    refused = s.rejected + s.conflicts
    if s.new == 0 and refused == 0:
        return "nothing new: every row was already there"
    text = f"imported {s.new} new rows, {s.already_there} already there"
    if refused:
        where = (
            f" (see {s.rejects_file})" if s.rejects_file else " (pass --rejects FILE to keep them)"
        )
        text += f"; {s.rejected} rejected and {s.conflicts} in conflict{where}"
    return text
