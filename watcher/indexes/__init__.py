"""How the watcher finds events by shot and by time, chosen the way Django picks a session engine.

`settings.LABBOOK_INDEX_STRATEGY` (env `LABBOOK_INDEX_STRATEGY`): `native` uses the server's own
indexes, `handmade` the indexes the watcher writes itself (FerretDB: see handmade.py), and `auto`
(the default) `native` on a server whose queries use secondary indexes, else `handmade`.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core import mongo

from .base import IndexStrategy
from .handmade import HandmadeIndexes
from .native import NativeIndexes

STRATEGIES: dict[str, IndexStrategy] = {"handmade": HandmadeIndexes(), "native": NativeIndexes()}
AUTO = "auto"


def strategy() -> IndexStrategy:
    """The strategy the settings name (read on each call, so a test can switch it)."""
    name = getattr(settings, "LABBOOK_INDEX_STRATEGY", AUTO)
    if name == AUTO:
        return STRATEGIES["native" if mongo.queries_use_secondary_indexes() else "handmade"]
    if name not in STRATEGIES:
        raise ImproperlyConfigured(
            f"LABBOOK_INDEX_STRATEGY is '{name}'; it must be one of {', '.join([AUTO, *STRATEGIES])}"
        )
    return STRATEGIES[name]
