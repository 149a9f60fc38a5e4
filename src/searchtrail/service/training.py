"""Training data and whole-database transfer: export a batch, dump, import."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from searchtrail.errors import BadRequest, FieldError, InvalidInput
from searchtrail.export import ExportSummary, Format, Layout, export_batch
from searchtrail.service._base import ServiceBase

if TYPE_CHECKING:
    from searchtrail.clickfit import FittedClickModel
    from searchtrail.export_clickmodels import ClickModelJudge
    from searchtrail.transfer.dump import DumpFormat, DumpSummary
    from searchtrail.transfer.importer import ImportSummary
    from searchtrail.transfer.lake import LakeSummary
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
        negatives: Literal["skip_above", "examined"] = "skip_above",
        labels: str | None = None,
        clickmodel: str | None = None,
        examined_threshold: float = 0.5,
    ) -> ExportSummary:
        """Write a released batch as training data; see ``searchtrail.export``.

        ``weights`` default to the ``export_event_weights`` setting; ``split_at`` is a
        timestamp (epoch s, ms or ISO 8601) from which sessions go to the test split.

        With a click model fitted on the batch's sessions (docs/clickmodels.md):
        ``negatives="examined"`` keeps the skip-above negatives examined with probability
        >= ``examined_threshold`` under ``clickmodel`` (default: the ``labels`` model);
        ``labels`` adds each positive's and negative's relevance and grade (layout
        sessions). Without them the output is the same as ever.
        """
        batch_id = self._batch_id(batch_id)
        judge_with = self._click_judge(
            batch_id, layout, negatives, labels, clickmodel, examined_threshold
        )
        return export_batch(
            self.storage,
            batch_id,
            out,
            format=format,
            layout=layout,
            weights=self.settings.export_event_weights if weights is None else weights,
            include_irrelevant=include_irrelevant,
            test_fraction=test_fraction,
            split_at=split_at,
            progress=progress,
            judge_with=judge_with,
        )

    def _click_judge(
        self,
        batch_id: int,
        layout: str,
        negatives: str,
        labels: str | None,
        clickmodel: str | None,
        threshold: float,
    ) -> ClickModelJudge | None:
        from searchtrail.clickmodels.registry import MODELS

        errors: list[FieldError] = []
        if negatives not in ("skip_above", "examined"):
            errors.append(FieldError(("negatives",), "must be skip_above or examined"))
        for field, name in (("labels", labels), ("clickmodel", clickmodel)):
            if name is not None and name not in MODELS:
                known = ", ".join(sorted(MODELS))
                errors.append(FieldError((field,), f"no click model {name!r}: one of {known}"))
        if not 0 <= threshold <= 1:
            errors.append(FieldError(("examined_threshold",), "must be between 0 and 1"))
        if errors:
            raise InvalidInput(errors)
        if negatives == "skip_above" and labels is None:
            if clickmodel is not None:
                raise BadRequest("clickmodel chooses the model of negatives=examined")
            return None
        if labels is not None and layout != "sessions":
            raise BadRequest("labels need layout=sessions: a triplet row has no label columns")
        negatives_model = clickmodel or labels
        if negatives == "examined" and negatives_model is None:
            raise BadRequest("negatives=examined needs a click model: give clickmodel or labels")
        from searchtrail.export_clickmodels import ClickModelJudge

        fits: dict[str, FittedClickModel] = {}
        for name in {labels, negatives_model if negatives == "examined" else None} - {None}:
            assert name is not None
            fits[name] = self._fit_batch(batch_id, name)
        return ClickModelJudge(
            negatives=fits[negatives_model]
            if negatives == "examined" and negatives_model
            else None,
            labels=fits[labels] if labels is not None else None,
            threshold=threshold,
            click_types=self.settings.clickmodel_click_types,
        )

    def _fit_batch(self, batch_id: int, name: str) -> FittedClickModel:
        """``name`` fitted on the batch's relevant sessions."""
        from searchtrail.clickfit import fit_log
        from searchtrail.clickmodels.log import read_click_log
        from searchtrail.storage import MetricsScope

        types = self.settings.clickmodel_click_types
        scope = MetricsScope(batch_id=batch_id)
        log = read_click_log(self.storage.reads, scope, click_types=types)
        described = {
            "since": None,
            "until": None,
            "include_irrelevant": False,
            "batch_id": batch_id,
            "click_types": list(types),
            "max_position": log.max_position,
        }
        return fit_log(name, log, described)

    # -- full dump and import -----------------------------------------------------

    def export_all(
        self, out: str | Path, *, format: DumpFormat = "jsonl", progress: bool | None = None
    ) -> DumpSummary:
        """Dump every table, every column, ids included, into the directory ``out``; see
        ``searchtrail.transfer.dump``. ``import_from`` reads it back."""
        from searchtrail.transfer.dump import export_all

        return export_all(self.storage.transfer, out, format=format, progress=progress)

    def export_lake(self, lake: str | Path, *, progress: bool | None = None) -> LakeSummary:
        """Export the sessions and events above the lake's watermark into the Parquet lake
        ``lake``, and its batches; see ``searchtrail.transfer.lake`` and docs/lake.md."""
        from searchtrail.transfer.lake import export_lake

        return export_lake(self.storage.transfer, lake, progress=progress)

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
            # Not a copy of every row where ids are stored as read.
            user_ids=self.pseudonyms.stored if self.pseudonyms.enabled else None,
        )
