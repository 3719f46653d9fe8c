"""What the watcher's search and shot join ask of an index strategy, and the search itself as a
value: a query of plain values (never an operator) and its result."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from core import mongo
from core.matching import equals

FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def event_time(ref_or_doc: dict, field: str) -> datetime:
    """The UTC time under `field`, for sorting newest first (no time: the oldest possible)."""
    value = ref_or_doc.get(field)
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def field_value_candidates(text: str) -> list:
    """The typed values a search text may mean: '42' matches 42, 42.0 and '42'."""
    candidates: list = [text]
    for convert in (int, float):
        with suppress(ValueError):
            candidates.append(convert(text))
    if text.lower() in ("true", "false"):
        candidates.append(text.lower() == "true")
    return candidates


@dataclass
class EventQuery:
    """A search of one ingested collection; every part is a plain value, never an operator."""

    collection: str
    shot_key: str = ""
    source: str = ""
    kind: str = ""
    since: datetime | None = None
    until: datetime | None = None
    field: str = ""
    value: str = ""
    limit: int = 100
    # Where the previous page ended (its last event's `_ts` and `_id`): newest first by (`_ts`, `_id`).
    after_ts: datetime | None = None
    after_id: str = ""

    def before_position(self, ts: datetime, doc_id: str) -> bool:
        """Whether an event comes after the previous page's last one (or there is no previous page)."""
        return self.after_ts is None or (ts, str(doc_id)) < (self.after_ts, self.after_id)

    def mongo_filter(self) -> dict:
        query: dict = {}
        for name in ("shot_key", "source", "kind"):
            if getattr(self, name):
                query[name] = str(getattr(self, name))
        if self.since or self.until:
            query["_ts"] = {
                **({"$gte": self.since} if self.since else {}),
                **({"$lte": self.until} if self.until else {}),
            }
        if self.field:
            if not FIELD_PATH.match(self.field):
                raise ValueError(f"'{self.field}' is not a field name (letters, digits, _ and dots)")
            query[self.field] = {"$in": field_value_candidates(self.value)}
        if self.after_ts is not None:
            query["$or"] = [{"_ts": {"$lt": self.after_ts}}, {"_ts": self.after_ts, "_id": {"$lt": self.after_id}}]
        return query

    def matches(self, doc: dict) -> bool:
        """The same filter evaluated in Python, for documents fetched by `_id`."""
        for name in ("source", "kind"):
            wanted = getattr(self, name)
            if wanted and not equals(doc, name, wanted):
                return False
        ts = event_time(doc, "_ts")
        if self.since and ts < self.since or self.until and ts > self.until:
            return False
        if not self.before_position(ts, doc["_id"]):
            return False
        return not self.field or any(equals(doc, self.field, c) for c in field_value_candidates(self.value))


@dataclass
class SearchResult:
    events: list[dict]
    complete: bool = True  # False: stopped after reading its limit of events or references (narrow the time range)
    indexed: bool = True  # False: the collection was read whole (no complete time index)
    examined: int = 0  # index references read (hand-made indexes)
    fetched: int = 0  # events read by `_id` to check them (hand-made indexes)


def newest_first(doc: dict) -> tuple[datetime, str]:
    """The search's order, newest first by (`_ts`, `_id`): total, so pages neither skip nor repeat."""
    return event_time(doc, "_ts"), str(doc["_id"])


def create_server_indexes(collection: str) -> None:
    """The server's own indexes on `shot_key` and `_ts` (the native strategy's, and on a server
    whose queries use them also for other programs' queries of the data)."""
    mongo.database()[collection].create_index("shot_key")
    mongo.database()[collection].create_index("_ts")


class IndexStrategy(ABC):
    """How the watcher finds events by shot key and by time: the server's own indexes
    (`native`), or indexes the watcher writes itself where the server cannot use its own
    (`handmade`, FerretDB). The watcher hands every stored batch to `index_shots` and
    `index_times` (once a second) and asks `events_for_shot` and `search`."""

    name: str

    @abstractmethod
    def prepare(self, collection: str) -> None:
        """Before the first event of a routed collection is stored (once per route change)."""

    def move_old_indexes(self) -> int:
        """Move the indexes an older version wrote into today's layout; how many moved."""
        return 0

    @abstractmethod
    def index_shots(self, documents_by_collection: dict[str, list[dict]], slots: dict) -> None:
        """Record where the events of each shot key are (`slots`: the next free slot per index
        collection, kept by the caller between calls)."""

    @abstractmethod
    def index_times(
        self, documents_by_collection: dict[str, list[dict]], slots: dict, hours_known: set[tuple[str, str]]
    ) -> None:
        """Record the events under their time."""

    @abstractmethod
    def events_for_shot(self, shot_key: str, collections: list[str], limit: int) -> list[dict]:
        """The events of a shot, newest first, each with `_collection`."""

    @abstractmethod
    def search(self, query: EventQuery, limit: int) -> SearchResult:
        """Newest events of `query.collection` that match the query (a routed collection)."""

    @abstractmethod
    def events_in_range(self, collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
        """The events of a time range [since, until), newest first, each only `_id`, `_ts` and the value at
        `path` (a checked dotted field name); at most `limit` of them (then not complete)."""
