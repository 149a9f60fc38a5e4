"""The HTTP face of the service: a thin FastAPI layer over ``Clickstream``."""

from searchtrail.http.app import create_app

__all__ = ["create_app"]
