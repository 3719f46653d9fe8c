"""What other apps may read of the relay (the shot sheet's current shot and shot times).

Plain reads of the relay's MongoDB state; a caller that must not fail on a database outage
catches `pymongo.errors.PyMongoError`. Importable when the relay app is not installed (no models).
"""

from . import store


def latest_shot() -> dict | None:
    """The latest shot envelope the relay handled, or None before the first shot."""
    return store.latest_shot()


def shot(shot_key: str) -> dict | None:
    """The relay's record of a shot (key, number, laser time in ns), or None if it never saw it."""
    return store.shot(shot_key)
