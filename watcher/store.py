"""All MongoDB access of the watcher: routed collections, dead letters, status, and the search
and shot join through the index strategy (watcher/indexes: the server's own indexes, or the
hand-made ones FerretDB needs).

Writes are idempotent without upserts: every document has a deterministic string `_id`
and is written with insert_many(ordered=False); a duplicate (error 11000) means "already
stored". This is as correct on MongoDB as upserts and, unlike upserts, fast on FerretDB
(where 1,000 upserts by `_id` take minutes and duplicate inserts a tenth of a second).
Reads that must stay fast on FerretDB address documents by string `_id` only (the one
query it pushes down to SQLite).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import bson
from bson.errors import InvalidDocument
from pymongo.errors import CollectionInvalid, OperationFailure

from core import mongo, slots
from core.slots import SlotCache

from . import indexes
from .indexes.base import FIELD_PATH, EventQuery, SearchResult  # noqa: F401 (the watcher's search API)
from .names import DEAD_LETTERS, FILE_LOG, STATUS

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's (and FerretDB's) maxBsonObjectSize

TIMESERIES = "time-series"
NORMAL = "normal"
NO_TIMESERIES = "normal (this server has no time-series collections)"


@dataclass
class WriteResult:
    inserted: int
    duplicates: list[int]  # positions in the batch already stored (same `_id`)
    rejected: dict[int, str]  # position in the batch → why the driver or the server refused it


def prepare_collection(name: str, timeseries: bool) -> str:
    """Create a routed collection and its indexes; returns what kind of collection it is.

    FerretDB has no time-series collections (it answers NotImplemented): the route then
    gets a normal collection, which the watcher logs and the watcher page shows.
    """
    db = mongo.database()
    existing = list(db.list_collections(filter={"name": name}))
    if existing:
        kind = TIMESERIES if existing[0].get("type") == "timeseries" else NORMAL
    elif timeseries:
        try:
            db.create_collection(name, timeseries={"timeField": "_ts", "granularity": "seconds"})
            kind = TIMESERIES
        except CollectionInvalid:
            return prepare_collection(name, timeseries)  # created meanwhile by another watcher
        except OperationFailure as exc:
            log.warning(
                "collection %s: time-series requested but the server refused (%s); using a normal collection",
                name,
                exc.details.get("errmsg", exc) if exc.details else exc,
            )
            kind = NO_TIMESERIES
    else:
        kind = NORMAL
    if timeseries and kind == NORMAL:
        kind = NO_TIMESERIES  # an existing normal collection (e.g. created by FerretDB earlier)
    indexes.strategy().prepare(name)  # the server's `shot_key` and `_ts` indexes, where it uses them
    return kind


def insert_idempotent(collection: str, documents: list[dict], timeseries: bool = False) -> WriteResult:
    """Insert documents, treating already-stored `_id`s as success.

    Connection errors propagate (the caller retries the whole batch); documents the driver or
    the server refuses for themselves are returned in `rejected` so the caller can dead-letter
    them, and the rest of the batch is stored. Time-series collections (real MongoDB only) have
    no unique `_id`, so the ids already there within the batch's time range are looked up
    (through the `_ts` index) and skipped.
    """
    positions = list(range(len(documents)))
    duplicates: list[int] = []
    if timeseries and documents:
        present = existing_ids(collection, documents)
        duplicates = [i for i in positions if documents[i]["_id"] in present]
        positions = [i for i in positions if documents[i]["_id"] not in present]
    try:
        return _insert_many(collection, documents, positions, duplicates, {})
    except (InvalidDocument, OverflowError):
        # The driver encodes the whole batch before sending any of it (a batch is far below the
        # 48 MB message limit), so nothing was written: find the documents it cannot encode
        # (only now: encoding every batch twice would cost the hot path) and store the rest.
        refused = {i: reason for i in positions if (reason := unencodable(documents[i]))}
        return _insert_many(collection, documents, [i for i in positions if i not in refused], duplicates, refused)


def _insert_many(
    collection: str, documents: list[dict], positions: list[int], duplicates: list[int], rejected: dict[int, str]
) -> WriteResult:
    """insert_many(ordered=False) of the documents at these positions; errors by position."""
    inserted = mongo.insert_by_id(mongo.database()[collection], [documents[i] for i in positions], keep_refused=True)
    duplicates.extend(positions[index] for index in inserted.duplicates)
    rejected.update({positions[index]: f"refused by MongoDB: {reason}" for index, reason in inserted.refused.items()})
    return WriteResult(inserted.count, sorted(duplicates), rejected)


def unencodable(document: dict) -> str | None:
    """Why the driver cannot send this document (an integer over 8 bytes, a NUL in a key, over
    the 16 MB document limit, …), or None."""
    try:
        size = len(bson.encode(document))
    except (InvalidDocument, OverflowError) as exc:
        return f"cannot be stored in MongoDB (BSON): {exc}"
    if size > MAX_DOCUMENT_BYTES:
        return f"cannot be stored in MongoDB: {size} bytes as BSON, over its limit of {MAX_DOCUMENT_BYTES} bytes"
    return None


def stored_document(collection: str, doc_id: str) -> dict | None:
    return mongo.database()[collection].find_one({"_id": doc_id})


def replace_document(collection: str, document: dict) -> None:
    """Replace by `_id` only: FerretDB does that without reading the whole collection."""
    mongo.database()[collection].replace_one({"_id": document["_id"]}, document)


def existing_ids(collection: str, documents: list[dict]) -> set:
    times = [doc["_ts"] for doc in documents]
    query = {"_ts": {"$gte": min(times), "$lte": max(times)}, "_id": {"$in": [doc["_id"] for doc in documents]}}
    return {doc["_id"] for doc in mongo.database()[collection].find(query, {"_id": 1})}


# --- dead letters and status ------------------------------------------------------------


def add_dead_letters(documents: list[dict]) -> WriteResult:
    return insert_idempotent(DEAD_LETTERS, documents)


def dead_letter_query(route: str = "", reason: str = "") -> dict:
    """Dead letters of a route (exactly) whose reason contains a text (any case), as
    `manage.py dead_letters replay --route --reason` picks them: plain values, never operators."""
    query: dict = {}
    if route:
        query["route"] = route
    if reason:
        query["error"] = {"$regex": re.escape(reason), "$options": "i"}
    return query


def dead_letters(limit: int = 50, route: str = "", reason: str = "") -> list[dict]:
    query = dead_letter_query(route, reason)
    return list(mongo.database()[DEAD_LETTERS].find(query).sort("at", -1).limit(limit))


def dead_letter_routes() -> list[str]:
    """The routes that have dead letters (a small collection: cheap on FerretDB too)."""
    return sorted(route for route in mongo.database()[DEAD_LETTERS].distinct("route") if route)


def dead_letters_to_replay(ids: list[str] | None = None) -> list[dict]:
    """The named dead letters (`_id` look-ups), or all of them (a small collection)."""
    collection = mongo.database()[DEAD_LETTERS]
    if ids is None:
        return list(collection.find().sort("_id", 1))
    return [letter for letter_id in ids if (letter := collection.find_one({"_id": letter_id})) is not None]


def remove_dead_letters(ids: list[str]) -> None:
    """By `_id`, one at a time: FerretDB deletes by `_id` without reading the whole collection."""
    collection = mongo.database()[DEAD_LETTERS]
    for letter_id in ids:
        collection.delete_one({"_id": letter_id})


def dead_letter_count(route: str = "", reason: str = "") -> int:
    """Dead letters are rare and the collection small, so counting it is cheap even on FerretDB."""
    return mongo.database()[DEAD_LETTERS].count_documents(dead_letter_query(route, reason))


def count(collection: str) -> int:
    return mongo.database()[collection].count_documents({})


def all_ids(collection: str) -> list[str]:
    return [doc["_id"] for doc in mongo.database()[collection].find({}, {"_id": 1})]


def save_status(watcher_name: str, status: dict) -> None:
    """The latest status of one watch process (a handful of small documents)."""
    mongo.database()[STATUS].replace_one({"_id": watcher_name}, {**status, "_id": watcher_name}, upsert=True)


def statuses(max_age_seconds: float = 30) -> list[dict]:
    """Statuses of the watch processes heard from recently."""
    now = datetime.now(UTC).timestamp()
    return [doc for doc in mongo.database()[STATUS].find() if now - doc.get("at", 0) <= max_age_seconds]


def routed_collections() -> list[str]:
    from .models import Route

    return sorted(set(Route.objects.values_list("collection", flat=True)))


def events_for_shot(shot_key: str, limit: int = 200) -> list[dict]:
    """Ingested events (any routed collection) with this shot key, newest first.

    Each event is the stored document plus `_collection`; provenance is in `_ingest`
    (topic, partition, offset, key, at). Never a scan of the (possibly huge) collections on a
    server that cannot use their indexes (the hand-made shot index).
    """
    return indexes.strategy().events_for_shot(str(shot_key), routed_collections(), max(0, limit))


def search(query: EventQuery) -> SearchResult:
    """Newest matching events of one routed collection (watcher/indexes says how they are found)."""
    if query.collection not in routed_collections():
        raise ValueError(f"'{query.collection}' is not a routed collection")
    query.mongo_filter()  # validates the field name
    return indexes.strategy().search(query, max(1, min(query.limit, 1000)))


def search_limits() -> dict:
    handmade = indexes.strategy().name == "handmade"
    return {
        "max_examined": indexes.handmade.MAX_EXAMINED if handmade else None,
        "max_fetched": indexes.handmade.MAX_FETCHED if handmade else None,
    }


def events_in_range(collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
    """A routed collection's events of a time range, newest first, projected on `_ts` and `path`."""
    if collection not in routed_collections():
        raise ValueError(f"'{collection}' is not a routed collection")
    if not FIELD_PATH.match(path):
        raise ValueError(f"'{path}' is not a field name (letters, digits, _ and dots)")
    return indexes.strategy().events_in_range(collection, since, until, path, max(1, limit))


# --- the indexes, as the watcher writes them ------------------------------------------------


def index_shots(documents_by_collection: dict[str, list[dict]], slots: dict[str, SlotCache]) -> None:
    indexes.strategy().index_shots(documents_by_collection, slots)


def index_times(
    documents_by_collection: dict[str, list[dict]], slots: dict[str, SlotCache], hours_known: set[tuple[str, str]]
) -> None:
    indexes.strategy().index_times(documents_by_collection, slots, hours_known)


def move_old_shot_index() -> int:
    return indexes.strategy().move_old_indexes()


# --- the file log: which shots got files, in the order they were stored ------------------------
# Events may name the files the DAQ wrote for their shot (`values.files` or `metadata.files`); a
# reader that must notice files arriving after it looked (the catalogue: a dataset sent before
# the camera's frame was ingested) follows this log instead of searching the events. Entry n is
# `_id = "<n, 12 digits>"` listing the shot keys of one indexing round (once a second), taken by
# inserting as the shot sheet's change log is: the gap-free run 1..N, read by `_id` only. Entry 0
# names the log's generation, so a reader notices a dropped or restored database.
_file_log_hint = {"last": 0}


def file_log_id(number: int) -> str:
    return f"{number:012d}"


def shots_with_files(documents_by_collection: dict[str, list[dict]]) -> list[str]:
    """The shot keys of the events that name files, each once, in order."""
    keys: dict[str, None] = {}
    for documents in documents_by_collection.values():
        for doc in documents:
            shot_key = doc.get("shot_key")
            if (
                isinstance(shot_key, str)
                and shot_key
                and any(
                    isinstance(place, dict) and isinstance(place.get("files"), list) and place["files"]
                    for place in (doc.get("values"), doc.get("metadata"))
                )
            ):
                keys[shot_key] = None
    return list(keys)


def log_files(documents_by_collection: dict[str, list[dict]]) -> int:
    """Log the shots of these stored events that name files (nothing when none does); returns the
    entry's number, or 0. Called after the events are stored; a retried batch logs them again
    (readers take an entry as "look again", so twice is harmless)."""
    shot_keys = shots_with_files(documents_by_collection)
    if not shot_keys:
        return 0
    log_collection = mongo.database()[FILE_LOG]
    first = file_log_end(_file_log_hint["last"]) + 1
    if first == 1:  # a new log: its generation first (of two watchers starting it, one's stays)
        mongo.insert_by_id(log_collection, [{"_id": file_log_id(0), "generation": uuid.uuid4().hex}])
    bodies = {"": [{"shots": shot_keys, "at": datetime.now(UTC)}]}
    next_free = slots.insert_slots(
        log_collection, bodies, {"": first}, make_id=lambda _, n: file_log_id(n), ordered=True, max_slots=None
    )
    _file_log_hint["last"] = next_free[""] - 1
    return _file_log_hint["last"]


def file_log_entry(number: int) -> dict | None:
    return mongo.database()[FILE_LOG].find_one({"_id": file_log_id(number)})


def file_log_generation() -> str | None:
    start = file_log_entry(0)
    return start["generation"] if start else None


def file_log_end(known: int = 0) -> int:
    """The number of the log's last entry (0: none)."""

    def exists(n: int) -> bool:
        return mongo.database()[FILE_LOG].find_one({"_id": file_log_id(n)}, projection={"_id": 1}) is not None

    return slots.last_number(exists, known)
