"""Size limits on what a client may send, in one value passed to validation.

They live apart from the settings so that models can be validated with them
(``Model.model_validate_json(raw, context={"limits": limits})``) without importing
the environment-reading settings class.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_EVENTS_PER_SESSION",
    "DEFAULT_SESSION_EVENTS_LIMIT",
    "MAX_SESSION_EVENTS_LIMIT",
    "Limits",
]

# GET /session: events answered when the client names no events_limit (the original
# service's default), and the most one page may ask for.
DEFAULT_SESSION_EVENTS_LIMIT = 100
MAX_SESSION_EVENTS_LIMIT = 10_000
# The events a session may hold unless the settings say otherwise (max_events_per_session).
DEFAULT_MAX_EVENTS_PER_SESSION = 10_000


@dataclass(frozen=True)
class Limits:
    max_events_per_push: int = 1000
    max_results_per_session: int = 1000
    max_body_bytes: int = 2_000_000
    max_id_chars: int = 128
    max_event_type_chars: int = 64
    max_query_chars: int = 5000
    max_meta_bytes: int = 16_384
    max_page_size: int = 1000
    max_events_limit: int = 1000
    # Refuse keys the contract does not name (422) instead of keeping them under extra.
    strict_fields: bool = False


DEFAULT_LIMITS = Limits()
