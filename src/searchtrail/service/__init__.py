"""``Clickstream``: the library object that does the work; HTTP and the CLI are faces of it.

It applies the contract's rules (validation under the configured limits, the timestamp
window, idempotent replays) and leaves storage to ``searchtrail.storage``'s protocols.
"""

from searchtrail.service.batches import BATCH_TRANSITIONS
from searchtrail.service.clickstream import Clickstream

__all__ = ["BATCH_TRANSITIONS", "Clickstream"]
