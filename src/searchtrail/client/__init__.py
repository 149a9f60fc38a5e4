"""Talk to a searchtrail service over HTTP: ``Client``/``AsyncClient`` for every endpoint,
``Tracker``/``AsyncTracker`` for recording from a search backend's hot path."""

from searchtrail.client._calls import CLIENT_PREFIX, ConnectionFailed, ServerError
from searchtrail.client._tracking import Rejection, TrackerStats
from searchtrail.client.aio import AsyncClient
from searchtrail.client.async_tracker import AsyncTracker
from searchtrail.client.sync import Client
from searchtrail.client.tracker import Tracker

__all__ = [
    "CLIENT_PREFIX",
    "AsyncClient",
    "AsyncTracker",
    "Client",
    "ConnectionFailed",
    "Rejection",
    "ServerError",
    "Tracker",
    "TrackerStats",
]
