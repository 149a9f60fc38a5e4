"""The models ``searchtrail clickmodel`` knows, by name."""

from __future__ import annotations

from searchtrail.clickmodels.base import ClickModel
from searchtrail.clickmodels.cascade import Cascade
from searchtrail.clickmodels.coec import COEC
from searchtrail.clickmodels.dbn import DBN
from searchtrail.clickmodels.pbm import PBM
from searchtrail.clickmodels.sdbn import SDBN
from searchtrail.clickmodels.ubm import UBM

__all__ = ["MODELS", "make"]

MODELS: dict[str, type[ClickModel]] = {
    "coec": COEC,
    "cascade": Cascade,
    "dbn": DBN,
    "sdbn": SDBN,
    "pbm": PBM,
    "ubm": UBM,
}


def make(name: str) -> ClickModel:
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"no click model {name!r}: one of {', '.join(sorted(MODELS))}") from None
