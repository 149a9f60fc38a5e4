"""Typed settings: flags, ``SEARCHTRAIL_*`` environment variables, or keyword arguments.

A wrong value fails at start-up with the variable's name, never at the first request.
The original service's ``CLICKSTREAM_TIME_MAX_DELTA_*`` variables are honoured too, so
an existing deployment keeps its window when it switches.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from searchtrail.errors import format_loc
from searchtrail.limits import DEFAULT_MAX_EVENTS_PER_SESSION, MAX_SESSION_EVENTS_LIMIT, Limits
from searchtrail.timestamps import TimeWindow

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Settings",
    "describe_settings_error",
    "env_names",
    "settings_table",
]

DEFAULT_DATABASE_URL = "sqlite:///searchtrail.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEARCHTRAIL_",
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="sqlite:///PATH (the embedded default) or postgresql://USER:PASS@HOST/DB.",
    )
    host: str = Field("127.0.0.1", description="Address `serve` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `serve` binds.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "uvicorn worker processes. On SQLite keep one: each worker commits on its own "
            "and they take turns on the database's one write lock, so more workers make "
            "writes slower (`serve` warns at start; docs/performance.md)."
        ),
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Server log level."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "`json`: one JSON object per line on stderr, a line per request (route, status, "
            "latency, key prefix, request id) and for every other record (docs/operating.md)."
        ),
    )

    time_max_delta_minus_sec: int = Field(
        12 * 3600,
        ge=0,
        validation_alias=AliasChoices(
            "SEARCHTRAIL_TIME_MAX_DELTA_MINUS_SEC",
            "CLICKSTREAM_TIME_MAX_DELTA_MINUS_SEC",
        ),
        description="How far in the past a client timestamp may be (seconds). "
        "Also read from CLICKSTREAM_TIME_MAX_DELTA_MINUS_SEC.",
    )
    time_max_delta_plus_sec: int = Field(
        5 * 60,
        ge=0,
        validation_alias=AliasChoices(
            "SEARCHTRAIL_TIME_MAX_DELTA_PLUS_SEC",
            "CLICKSTREAM_TIME_MAX_DELTA_PLUS_SEC",
        ),
        description="How far in the future a client timestamp may be (seconds). "
        "Also read from CLICKSTREAM_TIME_MAX_DELTA_PLUS_SEC.",
    )

    max_events_per_push: int = Field(1000, ge=1, description="Events in one push.")
    max_results_per_session: int = Field(1000, ge=0, description="Results in one session.")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="Request body size; beyond: 413.")
    max_id_chars: int = Field(128, ge=1, le=1024, description="Length of any id.")
    max_event_type_chars: int = Field(64, ge=1, le=1024, description="Length of an event type.")
    max_query_chars: int = Field(5000, ge=1, description="Length of a text query.")
    max_meta_bytes: int = Field(16_384, ge=2, description="JSON size of each meta object.")

    sqlite_busy_timeout_ms: int = Field(
        30_000,
        ge=0,
        description="How long a writer waits for another's lock before answering 503 "
        "(SQLite's busy timeout; PostgreSQL's lock_timeout).",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL survives power loss as well as a crash; NORMAL only a process crash.",
    )
    writer: Literal["auto", "thread", "process"] = Field(
        "auto",
        # Only prefixed names: an alias is also read as a bare environment variable, so
        # the old keyword ``sqlite_writer`` is renamed in ``_renamed`` instead.
        validation_alias=AliasChoices("SEARCHTRAIL_WRITER", "SEARCHTRAIL_SQLITE_WRITER"),
        description="Who commits HTTP registrations and pushes: a thread of the server "
        "process, or a process of their own (with its own GIL). auto: the process under "
        "`searchtrail serve`, the thread where the app is embedded in another process. "
        "Also read from SEARCHTRAIL_SQLITE_WRITER, its former name.",
    )
    ready_min_free_mb: float = Field(
        64.0,
        ge=0,
        description="On SQLite, /health/ready answers 503 while the file system holding the "
        "database has less room than this (MB, statvfs), before writes start failing 507.",
    )
    ready_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long /health/ready waits for its write to commit before it "
        "answers 503 (a load balancer's probe times out too).",
    )
    shutdown_grace_s: int = Field(
        30,
        ge=0,
        description="On SIGTERM, how long `serve` lets the requests in flight finish (each "
        "connection's next request is answered with Connection: close) before it cancels "
        "the rest; then it commits what it answered and exits.",
    )
    pool_size: int = Field(
        10,
        ge=1,
        description="PostgreSQL connections each process keeps open; as many more open under "
        "load, and up to as many again read sessions for HTTP gets (docs/postgresql.md).",
    )

    max_page_size: int = Field(
        1000,
        ge=1,
        description="Largest `limit` of GET /batch/sessions and of an improvement-queue claim.",
    )
    max_events_limit: int = Field(
        1000,
        ge=0,
        description="Largest `events_limit` (events per session) of GET /batch/sessions.",
    )
    strict_fields: bool = Field(
        False,
        description="Refuse a create or push carrying keys the contract does not name (422 "
        "extra_forbidden). Off: they are kept under `extra` and listed in the answer's "
        "`unknown_fields`, as the original service accepts them.",
    )
    max_events_per_session: int = Field(
        DEFAULT_MAX_EVENTS_PER_SESSION,
        ge=1,
        description="Events one session may hold; a push whose new events would pass it is "
        "refused whole (409 session_full). GET /session answers them in pages of at most "
        f"{MAX_SESSION_EVENTS_LIMIT:,} (`events_limit`, `events_after`).",
    )
    metrics_ranker_key: str = Field(
        "ranker",
        min_length=1,
        description="The key of `search_meta` whose value names a session's ranker (a model "
        "version, say), for metrics by ranker and the ranker comparison. Changing it "
        "recomputes every session's stats at the next refresh.",
    )
    metrics_team_key: str = Field(
        "team",
        min_length=1,
        description="The key of a search result's `meta` naming the ranker that placed it in "
        "an interleaved list (team draft): the comparison's interleaving preference.",
    )
    metrics_refresh_s: float = Field(
        60.0,
        ge=0,
        description="How often `serve` brings the metrics' per-session stats up to date in "
        "the background (0: only when metrics are asked for). A metrics request refreshes "
        "what is left first, so answers are exact either way; this keeps them fast.",
    )
    improvement_lease_sec: int = Field(
        600,
        ge=1,
        description="How long a claimed improvement-queue entry stays with its worker; "
        "unacknowledged after that, it is handed out again.",
    )
    improvement_max_attempts: int = Field(
        5,
        ge=1,
        description="Claims of one improvement-queue entry whose lease expired before it is "
        "marked failed instead of handed out again.",
    )
    export_event_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0},
        description="Weight of each event type in training data, as JSON; a result's weight is "
        "the largest of its events'; types not listed (or 0) do not make a positive.",
    )
    clickmodel_click_types: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["click", "add_to_cart", "purchase"],
        min_length=1,
        description="The event types that count as a click for the click models (`searchtrail "
        "clickmodel`, `export --negatives examined`, `--labels`), as JSON.",
    )

    user_id_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="A secret (16 characters or more) under which user ids are stored as "
        "keyed pseudonyms (HMAC-SHA256, `pu1_` and 64 hex digits) on every path that stores "
        "a session, so raw ids never reach the database; erase and export by raw id still "
        "work. Unset: ids are stored as sent (docs/privacy.md).",
    )
    user_id_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys used before `user_id_key`, as JSON: an erase or export by raw id "
        "also finds the sessions stored under them (key rotation, docs/privacy.md).",
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Sessions created longer ago than this (days) are removed with their "
        "events, queue entries and metrics stats, by `serve` in the background and by "
        "`searchtrail prune`. Unset: kept for ever.",
    )
    retention_keep_unarchived: bool = Field(
        True,
        description="Keep old sessions whose batch is not `archived` yet (collecting, "
        "released, fine-tuning): retention removes only archived batches' sessions.",
    )
    retention_interval_s: float = Field(
        3600.0,
        ge=0,
        description="How often `serve` prunes when `retention_days` is set (0: never in the "
        "background, only `searchtrail prune`).",
    )

    insecure: bool = Field(
        False,
        description="Let `serve` bind a non-loopback address while no API key exists "
        "(anyone who reaches the port can then read and write everything).",
    )
    auth_cache_sec: float = Field(
        5.0,
        ge=0,
        description="How long a process trusts a verified API key before reading it again; "
        "a revoke made by another process (`searchtrail keys revoke`) takes effect within this.",
    )
    rate_limit_per_sec: float = Field(
        100.0,
        ge=0,
        description="Requests per second allowed to each API key, per server process "
        "(token bucket); 0 turns the limit off.",
    )
    rate_limit_burst: int = Field(
        200, ge=1, description="Requests an API key may send at once before the rate applies."
    )
    anonymous_rate_limit_per_sec: float = Field(
        0.0,
        ge=0,
        description="While no API key exists: requests per second allowed to each client IP, "
        "per server process; 0 turns the limit off.",
    )
    anonymous_rate_limit_burst: int = Field(
        100, ge=1, description="Requests a client IP may send at once, while no API key exists."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins (as JSON, e.g. ["https://shop.example"]) whose pages may call '
        "the API from the browser; empty: no CORS headers at all.",
    )
    browser_prefix: str | None = Field(
        None,
        pattern=r"^(/[A-Za-z0-9._~-]+)+$",
        description="A second path prefix for the ingest endpoints and /st.js, e.g. /t, "
        "for pages whose ad-blockers drop paths that say analytics or events.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Keywords a setting had before it was renamed."""
        if isinstance(data, dict) and "sqlite_writer" in data:
            data = {**data}
            data.setdefault("writer", data.pop("sqlite_writer"))
        return data

    @property
    def limits(self) -> Limits:
        return Limits(
            max_events_per_push=self.max_events_per_push,
            max_results_per_session=self.max_results_per_session,
            max_body_bytes=self.max_body_bytes,
            max_id_chars=self.max_id_chars,
            max_event_type_chars=self.max_event_type_chars,
            max_query_chars=self.max_query_chars,
            max_meta_bytes=self.max_meta_bytes,
            max_page_size=self.max_page_size,
            max_events_limit=self.max_events_limit,
            strict_fields=self.strict_fields,
        )

    @property
    def time_window(self) -> TimeWindow:
        return TimeWindow(self.time_max_delta_minus_sec, self.time_max_delta_plus_sec)


_SECRETS = frozenset({"user_id_key", "user_id_previous_keys"})


def env_names(field: str) -> list[str]:
    """The environment variables that set ``field``, in the order they are looked up."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices if isinstance(c, str) and c.isupper()]
    return [f"SEARCHTRAIL_{field.upper()}"]


def describe_settings_error(exc: ValidationError) -> str:
    """One line per bad setting, naming the environment variable the operator actually set."""
    lines = []
    for err in exc.errors():
        name = format_loc(tuple(err["loc"])) or "settings"
        field = next((f for f in Settings.model_fields if name in (f, *env_names(f))), None)
        if field is not None:
            names = env_names(field)
            name = next((n for n in names if n in os.environ), names[0])
        elif not name.isupper():
            name = f"SEARCHTRAIL_{name.upper()}"
        # A secret's value stays out of the message (and so out of logs), even a bad one.
        got = "a secret, not shown" if field in _SECRETS else repr(err.get("input"))
        lines.append(f"{name}: {err['msg']} (got {got})")
    return "\n".join(lines)


def settings_table() -> str:
    """The Markdown table of docs/settings.md, so the docs are regenerated, never hand-kept."""
    import json

    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, dict) else str(default)
        envs = " / ".join(f"`{n}`" for n in env_names(name))
        rows.append(f"| `{name}` | {envs} | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"
