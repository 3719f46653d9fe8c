"""What other apps may read of the relay (the shot sheet's current shot and shot times, the read
API's shots).

Plain reads of the relay's MongoDB state; a caller that must not fail on a database outage
catches `pymongo.errors.PyMongoError`. Importable when the relay app is not installed (no models).
"""

from . import shots as shot_search
from . import store
from .shots import ShotPage, ShotQuery  # noqa: F401 (the selector's arguments and result)


def latest_shot() -> dict | None:
    """The latest shot envelope the relay handled, or None before the first shot."""
    return store.latest_shot()


def shot(shot_key: str) -> dict | None:
    """The relay's record of a shot (its envelope; before the time and number indexes only key,
    number, laser time in ns, event id and source), or None if it never saw it."""
    return store.shot(shot_key)


def shots(query: ShotQuery) -> ShotPage:
    """Recorded shots by laser time or shot number (and experiment), a page at a time, newest
    first, with what the search read and whether it stopped at its limit (relay/shots.py)."""
    return shot_search.shots(query)


def shot_record(shot_key: str) -> dict | None:
    """The relay's record of a shot with every envelope field (None where a record made before
    the relay kept the whole envelope has none), or None if it never saw it."""
    raw = store.shot(shot_key)
    return shot_search.record(raw) if raw is not None else None
