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
        return not self.field or any(equals(doc, self.field, c) for c in field_value_candidates(self.value))


@dataclass
class SearchResult:
    events: list[dict]
    complete: bool = True  # False: stopped after reading its limit of events or references (narrow the time range)
    indexed: bool = True  # False: the collection was read whole (no complete time index)


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
