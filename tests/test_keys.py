"""KeyRing (keys as a library) and the token bucket, without HTTP."""

from __future__ import annotations

import pytest

from searchtrail import Clickstream, InvalidInput, NotFound, Settings
from searchtrail.errors import RateLimited
from searchtrail.keys import Scope, hash_key, split_key
from searchtrail.ratelimit import RateLimiter


def test_create_verify_revoke(cs: Clickstream) -> None:
    assert cs.keys.required() is False
    made = cs.keys.create("job", ["admin", "read", "read"])
    assert made.scopes == [Scope.ADMIN, Scope.READ]
    assert split_key(made.key) == made.prefix and len(made.key) > 50
    assert cs.keys.required() is True
    assert cs.keys.verify(made.key) == cs.keys.list()[0]
    assert cs.keys.verify(made.key + "x") is None
    assert cs.keys.verify(made.key[:-1] + ("a" if made.key[-1] != "a" else "b")) is None
    for malformed in ("", "st_", "nope", "st_abc_def", f"st_{made.prefix}x{made.key[16:]}"):
        assert cs.keys.verify(malformed) is None
    first = cs.keys.revoke(made.prefix)
    assert first.revoked and cs.keys.verify(made.key) is None
    assert cs.keys.revoke(str(made.key_id)).revoked_at_ms == first.revoked_at_ms
    assert cs.keys.required() is True  # revoked keys still count: no silent reopening


def test_only_the_hash_is_stored(cs: Clickstream) -> None:
    made = cs.keys.create("k", ["ingest"])
    with cs.storage.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT prefix, key_hash FROM api_keys").one()
    assert tuple(row) == (made.prefix, hash_key(made.key))


def test_a_prefix_of_digits_is_a_prefix(cs: Clickstream) -> None:
    made = cs.keys.create("k", ["ingest"])
    digits = "123456789012"
    with cs.storage.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE api_keys SET prefix = '{digits}'")
    assert cs.keys.revoke(digits).key_id == made.key_id


def test_bad_input_names_the_field(cs: Clickstream) -> None:
    with pytest.raises(InvalidInput, match="scopes"):
        cs.keys.create("k", ["root"])
    with pytest.raises(InvalidInput, match="scopes"):
        cs.keys.create("k", [])
    with pytest.raises(InvalidInput, match="name"):
        cs.keys.create("", ["read"])
    with pytest.raises(NotFound, match="API key 7 not found"):
        cs.keys.revoke(7)
    # Found by schemathesis: these reached the driver (OverflowError on SQLite, a 500).
    for bad in (0, -1, 2**63, 2**64 + 1, "18446744073709551617", ""):
        with pytest.raises(InvalidInput, match="key_id"):
            cs.keys.revoke(bad)


def test_another_process_sees_keys_after_the_cache(database_url: str) -> None:
    settings = Settings(database_url=database_url, auth_cache_sec=0)
    with Clickstream(settings=settings) as server, Clickstream(settings=settings) as cli:
        assert server.keys.required() is False
        made = cli.keys.create("k", ["read"])
        assert server.keys.required() is True
        assert server.keys.verify(made.key) is not None
        cli.keys.revoke(made.key_id)
        assert server.keys.verify(made.key) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.take("a", "key a")
    with pytest.raises(RateLimited, match="key a") as refused:
        limiter.take("a", "key a")
    assert refused.value.retry_after == 1
    limiter.take("b", "key b")  # buckets are per name
    clock.now += 0.5  # one token back
    limiter.take("a", "key a")
    with pytest.raises(RateLimited):
        limiter.take("a", "key a")
    clock.now += 100  # never more than the burst
    for _ in range(3):
        limiter.take("a", "key a")
    with pytest.raises(RateLimited):
        limiter.take("a", "key a")


def test_a_slow_rate_says_how_long_to_wait_and_off_means_off() -> None:
    limiter = RateLimiter(0.01, 1, clock=Clock())
    limiter.take("a", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", "a")
    assert refused.value.retry_after == 100
    off = RateLimiter(0, 1)
    for _ in range(10):
        off.take("a", "a")


def test_buckets_are_bounded() -> None:
    limiter = RateLimiter(1.0, 1, max_buckets=2, clock=Clock())
    for name in "abc":
        limiter.take(name, name)
    limiter.take("a", "a")  # "a" was the oldest and was dropped: a fresh bucket
