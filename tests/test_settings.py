"""Settings read under their names, and under the names they had before."""

from __future__ import annotations

import pytest

from searchtrail.settings import Settings


@pytest.mark.parametrize("name", ["SEARCHTRAIL_WRITER", "SEARCHTRAIL_SQLITE_WRITER"])
def test_the_writer_is_read_under_its_name_and_its_old_one(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "thread")
    assert Settings().writer == "thread"


def test_the_writer_is_a_keyword_under_its_name_and_its_old_one() -> None:
    assert Settings(writer="process").writer == "process"
    assert Settings(sqlite_writer="thread").writer == "thread"  # type: ignore[call-arg]


def test_a_variable_without_the_prefix_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRITER", "yes")
    assert Settings().writer == "auto"


@pytest.mark.parametrize(
    "name", ["SQLITE_WRITER", "TIME_MAX_DELTA_MINUS_SEC", "TIME_MAX_DELTA_PLUS_SEC"]
)
def test_no_bare_name_is_read_from_the_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "not a value")
    Settings()  # neither read nor refused


def test_the_time_window_keywords_keep_their_names() -> None:
    settings = Settings(time_max_delta_minus_sec=5, time_max_delta_plus_sec=6)
    assert (settings.time_max_delta_minus_sec, settings.time_max_delta_plus_sec) == (5, 6)
