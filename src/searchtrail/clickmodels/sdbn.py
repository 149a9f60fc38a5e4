"""SDBN: the simplified DBN (Chapelle & Zhang 2009), DBN's chain with gamma = 1.

Fitted in closed form, as PyClick's SDBN: a session counts as examined every shown
position down to its last click, and all its shown positions when it has no click (with
gamma = 1 a user who never clicks scans the whole list). With PyClick's prior (one hit
in two trials: a pair never seen is 0.5, nothing is 0 or 1):

- alpha = (clicks + 1) / (examinations + 2);
- sigma = (last clicks + 1) / (clicks + 2): a click with none below satisfied the user.

The counts estimate something a little off the chain's parameters: a click is last
when the user was satisfied or when, unsatisfied, they clicked nothing more below, so
sigma estimates sigma + (1 - sigma) P(no click below | went on), high where few
attractive results follow (a short list's last positions); and the positions such a
user examined below the last click go uncounted, so alpha comes out somewhat high too.
DBN's EM has neither bias. The posterior examination (``examined``) is the chain's with
gamma = 1: 1 down to the last click, and below it P(not satisfied at the last click |
no click below).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from searchtrail.clickmodels.cascade import CascadeFamily, smoothed
from searchtrail.clickmodels.log import ClickLog

__all__ = ["SDBN"]


class SDBN(CascadeFamily):
    name: ClassVar[str] = "sdbn"

    def fit(self, log: ClickLog) -> None:
        shown, click = log.shown, log.click & log.shown
        # Down to the last click: no click strictly below; a session without clicks
        # counts whole.
        clicks_below = click[:, ::-1].cumsum(axis=1)[:, ::-1] - click
        examined = shown & ((clicks_below > 0) | click | ~click.any(axis=1, keepdims=True))
        last = click & (clicks_below == 0)
        clicks = np.bincount(log.pair[click], minlength=log.pairs)
        self.alpha = smoothed(clicks, np.bincount(log.pair[examined], minlength=log.pairs))
        self.sigma = smoothed(np.bincount(log.pair[last], minlength=log.pairs), clicks)
        self.gamma = 1.0

    def params(self) -> dict[str, Any]:
        return {"gamma": 1.0}
