"""`export --negatives examined` and `--labels`: a click model fitted on the batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from searchtrail import Clickstream
from searchtrail.cli import main
from searchtrail.clickmodels.registry import MODELS
from searchtrail.errors import BadRequest, InvalidInput
from searchtrail.export import SESSIONS_SCHEMA
from tests import clickmodel_data
from tests.support import sqlite_only

pytestmark = sqlite_only  # the export's reads run on both dialects in tests/test_export.py


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clickstream, int]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('export-cm') / 'searchtrail.db'}"
    with Clickstream(settings=clickmodel_data.settings(url)) as cs:
        yield cs, clickmodel_data.load(cs)


def _records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["session_id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_examined_negatives_are_default_negatives(
    model: str, batch: tuple[Clickstream, int], tmp_path: Path
) -> None:
    cs, batch_id = batch
    cs.export(batch_id, tmp_path / "default.jsonl")
    cs.export(batch_id, tmp_path / "examined.jsonl", negatives="examined", clickmodel=model)
    default, examined = _records(tmp_path / "default.jsonl"), _records(tmp_path / "examined.jsonl")
    assert default.keys() == examined.keys()
    for sid, record in examined.items():
        assert set(record["negatives"]) <= set(default[sid]["negatives"]), sid
        assert len(record["negative_examined"]) == len(record["negatives"])
        assert all(p is not None and p >= 0.5 for p in record["negative_examined"])
        base = {k: v for k, v in record.items() if k not in ("negatives", "negative_examined")}
        assert base == {k: v for k, v in default[sid].items() if k != "negatives"}


def test_examined_negatives_drop_the_seldom_examined(
    batch: tuple[Clickstream, int], tmp_path: Path
) -> None:
    """Under COEC, positions 2 and 3 (never clicked) were seldom examined: a click on d
    at position 4 keeps only the result at position 1 as a negative."""
    if "coec" not in MODELS:
        pytest.skip("coec is not registered")
    cs, batch_id = batch
    cs.export(batch_id, tmp_path / "out.jsonl", negatives="examined", clickmodel="coec")
    records = _records(tmp_path / "out.jsonl")
    assert records["s1"]["negatives"] == ["b"]  # shown b, a, c, d; d clicked
    assert records["s16"]["negatives"] == ["a"]
    cs.export(batch_id, tmp_path / "low.jsonl", negatives="examined", clickmodel="coec",
              examined_threshold=0.0)  # fmt: skip
    assert _records(tmp_path / "low.jsonl")["s1"]["negatives"] == ["b", "a", "c"]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_labels_are_present_and_in_range(
    model: str, batch: tuple[Clickstream, int], tmp_path: Path
) -> None:
    cs, batch_id = batch
    out = tmp_path / "labels.parquet"
    cs.export(batch_id, out, format="parquet", labels=model)
    table = pq.read_table(out)
    added = ["positive_labels", "positive_grades", "negative_labels", "negative_grades"]
    assert table.schema.names == [*SESSIONS_SCHEMA.names, *added]
    for r in table.to_pylist():
        assert len(r["positive_labels"]) == len(r["positives"]) == len(r["positive_grades"])
        assert len(r["negative_labels"]) == len(r["negatives"]) == len(r["negative_grades"])
        assert all(x is not None and x >= 0 for x in r["positive_labels"] + r["negative_labels"])
        assert all(g in (0, 1, 2, 3) for g in r["positive_grades"] + r["negative_grades"])
    fitted = cs.fit_click_model(model, batch_id=batch_id)
    first = table.to_pylist()[0]
    p = fitted.pair_of("red shoes", first["positives"][0])
    assert p is not None and first["positive_grades"][0] == int(fitted.grade[p])


def test_the_default_export_is_unchanged(batch: tuple[Clickstream, int], tmp_path: Path) -> None:
    cs, batch_id = batch
    cs.export(batch_id, tmp_path / "lib.jsonl")
    assert all(list(r) == SESSIONS_SCHEMA.names for r in _records(tmp_path / "lib.jsonl").values())
    url = cs.settings.database_url
    args = ["export", "--batch", str(batch_id), "--database-url", url, "--no-progress"]
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "cli.jsonl")]).exit_code == 0
    assert (tmp_path / "cli.jsonl").read_bytes() == (tmp_path / "lib.jsonl").read_bytes()


def test_options_the_export_refuses(batch: tuple[Clickstream, int], tmp_path: Path) -> None:
    cs, batch_id = batch
    out = tmp_path / "x.jsonl"
    with pytest.raises(BadRequest, match="needs a click model"):
        cs.export(batch_id, out, negatives="examined")
    with pytest.raises(BadRequest, match="layout=sessions"):
        cs.export(batch_id, out, layout="triplets", labels=sorted(MODELS)[0])
    with pytest.raises(InvalidInput, match="labels"):
        cs.export(batch_id, out, labels="nosuch")
    args = ["export", "--batch", str(batch_id), "--out", str(out), "--labels", "nosuch"]
    result = CliRunner().invoke(main, [*args, "--database-url", cs.settings.database_url])
    assert result.exit_code == 2 and "available: " in result.output
    assert not out.exists()
