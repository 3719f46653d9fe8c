"""All MongoDB access of the watcher: routed collections, the shot index, dead letters, status.

Writes are idempotent without upserts: every document has a deterministic string `_id`
and is written with insert_many(ordered=False); a duplicate (error 11000) means "already
stored". This is as correct on MongoDB as upserts and, unlike upserts, fast on FerretDB
(where 1,000 upserts by `_id` take minutes and duplicate inserts a tenth of a second).

Reads that must stay fast on FerretDB address documents by string `_id` only (the one
query it pushes down to SQLite). The shot index keeps, per bucket of ten shots, slots
`_id = "<bucket>|<n>"` listing the shot keys, collections, ids and times of their events, so
the events of a shot are found with a few `_id` look-ups instead of a scan of every collection.
It is split into one small collection per shot date and lives, with the time index, in a
database of its own (`index_database()`): FerretDB writes each database's SQLite
file on its own, so the watcher writes the indexes and the events at the same time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import bson
from bson.errors import InvalidDocument
from pymongo.errors import AutoReconnect, BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure

from core import mongo
from core.matching import same, values_at
from core.slots import MAX_SLOTS as MAX_SHOT_SLOTS
from core.slots import SlotCache, insert_slots

log = logging.getLogger(__name__)

DEAD_LETTERS = "dead_letters"
STATUS = "watcher_status"
SHOT_INDEX = "shots"  # one collection per shot date: shots_20261124, …
OLD_SHOT_INDEX = "shot_index"  # the layout before the buckets: one document per shot key and slot
SHOT_KEY = re.compile(r"^(?P<prefix>.*-(?P<date>\d{8}))-(?P<number>\d+)$")
SHOTS_PER_BUCKET = 10  # a 1 kHz stream: 100 index documents a second; a slow laser: few slots a lookup
RESERVED = {DEAD_LETTERS, STATUS}
FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
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
            log.warning("collection %s: time-series requested but the server refused (%s); "
                        "using a normal collection", name, exc.details.get("errmsg", exc) if exc.details else exc)
            kind = NO_TIMESERIES
    else:
        kind = NORMAL
    if timeseries and kind == NORMAL:
        kind = NO_TIMESERIES  # an existing normal collection (e.g. created by FerretDB earlier)
    if mongo.queries_use_secondary_indexes():  # for queries of the data by other programs
        db[name].create_index("shot_key")
        db[name].create_index("_ts")
    start_time_index(name)
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


def _insert_many(collection: str, documents: list[dict], positions: list[int], duplicates: list[int],
                 rejected: dict[int, str]) -> WriteResult:
    """insert_many(ordered=False) of the documents at these positions; errors by position."""
    if not positions:
        return WriteResult(0, duplicates, rejected)
    try:
        result = mongo.database()[collection].insert_many([documents[i] for i in positions], ordered=False)
        return WriteResult(len(result.inserted_ids), duplicates, rejected)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        transient = [e for e in errors if e.get("code") in mongo.TRANSIENT_CODES]
        if transient:
            raise AutoReconnect(f"transient server error: {transient[0].get('errmsg')}") from exc
        for error in errors:
            if error.get("code") == mongo.DUPLICATE_KEY:
                duplicates.append(positions[error["index"]])
            else:
                rejected[positions[error["index"]]] = f"refused by MongoDB: {error.get('errmsg', 'rejected')}"
        return WriteResult(exc.details.get("nInserted", 0), sorted(duplicates), rejected)


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


# --- the shot index ---------------------------------------------------------------------

INDEX_DATABASE = "shots"  # a companion database: <MONGODB_DB>_shots


def index_database():
    """The shot and time indexes: a companion database, written in parallel with the events."""
    return mongo.database(INDEX_DATABASE)


def shot_bucket(shot_key: str) -> tuple[str, str]:
    """The shot index collection and bucket of a shot key: `<experiment>-<YYYYMMDD>-<number>`
    goes to that date's collection and the bucket of its ten shots (`ABC-20261124-123x` holds
    shots 1230-1239); any other key is a bucket of its own."""
    match = SHOT_KEY.match(shot_key)
    if match is None:
        return f"{SHOT_INDEX}_other", shot_key
    return f"{SHOT_INDEX}_{match['date']}", f"{match['prefix']}-{int(match['number']) // SHOTS_PER_BUCKET}x"


def index_shots(documents_by_collection: dict[str, list[dict]], slots: dict[str, SlotCache]) -> None:
    """Record where the events of each shot key are, one slot per bucket and call.

    The watcher calls this once a second for everything stored in that second, so a 1 kHz
    stream of distinct shots costs a hundred small index documents a second, not a thousand.
    Insert-only: a call takes the next free slot `"<bucket>|<n>"` of each bucket (a duplicate
    means the slot is taken, so try the next one; atomic across watchers). A replayed batch
    adds its references again in a new slot; readers deduplicate.
    """
    bodies: dict[str, dict[str, dict]] = {}  # index collection → bucket → four flat arrays
    for collection, documents in documents_by_collection.items():
        for doc in documents:
            shot_key = doc.get("shot_key")
            if not isinstance(shot_key, str) or not shot_key:
                continue
            name, bucket = shot_bucket(shot_key)
            by_bucket = bodies.setdefault(name, {})
            body = by_bucket.get(bucket)
            if body is None:
                body = by_bucket[bucket] = {"keys": [], "c": [], "ids": [], "ts": []}
            body["keys"].append(shot_key)
            body["c"].append(collection)
            body["ids"].append(doc["_id"])
            body["ts"].append(doc["_ts"])
    for name, by_bucket in bodies.items():
        _insert_slots(index_database()[name], by_bucket, slots.setdefault(name, SlotCache()))


def _insert_slots(collection, bodies_by_key: dict[str, dict], slots: SlotCache) -> None:
    """Insert each body as `"<key>|<n>"` with the next free n of its key (insert-only index)."""
    next_free = insert_slots(collection, {key: [body] for key, body in bodies_by_key.items()}, slots,
                             keep_refused=True, max_slots=MAX_SHOT_SLOTS)
    for key, slot in next_free.items():
        slots.remember(key, slot)


def move_old_shot_index() -> int:
    """Move the shot index of older versions (one document per shot key and slot, in
    `shot_index_<date>` of either database) into the buckets; returns how many index documents
    moved. Run before the watcher writes; idempotent (a move cut short is finished by the next
    start, and a reference added twice is read once)."""
    moved = 0
    for db in (mongo.database(), index_database()):
        for name in db.list_collection_names():
            if not (name.startswith(f"{OLD_SHOT_INDEX}_") or name == OLD_SHOT_INDEX):
                continue
            documents_by_collection: dict[str, list[dict]] = {}
            for doc in db[name].find():
                for ref in doc.get("refs", []):  # none in a slot kept empty for a refused entry
                    documents_by_collection.setdefault(ref["c"], []).append(
                        {"_id": ref["id"], "shot_key": doc["shot_key"], "_ts": ref.get("ts")})
                moved += 1
            index_shots(documents_by_collection, {})
            db.drop_collection(name)
            log.info("moved the shot index %s.%s into the buckets of %s", db.name, name,
                     index_database().name)
    return moved


def shot_refs(shot_key: str) -> list[dict]:
    """Every (collection, id, time) recorded for a shot key, without duplicates."""
    name, bucket = shot_bucket(shot_key)
    collection = index_database()[name]
    refs, seen = [], set()
    for slot in range(MAX_SHOT_SLOTS):
        doc = collection.find_one({"_id": f"{bucket}|{slot}"})
        if doc is None:
            break
        for key, c, i, ts in zip(doc.get("keys", []), doc.get("c", []), doc.get("ids", []), doc.get("ts", [])):
            if key == shot_key and (c, i) not in seen:
                seen.add((c, i))
                refs.append({"c": c, "id": i, "ts": ts})
    return refs


def _newest_first(ref_or_doc: dict, field: str) -> datetime:
    value = ref_or_doc.get(field)
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def events_for_shot(shot_key: str, limit: int = 200) -> list[dict]:
    """Ingested events (any routed collection) with this shot key, newest first.

    Each event is the stored document plus `_collection`; provenance is in `_ingest`
    (topic, partition, offset, key, at). Found through the shot index: one `_id` look-up
    per index slot and per event, never a scan of the (possibly huge) collections.
    """
    shot_key = str(shot_key)
    refs = sorted(shot_refs(shot_key), key=lambda ref: _newest_first(ref, "ts"), reverse=True)
    db = mongo.database()
    events = []
    for ref in refs[:max(0, limit)]:
        doc = db[ref["c"]].find_one({"_id": ref["id"]})
        if doc is not None and doc.get("shot_key") == shot_key:  # not replaced by a version of another shot
            doc["_collection"] = ref["c"]
            events.append(doc)
    return events


# --- dead letters and status ------------------------------------------------------------

def add_dead_letters(documents: list[dict]) -> WriteResult:
    return insert_idempotent(DEAD_LETTERS, documents)


def dead_letters(limit: int = 50) -> list[dict]:
    return list(mongo.database()[DEAD_LETTERS].find().sort("at", -1).limit(limit))


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


def dead_letter_count() -> int:
    """Dead letters are rare and the collection small, so counting it is cheap even on FerretDB."""
    return mongo.database()[DEAD_LETTERS].count_documents({})


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


# --- the time index ---------------------------------------------------------------------
# Per routed collection, in the index database: `times_<collection>` holds, per minute of `_ts`,
# insert-only slots `"<YYYYmmddHHMM>|<n>"` listing the events' ids, ts, sources and kinds (four
# flat arrays: a third of the cost of a list of subdocuments to write, half to read), and
# `hours_<collection>` one small document per hour that has any. A search by time, source or
# kind then reads the hours (a small collection), the slots of the minutes it needs newest
# first, and the events by `_id`: look-ups only, where FerretDB would read the whole collection.
# The index covers a collection only if it began with the collection (marker `complete`); one
# that held events before (ingested by an older version) is searched by a scan as before.

MINUTE = "%Y%m%d%H%M"
COMPLETE, PARTIAL = "complete", "partial"
# One search reads at most this many events by `_id` (field filters) and index references
# (source/kind filters), then stops and says so: about 5 s each.
MAX_FETCHED = 20_000
MAX_EXAMINED = 300_000


def time_index(collection: str):
    return index_database()[f"times_{collection}"]


def hours_index(collection: str):
    return index_database()[f"hours_{collection}"]


def start_time_index(collection: str) -> None:
    """Mark whether the time index covers the collection: only if it is empty now."""
    index = time_index(collection)
    if any(index.find_one({"_id": marker}, {"_id": 1}) for marker in (COMPLETE, PARTIAL)):
        return
    empty = mongo.database()[collection].find_one({}, {"_id": 1}) is None
    try:
        index.insert_one({"_id": COMPLETE if empty else PARTIAL, "at": datetime.now(UTC)})
    except DuplicateKeyError:
        pass  # another watcher decided first


def index_times(documents_by_collection: dict[str, list[dict]], slots: dict[str, SlotCache],
                hours_known: set[tuple[str, str]]) -> None:
    """Record a batch's events under the minute (and hour) of their `_ts`."""
    for collection, documents in documents_by_collection.items():
        by_start: dict[datetime, dict] = {}  # keyed by the minute's start: strftime per event was 4% of the CPU
        for doc in documents:
            ts = _newest_first(doc, "_ts").astimezone(UTC)
            body = by_start.get(start := ts.replace(second=0, microsecond=0))
            if body is None:
                body = by_start[start] = {"minute": start.strftime(MINUTE), "ids": [], "ts": [], "sources": [],
                                          "kinds": []}
            body["ids"].append(doc["_id"])
            body["ts"].append(ts)
            body["sources"].append(_text_or_none(doc.get("source")))
            body["kinds"].append(_text_or_none(doc.get("kind")))
        by_minute = {body["minute"]: body for body in by_start.values()}
        hours = {minute[:-2] for minute in by_minute} - {h for c, h in hours_known if c == collection}
        if hours:
            try:
                hours_index(collection).insert_many([{"_id": hour} for hour in sorted(hours)], ordered=False)
            except BulkWriteError as exc:
                codes = {e.get("code") for e in exc.details.get("writeErrors", [])} - {mongo.DUPLICATE_KEY}
                if codes & mongo.TRANSIENT_CODES:
                    raise AutoReconnect("hour index not written (transient)") from exc
                if codes:
                    raise
            hours_known.update((collection, hour) for hour in hours)
        _insert_slots(time_index(collection), by_minute, slots.setdefault(collection, SlotCache()))


def _text_or_none(value) -> str | None:
    """Source and kind as the index keeps them: text, or None for "read the event to know"."""
    return value if isinstance(value, str) else None


def _minute_refs(collection: str, minute: str) -> list[dict]:
    index, refs = time_index(collection), []
    for slot in range(MAX_SHOT_SLOTS):
        doc = index.find_one({"_id": f"{minute}|{slot}"})
        if doc is None:
            break
        refs.extend({"id": i, "ts": ts, "source": source, "kind": kind} for i, ts, source, kind
                    in zip(doc.get("ids", []), doc.get("ts", []), doc.get("sources", []), doc.get("kinds", [])))
    return refs


def _minutes_newest_first(collection: str, since: datetime | None, until: datetime | None):
    first = since.astimezone(UTC).strftime(MINUTE) if since else ""
    last = until.astimezone(UTC).strftime(MINUTE) if until else "9" * 12
    hours = sorted((doc["_id"] for doc in hours_index(collection).find({}, {"_id": 1})), reverse=True)
    for hour in hours:
        if hour < first[:10] or hour > last[:10]:
            continue
        for m in range(59, -1, -1):
            minute = f"{hour}{m:02d}"
            if first <= minute <= last:
                yield minute


@dataclass
class SearchResult:
    events: list[dict]
    complete: bool = True  # False: stopped after MAX_FETCHED events or MAX_EXAMINED references (narrow the time range)
    indexed: bool = True  # False: the collection was read whole (no complete time index)


def _search_by_time(query: EventQuery, limit: int) -> SearchResult:
    db, found, fetched, examined, seen = mongo.database()[query.collection], [], 0, 0, set()
    for minute in _minutes_newest_first(query.collection, query.since, query.until):
        if examined >= MAX_EXAMINED:
            return SearchResult(found, complete=False)
        refs = sorted(_minute_refs(query.collection, minute), key=lambda ref: _newest_first(ref, "ts"), reverse=True)
        examined += len(refs)
        for ref in refs:
            ts = _newest_first(ref, "ts")
            if (ref["id"] in seen or query.since and ts < query.since or query.until and ts > query.until
                    or query.source and ref.get("source") not in (None, query.source)
                    or query.kind and ref.get("kind") not in (None, query.kind)):
                continue
            if fetched >= MAX_FETCHED:
                return SearchResult(found, complete=False)
            fetched += 1
            doc = db.find_one({"_id": ref["id"]})
            if doc is None or _newest_first(doc, "_ts") != ts:
                continue  # refused by MongoDB, or a replayed batch's second reference (its `_ts` was "now")
            seen.add(ref["id"])
            if query.matches(doc):
                found.append(doc)
                if len(found) >= limit:
                    return SearchResult(found)
    return SearchResult(found)


# --- search -------------------------------------------------------------------------------

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

    def matches(self, doc: dict) -> bool:
        """The same filter evaluated in Python, for documents fetched by `_id`."""
        for name in ("source", "kind"):
            wanted = getattr(self, name)
            if wanted and not any(same(v, wanted) for v in values_at(doc, name)):
                return False
        ts = _newest_first(doc, "_ts")
        if self.since and ts < self.since or self.until and ts > self.until:
            return False
        if self.field:
            candidates = field_value_candidates(self.value)
            if not any(same(v, c) for v in values_at(doc, self.field) for c in candidates):
                return False
        return True


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


def search(query: EventQuery) -> SearchResult:
    """Newest matching events of one routed collection.

    With a shot key the shot index names the candidates, otherwise the time index does (both
    fast on any server). A collection the time index does not cover gets a filtered, sorted
    find, which FerretDB answers by reading the whole collection.
    """
    if query.collection not in routed_collections():
        raise ValueError(f"'{query.collection}' is not a routed collection")
    mongo_filter = query.mongo_filter()  # validates the field name
    limit = max(1, min(query.limit, 1000))
    if query.shot_key:
        db = mongo.database()
        found = []
        for ref in shot_refs(query.shot_key):
            if ref["c"] == query.collection:
                doc = db[ref["c"]].find_one({"_id": ref["id"]})
                if doc is not None and doc.get("shot_key") == query.shot_key and query.matches(doc):
                    found.append(doc)
        found.sort(key=lambda doc: _newest_first(doc, "_ts"), reverse=True)
        return SearchResult(found[:limit])
    if time_index(query.collection).find_one({"_id": COMPLETE}, {"_id": 1}) is not None:
        return _search_by_time(query, limit)
    cursor = mongo.database()[query.collection].find(mongo_filter).sort("_ts", -1)
    return SearchResult(list(cursor.limit(limit)), indexed=False)
