"""``draining``: set once this process has begun to shut down (``http/serving.py``).

From then on ``/health/ready`` answers 503, and every response closes its connection.
"""

from __future__ import annotations

import threading

__all__ = ["draining"]

draining = threading.Event()
