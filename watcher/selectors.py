"""What other apps may read of the watcher: a shot's ingested events (the shot sheet, the read
API), and the read API's event search and time ranges.

A caller that must not fail on a database outage catches `pymongo.errors.PyMongoError`.
Importable when the watcher app is not installed (no models at import time).
"""

from datetime import datetime

from . import store
from .store import FIELD_PATH, EventQuery, SearchResult  # noqa: F401 (the selectors' arguments and results)


def events_for_shot(shot_key: str, limit: int = 200) -> list[dict]:
    """Ingested events (any routed collection) with this shot key, newest first, each with its
    `_collection` and provenance (`_ingest`)."""
    return store.events_for_shot(shot_key, limit)


def routed_collections() -> list[str]:
    """The collections the routes write (the only ones the search and the time ranges read)."""
    return store.routed_collections()


def search(query: EventQuery) -> SearchResult:
    """The watcher's search (its page's): newest first by (`_ts`, `_id`), at most 1,000 events;
    the result says how much of the indexes it read and whether it stopped at its limits.
    ValueError for a collection no route writes or a field that is not a plain dotted name."""
    return store.search(query)


def events_in_range(collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
    """A routed collection's events of a time range [since, until), newest first, each only `_id`, `_ts` and the
    value at `path`; at most `limit` read (then `complete` is False). ValueError as `search`."""
    return store.events_in_range(collection, since, until, path, limit)


def search_limits() -> dict:
    """How much one search reads at most before it stops and says so (None: the server's own
    indexes, no limit of the watcher's)."""
    return store.search_limits()


def shots_with_files_logged(number: int) -> dict | None:
    """Entry `number` of the watcher's file log (`{"shots": [shot keys], "at": when stored}`: shots
    whose events named files, in the order they were stored), None past its end (a read by `_id`;
    the log is the gap-free run 1..N, so the first missing number ends it)."""
    return store.file_log_entry(number) if number > 0 else None


def file_log_generation() -> str | None:
    """The generation of the file log: it changes when the database was dropped or restored."""
    return store.file_log_generation()


def file_log_end() -> int:
    """The number of the file log's last entry (0: none): where a new reader starts."""
    return store.file_log_end()
