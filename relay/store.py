"""The relay's small MongoDB state: its latest shot, live status, and a record of each shot by key,
findable by laser time and by shot number.

FerretDB v1 answers only `_id` look-ups from an index; any other filter or sort reads the whole
collection (≈ 4 s per 100,000 documents), and a relay records up to 10 Hz × days of shots. So
`relay_shots` is addressed by shot key only, and two small hand-made indexes written with the
shots name the keys to look up:

- *by time*: `relay_shot_minutes` holds insert-only slots `"<YYYYmmddHHMM>|<n>"` (core/slots.py)
  listing the keys and times of the shots of that UTC minute of laser time (relay time for a
  shot without one), one slot per minute per status round (0.5 s); `relay_shot_hours` one tiny
  document per hour that has any. A time range reads the hours, then its minutes newest first.
- *by number*: a shot key is `<experiment>[-r<run>]-<date>-<number>`, so the keys of a number
  range are known once the runs are: `relay_shot_runs` keeps one document per experiment, local
  day and run (`"<experiment>|<YYYYMMDD>|<run>"`) with its first and last shot number and time,
  and the range is probed key by key, newest first.

Shots recorded before these indexes (key, number, laser time, event id, source only) are found by
a scan until `manage.py relay_index_shots` indexed them (`index_complete()`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from core import mongo
from core.envelope import parse_shot_key
from core.slots import SlotCache, insert_slots, read_slots
from core.times import from_ns

log = logging.getLogger(__name__)

STATE = "relay_state"
SHOTS = "relay_shots"  # one document per shot key: `_id` look-ups are the one query FerretDB indexes
MINUTES = "relay_shot_minutes"
HOURS = "relay_shot_hours"
RUNS = "relay_shot_runs"
INDEX_STATE = "shot_index"  # in STATE: whether the indexes cover every recorded shot
SHOT_FIELDS = ("shot_key", "shot_number", "laser_ts_ns", "event_id", "source")  # what records before the indexes kept
RECORD_FIELDS = (  # a shot's envelope as recorded since (not its kind, always a shot, nor its transport)
    "shot_key",
    "shot_number",
    "experiment",
    "source",
    "laser_ts_ns",
    "relay_ts_ns",
    "seq",
    "event_id",
    "values",
    "metadata",
)
MINUTE = "%Y%m%d%H%M"
MINUTE_NS = 60 * 10**9


def save_state(status: dict, last_shot: dict | None) -> None:
    collection = mongo.database()[STATE]
    collection.replace_one({"_id": "status"}, {"_id": "status", **status}, upsert=True)
    if last_shot:
        collection.replace_one({"_id": "latest_shot"}, {"_id": "latest_shot", "envelope": last_shot}, upsert=True)


def latest_shot() -> dict | None:
    """The latest shot envelope the relay handled, or None before the first shot."""
    document = mongo.database()[STATE].find_one({"_id": "latest_shot"})
    return document["envelope"] if document else None


@dataclass
class ShotIndexState:
    """What the relay process knows of its indexes, so a round writes only what is new; and the
    records it has not indexed yet (a round whose index write failed: tried again next round)."""

    minute_slots: SlotCache = field(default_factory=SlotCache)
    hours: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    pending: list[dict] = field(default_factory=list)
    started: bool = False  # `start_shot_index` done


def record_shots(envelopes: list[dict], state: ShotIndexState | None = None, *, index: bool = True) -> None:
    """Record each shot's envelope by its key, and (unless `index` is False: `index_recorded`
    later) index it by time and number.

    The first envelope of a key wins (a duplicate shot keeps the time of the shot it repeats).
    Called by the relay's status thread twice a second for the shots of that half second, with
    the relay's own `state` (without one, every hour and run is written again: duplicates ignored).
    """
    state = state if state is not None else ShotIndexState()
    documents = [
        {"_id": e["shot_key"], **{name: e.get(name) for name in RECORD_FIELDS}} for e in envelopes if e.get("shot_key")
    ]
    if not documents:
        return
    if not state.started:
        start_shot_index()
        state.started = True
    inserted = mongo.insert_by_id(mongo.database()[SHOTS], documents)
    duplicates = set(inserted.duplicates)
    documents = [doc for i, doc in enumerate(documents) if i not in duplicates]  # indexed when first recorded
    state.pending.extend(documents)
    if index:
        index_recorded(state)


def index_recorded(state: ShotIndexState) -> None:
    """Index the records of the rounds not indexed yet (kept for the next round if this fails)."""
    if state.pending:
        index_shots(state.pending, state)
        state.pending = []


def shot(shot_key: str) -> dict | None:
    """The relay's record of a shot (its envelope; before the time and number indexes only key,
    number, laser time in ns, event id and source), or None if it never saw it."""
    return mongo.database()[SHOTS].find_one({"_id": shot_key}, projection={"_id": 0})


def status() -> dict | None:
    document = mongo.database()[STATE].find_one({"_id": "status"})
    if document:
        document.pop("_id")
    return document


# --- the indexes by time and by number ------------------------------------------------------


def shot_time_ns(record: dict) -> int | None:
    """The time a shot is indexed and sorted by: its laser time, else when the relay stamped it."""
    laser = record.get("laser_ts_ns")
    return laser if isinstance(laser, int) else record.get("relay_ts_ns")


def run_id(experiment: str, date: str, run: int) -> str:
    return f"{experiment}|{date}|{run}"


def index_shots(records: list[dict], state: ShotIndexState) -> None:
    """Add shot records to the time and number indexes (insert-only slots, one `_id` update per run).

    Per record only integer arithmetic and dict look-ups: minutes are named once per minute and
    shot keys parsed once per run (the status thread shares the relay's interpreter)."""
    db = mongo.database()
    by_minute: dict[int, dict] = {}  # by minute since the epoch
    runs: dict[str, dict] = {}  # by the key's part before its number
    for record in records:
        ns = shot_time_ns(record)
        if isinstance(ns, int):
            body = by_minute.get(ns // MINUTE_NS)
            if body is None:
                body = by_minute[ns // MINUTE_NS] = {"minute": from_ns(ns).strftime(MINUTE), "keys": [], "ts": []}
            body["keys"].append(record["shot_key"])
            body["ts"].append(ns)
        prefix, _, number = record["shot_key"].rpartition("-")
        run = runs.get(prefix)
        if run is None and (parts := parse_shot_key(record["shot_key"])) is not None:
            run = runs[prefix] = {"experiment": parts.experiment, "date": parts.date, "run": parts.run}
            run |= {"numbers": [], "ts": []}
        if run is not None and number.isascii() and number.isdigit() and len(number) >= 6:  # as parse_shot_key
            run["numbers"].append(int(number))
            if isinstance(ns, int):
                run["ts"].append(ns)
    by_minute = {body.pop("minute"): body for body in by_minute.values()}
    runs = {run_id(run["experiment"], run["date"], run["run"]): run for run in runs.values() if run["numbers"]}
    hours = {minute[:-2] for minute in by_minute} - state.hours
    if hours:
        mongo.insert_by_id(db[HOURS], [{"_id": hour} for hour in sorted(hours)])
        state.hours |= hours
    if by_minute:
        next_free = insert_slots(db[MINUTES], {m: [body] for m, body in by_minute.items()}, state.minute_slots)
        for minute, slot in next_free.items():
            state.minute_slots.remember(minute, slot)
    for rid, run in runs.items():
        if rid not in state.runs:
            body = {k: run[k] for k in ("experiment", "date", "run")}
            with suppress(DuplicateKeyError):
                db[RUNS].insert_one({"_id": rid, **body})
            state.runs.add(rid)
        bounds: dict = {
            "$min": {"first_number": min(run["numbers"])},
            "$max": {"last_number": max(run["numbers"])},
        }
        if run["ts"]:
            bounds["$min"]["first_ts_ns"] = min(run["ts"])
            bounds["$max"]["last_ts_ns"] = max(run["ts"])
        db[RUNS].update_one({"_id": rid}, bounds)  # by `_id`: FerretDB's one indexed update


def start_shot_index() -> None:
    """Before the first shot is indexed: the indexes cover every shot only if none was recorded before."""
    collection = mongo.database()[STATE]
    if collection.find_one({"_id": INDEX_STATE}, {"_id": 1}) is not None:
        return
    empty = mongo.database()[SHOTS].find_one({}, {"_id": 1}) is None
    with suppress(DuplicateKeyError):
        collection.insert_one({"_id": INDEX_STATE, "complete": empty, "at": datetime.now(UTC)})


def index_complete() -> bool:
    """True when every recorded shot is in the indexes (else the readers scan `relay_shots`)."""
    document = mongo.database()[STATE].find_one({"_id": INDEX_STATE})
    return bool(document and document.get("complete"))


def index_old_shots() -> int:
    """Index the shots recorded before the indexes existed (one read of the whole collection);
    returns how many shots it read. Safe to run again or beside a running relay: readers skip a
    key listed twice."""
    start_shot_index()
    state, batch, count = ShotIndexState(), [], 0
    for record in mongo.database()[SHOTS].find({}, {"_id": 0}):
        if not isinstance(record.get("shot_key"), str):
            continue
        batch.append(record)
        count += 1
        if len(batch) >= 1000:
            index_shots(batch, state)
            batch = []
    if batch:
        index_shots(batch, state)
    mongo.database()[STATE].update_one({"_id": INDEX_STATE}, {"$set": {"complete": True, "at": datetime.now(UTC)}})
    return count


def hours() -> list[str]:
    """Every UTC hour (`YYYYmmddHH`) with indexed shots (a small collection: read whole)."""
    return sorted(doc["_id"] for doc in mongo.database()[HOURS].find({}, {"_id": 1}))


def minute_refs(minute: str) -> list[tuple[int, str]]:
    """(time ns, shot key) of the shots indexed under a minute, each key once."""
    refs, seen = [], set()
    for doc in read_slots(mongo.database()[MINUTES], minute):
        for key, ns in zip(doc.get("keys", []), doc.get("ts", [])):
            if key not in seen:
                seen.add(key)
                refs.append((ns, key))
    return refs


def runs() -> list[dict]:
    """Every experiment, day and run with recorded shots, and its first and last number and time
    (one small document per run: read whole)."""
    return list(mongo.database()[RUNS].find())


def shots_by_key(keys: list[str]) -> Iterator[dict]:
    """The records of these keys that exist, in this order (one `_id` look-up each)."""
    collection = mongo.database()[SHOTS]
    for key in keys:
        record = collection.find_one({"_id": key}, projection={"_id": 0})
        if record is not None:
            yield record


def scan_shots() -> Iterator[dict]:
    """Every recorded shot: one read of the whole collection (before `index_old_shots` ran)."""
    yield from mongo.database()[SHOTS].find({}, {"_id": 0})
