"""The contract's path prefixes, defined once for the HTTP app and the Python client.

The app mounts its routers (the browser script's too) under them and the client sends
under them by default; the bench reaches the service through both. No imports: the
client reads these without loading the server's packages.
"""

from __future__ import annotations

__all__ = ["CLIENT_PREFIX", "INTERNAL_PREFIX", "INTERNAL_SEGMENT", "internal_prefix_under"]

# Every client path also answers at the root; the internal API answers only under here.
CLIENT_PREFIX = "/api/v1/clickstream"
INTERNAL_SEGMENT = "/internal"
INTERNAL_PREFIX = CLIENT_PREFIX + INTERNAL_SEGMENT


def internal_prefix_under(client_prefix: str) -> str:
    """The internal API's prefix under ``client_prefix``; an empty one means the default."""
    return (client_prefix.rstrip("/") or CLIENT_PREFIX) + INTERNAL_SEGMENT
