"""The document store every app uses: the MongoDB client of a process, its databases, what the
server can do, and the few write and matching rules the apps share (core/slots.py,
core/matching.py). Each app's store module asks for its database here."""

import re
from dataclasses import dataclass, field
from functools import cache

import pymongo
from django.conf import settings
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError

DUPLICATE_KEY = 11000
# Server-side conditions that say nothing about the document: retry the write, never give up on it.
TRANSIENT_CODES = {6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
COMPANION_NAME = re.compile(r"^[a-z]+$")
_companions: set[str] = set()  # declared by the apps that write them


@cache
def client_for(uri: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        appname="labbook",
    )


@cache
def _queries_use_secondary_indexes(uri: str) -> bool:
    return "ferretdbVersion" not in client_for(uri).admin.command("buildInfo")


def queries_use_secondary_indexes() -> bool:
    """False on FerretDB v1 (labbook runs its SQLite backend), which keeps indexes but answers
    every query but one by `_id` with a scan: there an index is pure write cost, a JSON
    extraction per inserted row."""
    return _queries_use_secondary_indexes(settings.MONGODB_URI)


def client() -> pymongo.MongoClient:
    """The client for settings.MONGODB_URI (one per URI and process, as pymongo intends)."""
    return client_for(settings.MONGODB_URI)


def declare_companion(companion: str) -> None:
    """An app names the companion databases it writes (in its AppConfig.ready), so that
    `databases()` knows them in every process: FerretDB's listDatabases omits new ones."""
    if not COMPANION_NAME.match(companion):
        raise ValueError(f"a companion database is named by lower-case letters, not '{companion}'")
    _companions.add(companion)


def database(companion: str = "") -> Database:
    """The labbook database named by settings.MONGODB_DB (tests point it at their own), or a
    declared companion database beside it, `<MONGODB_DB>_<companion>`.

    An app puts data in a companion when it should be written in parallel with the main
    database: FerretDB keeps each database in its own SQLite file, and SQLite writes one file
    at a time (the watcher's hand-made indexes live in `<MONGODB_DB>_shots`).
    """
    if not companion:
        return client()[settings.MONGODB_DB]
    if companion not in _companions:
        raise ValueError(f"the companion database '{companion}' was not declared (core.mongo.declare_companion)")
    return client()[f"{settings.MONGODB_DB}_{companion}"]


def databases() -> list[Database]:
    """The main database and the declared companions."""
    return [database(), *(database(companion) for companion in sorted(_companions))]


def drop_databases() -> None:
    """Drop every database labbook writes (for tests and benchmarks that used their own)."""
    for db in databases():
        db.client.drop_database(db.name)


@dataclass
class Inserted:
    """What `insert_by_id` did, by position in the list it was given."""

    count: int = 0  # stored now
    duplicates: list[int] = field(default_factory=list)  # already stored (the same `_id`)
    refused: dict[int, str] = field(default_factory=dict)  # refused by the server for itself: its message
    not_tried: list[int] = field(default_factory=list)  # after the first error of an ordered insert


def insert_by_id(
    collection: Collection, documents: list[dict], *, ordered: bool = False, keep_refused: bool = False
) -> Inserted:
    """insert_many of documents with deterministic `_id`s: the idempotent write labbook uses where
    an upsert would be slow (FerretDB: 1,000 upserts by `_id` 373 s, the same duplicate inserts 0.14 s).

    A duplicate key means "already stored", within the list or before it. A transient server error
    (TRANSIENT_CODES) raises AutoReconnect, the one kind the callers retry the whole list on (a
    retry is safe: what the first try stored comes back as duplicates). A document the server
    refuses for itself raises the BulkWriteError, or with `keep_refused` is returned in `refused`.
    `ordered`: the server stops at the first error; the documents after it are `not_tried`.
    """
    if not documents:
        return Inserted()
    try:
        return Inserted(len(collection.insert_many(documents, ordered=ordered).inserted_ids))
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        transient = [error for error in errors if error.get("code") in TRANSIENT_CODES]
        if transient:
            raise AutoReconnect(f"transient server error: {transient[0].get('errmsg')}") from exc
        outcome = Inserted(exc.details.get("nInserted", 0))
        for error in errors:
            if error.get("code") == DUPLICATE_KEY:
                outcome.duplicates.append(error["index"])
            elif keep_refused:
                outcome.refused[error["index"]] = str(error.get("errmsg", "refused"))
            else:
                raise
        if ordered and errors:
            outcome.not_tried = list(range(errors[0]["index"] + 1, len(documents)))
        return outcome


def take_over(collection: Collection, held: dict, replacement: dict, stamp: str) -> bool:
    """Replace a claim document found stale (`held`, read by its `_id`; `stamp`: the field saying
    how old it is) with `replacement`, for one taker only; False when another taker was first.
    FerretDB runs a conditional delete as read-then-write — two takers meeting the same stale
    claim both won 13 to 20 times in 30 — so the taker first inserts a marker named by the stale
    claim (`<_id>|after <stamp>`), a duplicate `_id` being refused atomically."""
    try:
        collection.insert_one({"_id": f"{held['_id']}|after {held[stamp].isoformat()}"})
    except DuplicateKeyError:
        return False
    collection.delete_one({"_id": held["_id"], stamp: held[stamp]})
    try:
        collection.insert_one(replacement)
        return True
    except DuplicateKeyError:
        return False
