"""All MongoDB access of the watcher: routed collections, dead letters, watcher status.

Writes are idempotent without upserts: every document has a deterministic string `_id`
and is written with insert_many(ordered=False); a duplicate (error 11000) means "already
stored". This is as correct on MongoDB as upserts and, unlike upserts, fast on FerretDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from labbook import mongo

DEAD_LETTERS = "dead_letters"
STATUS = "watcher_status"
DUPLICATE_KEY = 11000
FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


@dataclass
class WriteResult:
    inserted: int
    duplicates: int
    rejected: dict[int, str]  # index in the batch → the server's reason


def prepare_collection(name: str, timeseries: bool) -> bool:
    """Create a routed collection and its indexes; returns whether it is a time-series one."""
    db = mongo.database()
    is_timeseries = False
    if name not in db.list_collection_names():
        try:
            if timeseries:
                db.create_collection(name, timeseries={"timeField": "_ts", "granularity": "seconds"})
                is_timeseries = True
            else:
                db.create_collection(name)
        except CollectionInvalid:
            pass  # created meanwhile by another watcher
        except OperationFailure:
            db.create_collection(name)  # the server has no time-series collections (FerretDB)
    db[name].create_index("shot_key")
    db[name].create_index("_ts")
    return is_timeseries


def insert_idempotent(collection: str, documents: list[dict]) -> WriteResult:
    """Insert documents, treating already-stored `_id`s as success.

    Connection errors propagate (the caller retries the whole batch); documents the server
    refuses for themselves are returned in `rejected` so the caller can dead-letter them.
    """
    if not documents:
        return WriteResult(0, 0, {})
    try:
        result = mongo.database()[collection].insert_many(documents, ordered=False)
        return WriteResult(len(result.inserted_ids), 0, {})
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        rejected = {e["index"]: e.get("errmsg", "rejected") for e in errors if e.get("code") != DUPLICATE_KEY}
        return WriteResult(exc.details.get("nInserted", 0), len(errors) - len(rejected), rejected)


def add_dead_letters(documents: list[dict]) -> WriteResult:
    return insert_idempotent(DEAD_LETTERS, documents)


def dead_letters(limit: int = 50) -> list[dict]:
    return list(mongo.database()[DEAD_LETTERS].find().sort("at", -1).limit(limit))


def dead_letter_count() -> int:
    return mongo.database()[DEAD_LETTERS].count_documents({})


def count(collection: str) -> int:
    return mongo.database()[collection].count_documents({})


def all_ids(collection: str) -> list[str]:
    return [doc["_id"] for doc in mongo.database()[collection].find({}, {"_id": 1})]


def save_status(watcher_id: str, status: dict) -> None:
    mongo.database()[STATUS].replace_one({"_id": watcher_id}, {"_id": watcher_id, **status}, upsert=True)


def statuses() -> list[dict]:
    return list(mongo.database()[STATUS].find())


def routed_collections() -> list[str]:
    from .models import Route

    return sorted(set(Route.objects.values_list("collection", flat=True)))


def events_for_shot(shot_key: str, limit: int = 200) -> list[dict]:
    """Every ingested event with this shot key, newest first, tagged with its collection."""
    events = []
    for name in routed_collections():
        for doc in mongo.database()[name].find({"shot_key": str(shot_key)}).sort("_ts", -1).limit(limit):
            doc["_collection"] = name
            events.append(doc)
    events.sort(key=lambda doc: doc.get("_ts") or datetime.min, reverse=True)
    return events[:limit]


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
            query["_ts"] = {**({"$gte": self.since} if self.since else {}),
                            **({"$lte": self.until} if self.until else {})}
        if self.field:
            if not FIELD_PATH.match(self.field):
                raise ValueError(f"'{self.field}' is not a field name (letters, digits, _ and dots)")
            query[self.field] = {"$in": field_value_candidates(self.value)}
        return query


def field_value_candidates(text: str) -> list:
    """The typed values a search text may mean: '42' matches 42, 42.0 and '42'."""
    candidates: list = [text]
    for convert in (int, float):
        try:
            candidates.append(convert(text))
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        candidates.append(text.lower() == "true")
    return candidates


def search(query: EventQuery) -> list[dict]:
    if query.collection not in routed_collections():
        raise ValueError(f"'{query.collection}' is not a routed collection")
    cursor = mongo.database()[query.collection].find(query.mongo_filter()).sort("_ts", -1)
    return list(cursor.limit(max(1, min(query.limit, 1000))))
