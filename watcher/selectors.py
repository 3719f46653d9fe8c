"""What other apps may read of the watcher (the shot sheet shows a shot's ingested events).

A caller that must not fail on a database outage catches `pymongo.errors.PyMongoError`.
Importable when the watcher app is not installed (no models at import time).
"""

from . import store


def events_for_shot(shot_key: str, limit: int = 200) -> list[dict]:
    """Ingested events (any routed collection) with this shot key, newest first, each with its
    `_collection` and provenance (`_ingest`)."""
    return store.events_for_shot(shot_key, limit)
