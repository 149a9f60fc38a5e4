"""User ids as keyed pseudonyms: HMAC-SHA256 under the ``user_id_key`` setting.

With a key set, every path that stores a session (the HTTP create, the library, the
service's bulk register, ``searchtrail import``) stores ``stored(user_id)`` instead of
the id, so the raw id never reaches the database. The same id under the same key is the
same pseudonym, so sessions of one user still group together (metrics, training data).

Invariants:

- ``stored`` is idempotent: a value that already has the pseudonym's form
  (``PREFIX`` and 64 hex digits) is kept, so an import of a dump written under
  pseudonymisation does not hash its pseudonyms again.
- ``candidates`` of an id are every value a session of that user may hold: the
  pseudonym under the current key and under each previous key (rotation), and the id
  itself (data stored before the key was set, or a pseudonym given directly). An erase
  or export by raw id that looked for fewer would leave that user's older sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = ["PREFIX", "Pseudonymiser", "is_pseudonym"]

# "pseudonymous user, scheme 1": recognisable in a row, a log or an export.
PREFIX = "pu1_"
_FORM = re.compile(rf"{PREFIX}[0-9a-f]{{64}}")


def is_pseudonym(value: str) -> bool:
    return _FORM.fullmatch(value) is not None


class Pseudonymiser:
    """What a user id is stored as, under a current key and previous ones (or none)."""

    def __init__(self, key: str | None = None, previous: Sequence[str] = ()) -> None:
        self._key = key.encode() if key else None
        self._previous = [k.encode() for k in previous if k]

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def stored(self, user_id: str | None) -> str | None:
        """The value stored for ``user_id``: its pseudonym under the current key, or the id
        itself when no key is set (and ``None`` for no user)."""
        if user_id is None or self._key is None or is_pseudonym(user_id):
            return user_id
        return _pseudonym(self._key, user_id)

    def candidates(self, user_id: str) -> list[str]:
        """Every stored value that means ``user_id``: the id and its pseudonyms under the
        current and previous keys."""
        keys = [k for k in (self._key, *self._previous) if k is not None]
        values = [user_id, *(_pseudonym(k, user_id) for k in keys)]
        return list(dict.fromkeys(values))


def _pseudonym(key: bytes, user_id: str) -> str:
    return PREFIX + hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()
