"""The watcher's hand-made shot and time indexes, for a server whose queries cannot use secondary
indexes (FerretDB v1 answers only `_id` look-ups from an index and reads the whole collection for
any other filter: ≈ 4 s per 100,000 documents).

The shot index keeps, per bucket of ten shots, insert-only slots `_id = "<bucket>|<n>"` listing the
shot keys, collections, ids and times of their events, so the events of a shot are found with a
few `_id` look-ups instead of a scan of every collection. It is split into one small collection
per shot date and lives, with the time index, in a database of its own (`index_database()`):
FerretDB writes each database's SQLite file on its own, so the watcher writes the indexes and the
events at the same time.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from core import mongo
from core.envelope import key_prefix, parse_shot_key
from core.slots import SlotCache, insert_slots, read_slots

from ..names import OLD_SHOT_INDEX
from . import native
from .base import EventQuery, IndexStrategy, SearchResult, create_server_indexes, event_time, newest_first

log = logging.getLogger(__name__)

INDEX_DATABASE = "shots"  # a companion database: <MONGODB_DB>_shots (declared in apps.py)
SHOT_INDEX = "shots"  # one collection per shot date: shots_20261124, …
SHOTS_PER_BUCKET = 10  # a 1 kHz stream: 100 index documents a second; a slow laser: few slots a lookup
# How versions before 2026-12 bucketed keys: a pattern of their own, which also took keys
# `parse_shot_key` refuses (a number of fewer than six digits, no experiment, non-ASCII digits).
# Only read (shot_refs), never written.
LEGACY_SHOT_KEY = re.compile(r"^(?P<prefix>.*-(?P<date>\d{8}))-(?P<number>\d+)$")


def index_database():
    """The shot and time indexes: a companion database, written in parallel with the events."""
    return mongo.database(INDEX_DATABASE)


def shot_bucket(shot_key: str) -> tuple[str, str]:
    """The shot index collection and bucket of a shot key: a key `core.envelope.parse_shot_key`
    reads (`ABC-20261124-000123`, `ABC-r2-20261124-000123`) goes to its date's collection and the
    bucket of its ten shots (`ABC-20261124-12x` holds shots 120-129); any other key is a bucket of
    its own in `shots_other`."""
    key = parse_shot_key(shot_key)
    if key is None:
        return f"{SHOT_INDEX}_other", shot_key
    bucket = f"{key_prefix(key.experiment, key.run, key.date)}-{key.number // SHOTS_PER_BUCKET}x"
    return f"{SHOT_INDEX}_{key.date}", bucket


def legacy_shot_bucket(shot_key: str) -> tuple[str, str]:
    """Where versions before 2026-12 indexed a shot key (LEGACY_SHOT_KEY). The same as
    `shot_bucket` for every key `core.envelope.shot_key` makes."""
    match = LEGACY_SHOT_KEY.match(shot_key)
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
    next_free = insert_slots(
        collection,
        {key: [body] for key, body in bodies_by_key.items()},
        slots,
        keep_refused=True,
    )
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
                        {"_id": ref["id"], "shot_key": doc["shot_key"], "_ts": ref.get("ts")}
                    )
                moved += 1
            index_shots(documents_by_collection, {})
            db.drop_collection(name)
            log.info("moved the shot index %s.%s into the buckets of %s", db.name, name, index_database().name)
    return moved


def shot_refs(shot_key: str) -> list[dict]:
    """Every (collection, id, time) recorded for a shot key, without duplicates.

    A key whose bucket changed with the move to `parse_shot_key` (a few keys of other agents; none the
    relay makes) is also read where older versions indexed it: a read fallback rather than a
    migration, because moving those entries means reading the whole shot index (FerretDB scans
    ≈ 4 s per 100,000 documents, and the index grows by up to 100 documents a second) before
    the watcher may write, to find a handful, while the fallback costs nothing for the keys the
    relay makes and one more `_id` look-up for the others, with no state to resume after a kill.
    """
    refs, seen = [], set()
    for name, bucket in dict.fromkeys([shot_bucket(shot_key), legacy_shot_bucket(shot_key)]):
        for doc in read_slots(index_database()[name], bucket):
            for key, c, i, ts in zip(doc.get("keys", []), doc.get("c", []), doc.get("ids", []), doc.get("ts", [])):
                if key == shot_key and (c, i) not in seen:
                    seen.add((c, i))
                    refs.append({"c": c, "id": i, "ts": ts})
    return refs


def events_for_shot(shot_key: str, limit: int) -> list[dict]:
    """Through the shot index: one `_id` look-up per index slot and per event, never a scan of
    the (possibly huge) collections."""
    refs = sorted(shot_refs(shot_key), key=lambda ref: event_time(ref, "ts"), reverse=True)
    db = mongo.database()
    events = []
    for ref in refs[: max(0, limit)]:
        doc = db[ref["c"]].find_one({"_id": ref["id"]})
        if doc is not None and doc.get("shot_key") == shot_key:  # not replaced by a version of another shot
            doc["_collection"] = ref["c"]
            events.append(doc)
    return events


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
    with suppress(DuplicateKeyError):  # another watcher decided first
        index.insert_one({"_id": COMPLETE if empty else PARTIAL, "at": datetime.now(UTC)})


def index_times(
    documents_by_collection: dict[str, list[dict]], slots: dict[str, SlotCache], hours_known: set[tuple[str, str]]
) -> None:
    """Record a batch's events under the minute (and hour) of their `_ts`."""
    for collection, documents in documents_by_collection.items():
        by_start: dict[datetime, dict] = {}  # keyed by the minute's start: strftime per event was 4% of the CPU
        for doc in documents:
            ts = event_time(doc, "_ts").astimezone(UTC)
            body = by_start.get(start := ts.replace(second=0, microsecond=0))
            if body is None:
                body = by_start[start] = {
                    "minute": start.strftime(MINUTE),
                    "ids": [],
                    "ts": [],
                    "sources": [],
                    "kinds": [],
                }
            body["ids"].append(doc["_id"])
            body["ts"].append(ts)
            body["sources"].append(_text_or_none(doc.get("source")))
            body["kinds"].append(_text_or_none(doc.get("kind")))
        by_minute = {body["minute"]: body for body in by_start.values()}
        hours = {minute[:-2] for minute in by_minute} - {h for c, h in hours_known if c == collection}
        if hours:
            mongo.insert_by_id(hours_index(collection), [{"_id": hour} for hour in sorted(hours)])
            hours_known.update((collection, hour) for hour in hours)
        _insert_slots(time_index(collection), by_minute, slots.setdefault(collection, SlotCache()))


def _text_or_none(value) -> str | None:
    """Source and kind as the index keeps them: text, or None for "read the event to know"."""
    return value if isinstance(value, str) else None


def _minute_refs(collection: str, minute: str) -> list[dict]:
    refs = []
    for doc in read_slots(time_index(collection), minute):
        refs.extend(
            {"id": i, "ts": ts, "source": source, "kind": kind}
            for i, ts, source, kind in zip(
                doc.get("ids", []), doc.get("ts", []), doc.get("sources", []), doc.get("kinds", [])
            )
        )
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


def _search_by_time(query: EventQuery, limit: int) -> SearchResult:
    db, seen = mongo.database()[query.collection], set()
    result = SearchResult([])
    until = query.until if query.after_ts is None else min(filter(None, (query.until, query.after_ts)))
    for minute in _minutes_newest_first(query.collection, query.since, until):
        if result.examined >= MAX_EXAMINED:
            result.complete = False
            return result
        refs = _minute_refs(query.collection, minute)
        refs.sort(key=lambda ref: (event_time(ref, "ts"), str(ref["id"])), reverse=True)
        result.examined += len(refs)
        for ref in refs:
            ts = event_time(ref, "ts")
            if (
                ref["id"] in seen
                or query.since
                and ts < query.since
                or query.until
                and ts > query.until
                or not query.before_position(ts, ref["id"])
                or query.source
                and ref.get("source") not in (None, query.source)
                or query.kind
                and ref.get("kind") not in (None, query.kind)
            ):
                continue
            if result.fetched >= MAX_FETCHED:
                result.complete = False
                return result
            result.fetched += 1
            doc = db.find_one({"_id": ref["id"]})
            if doc is None or event_time(doc, "_ts") != ts:
                continue  # refused by MongoDB, or a replayed batch's second reference (its `_ts` was "now")
            seen.add(ref["id"])
            if query.matches(doc):
                result.events.append(doc)
                if len(result.events) >= limit:
                    return result
    return result


def search(query: EventQuery, limit: int) -> SearchResult:
    """With a shot key the shot index names the candidates, otherwise the time index does (both
    fast on any server). A collection the time index does not cover gets a filtered, sorted
    find, which FerretDB answers by reading the whole collection."""
    if query.shot_key:
        db = mongo.database()
        found, refs = [], shot_refs(query.shot_key)
        for ref in refs:
            if ref["c"] == query.collection:
                doc = db[ref["c"]].find_one({"_id": ref["id"]})
                if doc is not None and doc.get("shot_key") == query.shot_key and query.matches(doc):
                    found.append(doc)
        found.sort(key=newest_first, reverse=True)
        return SearchResult(found[:limit], examined=len(refs), fetched=len(found))
    if time_index(query.collection).find_one({"_id": COMPLETE}, {"_id": 1}) is not None:
        return _search_by_time(query, limit)
    cursor = mongo.database()[query.collection].find(query.mongo_filter()).sort([("_ts", -1), ("_id", -1)])
    return SearchResult(list(cursor.limit(limit)), indexed=False)


def events_in_range(collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
    """Through the time index: its references of the range, then each event by `_id` (newest
    first, at most `limit` read: the caller's bound on a range's cost)."""
    if time_index(collection).find_one({"_id": COMPLETE}, {"_id": 1}) is None:
        result = native.events_in_range_by_find(collection, since, until, path, limit)
        result.indexed = False
        return result
    db, seen, result = mongo.database()[collection], set(), SearchResult([])
    for minute in _minutes_newest_first(collection, since, until):
        refs = _minute_refs(collection, minute)
        refs.sort(key=lambda ref: (event_time(ref, "ts"), str(ref["id"])), reverse=True)
        result.examined += len(refs)
        for ref in refs:
            ts = event_time(ref, "ts")
            if ref["id"] in seen or ts < since or ts >= until:
                continue
            if result.fetched >= limit:
                result.complete = False
                return result
            result.fetched += 1
            doc = db.find_one({"_id": ref["id"]}, {"_ts": 1, path: 1})
            if doc is None or event_time(doc, "_ts") != ts:
                continue  # refused by MongoDB, or a replayed batch's second reference
            seen.add(ref["id"])
            result.events.append(doc)
    return result


class HandmadeIndexes(IndexStrategy):
    """For FerretDB, which answers only `_id` look-ups from an index (module docstring)."""

    name = "handmade"

    def prepare(self, collection: str) -> None:
        if mongo.queries_use_secondary_indexes():  # forced on such a server: for other programs' queries
            create_server_indexes(collection)
        start_time_index(collection)

    def move_old_indexes(self) -> int:
        return move_old_shot_index()

    def index_shots(self, documents_by_collection: dict[str, list[dict]], slots: dict) -> None:
        index_shots(documents_by_collection, slots)

    def index_times(
        self, documents_by_collection: dict[str, list[dict]], slots: dict, hours_known: set[tuple[str, str]]
    ) -> None:
        index_times(documents_by_collection, slots, hours_known)

    def events_for_shot(self, shot_key: str, collections: list[str], limit: int) -> list[dict]:
        return events_for_shot(shot_key, limit)

    def search(self, query: EventQuery, limit: int) -> SearchResult:
        return search(query, limit)

    def events_in_range(self, collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
        return events_in_range(collection, since, until, path, limit)
