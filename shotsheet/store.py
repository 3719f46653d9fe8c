"""All MongoDB access of the shot sheet: entries and the schema snapshots beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from core import mongo, slots

ENTRIES = "entries"
SCHEMAS = "schema_versions"
CHOICE_LISTS = "choice_lists"
CHANGES = "entry_changes"
IMPORTS = "imports"
REVISION_CLAIMS = "entry_revision_claims"  # `<entry>|r<n>`: the writer of revision n (see update_entry)
STALE_CLAIM = timedelta(seconds=30)  # far longer than a save takes
TABLE_FIELDS = {"history": 0, "daq": 0}  # what the table never shows stays on the server


def ensure_indexes() -> None:
    entries = mongo.database()[ENTRIES]
    entries.create_index([("sheet", ASCENDING), ("created", DESCENDING)])
    entries.create_index([("sheet", ASCENDING), ("shot_key", ASCENDING)])


def save_schema(sheet_slug: str, number: int, fields: list[dict]) -> None:
    """Write a schema version beside the entries, so the data there describes itself."""
    try:
        mongo.database()[SCHEMAS].insert_one(
            {"_id": f"{sheet_slug}:v{number}", "sheet": sheet_slug, "version": number, "fields": fields}
        )
    except DuplicateKeyError:
        pass  # already written (the same version is immutable)


def schema(sheet_slug: str, number: int) -> dict | None:
    return mongo.database()[SCHEMAS].find_one({"_id": f"{sheet_slug}:v{number}"})


def insert_entry(entry: dict) -> None:
    mongo.database()[ENTRIES].insert_one(entry)


def insert_entries(entries: list[dict]) -> None:
    """Insert a batch; on failure take back what went in, as far as the server lets us."""
    if entries:
        try:
            mongo.database()[ENTRIES].insert_many(entries, ordered=True)
        except PyMongoError:
            try:
                mongo.database()[ENTRIES].delete_many({"_id": {"$in": [e["_id"] for e in entries]}})
            except PyMongoError:
                pass  # the server is gone: the entries stay hidden, their import never finished
            raise


# --- imports: their entries count only once the import is marked done --------------------------------
def begin_import(import_id: str, sheet_slug: str, count: int) -> None:
    mongo.database()[IMPORTS].insert_one(
        {"_id": import_id, "sheet": sheet_slug, "entries": count, "state": "pending", "at": datetime.now(UTC)}
    )


def finish_import(import_id: str) -> None:
    mongo.database()[IMPORTS].update_one({"_id": import_id}, {"$set": {"state": "done", "done": datetime.now(UTC)}})


def unfinished_imports(sheet_slug: str) -> set[str]:
    """Imports of a sheet that never finished: their entries are not part of it."""
    imports = mongo.database()[IMPORTS].find({"sheet": sheet_slug, "state": {"$ne": "done"}}, projection={"_id": 1})
    return {document["_id"] for document in imports}


def get_entry(entry_id: str) -> dict | None:
    return mongo.database()[ENTRIES].find_one({"_id": str(entry_id)})


def update_entry(entry_id: str, expected_rev: int, changes: dict, history_item: dict, updated: datetime) -> bool:
    """Apply `changes` only if nobody saved since revision `expected_rev` (optimistic locking).

    The next revision is claimed first, by inserting `<entry>|r<n+1>`: FerretDB's conditional
    update is not atomic (two `update_one({"_id": …, "rev": n})` racing both reported a change, 29
    of 30 times, and one edit was lost unseen), while a duplicate `_id` is refused atomically. Only
    the writer holding the claim updates; the `rev` filter still guards entries changed elsewhere.
    """
    if not claim_revision(entry_id, expected_rev + 1, updated):
        return False
    try:
        result = mongo.database()[ENTRIES].update_one(
            {"_id": str(entry_id), "rev": expected_rev},
            {"$set": {**changes, "updated": updated}, "$inc": {"rev": 1}, "$push": {"history": history_item}},
        )
    except PyMongoError:
        release_claim(entry_id, expected_rev + 1)  # not saved: the revision is free for the next try
        raise
    return result.modified_count == 1


def claim_id(entry_id: str, rev: int) -> str:
    return f"{entry_id}|r{rev}"


def claim_revision(entry_id: str, rev: int, at: datetime) -> bool:
    """Claim revision `rev` of an entry for one writer; False if another writer has it.

    A claim older than STALE_CLAIM on an entry still short of that revision was left by a writer
    that died between its claim and its update: it is taken over, or the entry could never be
    edited again."""
    claims = mongo.database()[REVISION_CLAIMS]
    claim = {"_id": claim_id(entry_id, rev), "entry": str(entry_id), "at": at}
    try:
        claims.insert_one(claim)
        return True
    except DuplicateKeyError:
        pass
    held = claims.find_one({"_id": claim["_id"]})
    entry = mongo.database()[ENTRIES].find_one({"_id": str(entry_id)}, {"rev": 1})
    if not held or not entry or entry.get("rev") != rev - 1 or held["at"] > at - STALE_CLAIM:
        return False
    return mongo.take_over(claims, held, claim, "at")  # one taker per stale claim


def release_claim(entry_id: str, rev: int) -> None:
    try:
        mongo.database()[REVISION_CLAIMS].delete_one({"_id": claim_id(entry_id, rev)})
    except PyMongoError:
        pass  # it goes stale, and is taken over after STALE_CLAIM


def find_entries(query: dict, sort: list[tuple[str, int]], skip: int, limit: int) -> list[dict]:
    return list(mongo.database()[ENTRIES].find(query).sort(sort).skip(skip).limit(limit))


def sheet_entries(sheet_slug: str) -> list[dict]:
    """Every entry of a sheet as the table needs it (one read of the collection)."""
    return list(mongo.database()[ENTRIES].find({"sheet": sheet_slug}, projection=TABLE_FIELDS))


def sheet_entries_streamed(sheet_slug: str):
    """Every entry of a sheet without its history, as a cursor (read as it is used: a large sheet
    is never in memory at once)."""
    return mongo.database()[ENTRIES].find({"sheet": sheet_slug}, projection={"history": 0})


def table_entry(entry_id: str) -> dict | None:
    return mongo.database()[ENTRIES].find_one({"_id": str(entry_id)}, projection=TABLE_FIELDS)


# --- the change log: what the tables of other processes must pick up --------------------------------
# Change n of a sheet is the document `_id = "<sheet>:<n, 10 digits>"` naming the entry written.
# Numbers are taken by inserting (a duplicate key means another writer was first), in order, so
# the log is always the gap-free run 1..N, and every look-up in it is by `_id`: the one query
# FerretDB answers from an index.
_change_hint: dict[str, int] = {}


def change_id(sheet_slug: str, number: int) -> str:
    return f"{sheet_slug}:{number:010d}"


def change(sheet_slug: str, number: int) -> dict | None:
    return mongo.database()[CHANGES].find_one({"_id": change_id(sheet_slug, number)})


def last_change(sheet_slug: str, known: int = 0) -> int:
    """The number of the sheet's last change (0: none), searched from a known one upwards."""

    def exists(n: int) -> bool:
        return mongo.database()[CHANGES].find_one({"_id": change_id(sheet_slug, n)}, projection={"_id": 1}) is not None

    return slots.last_number(exists, known)


def start_change_log(sheet_slug: str, generation: str) -> None:
    """Change 0 marks this log's generation: a reader notices a dropped or restored database."""
    try:
        mongo.database()[CHANGES].insert_one(
            {"_id": change_id(sheet_slug, 0), "entry": generation, "at": datetime.now(UTC)}
        )
    except DuplicateKeyError:
        pass


def append_changes(sheet_slug: str, entry_ids: list[str]) -> None:
    """Log that these entries were written (called after writing them), in the next free numbers
    from the last known change on (a number another writer took is skipped)."""
    now = datetime.now(UTC)
    first = last_change(sheet_slug, _change_hint.get(sheet_slug, 0)) + 1
    bodies = {sheet_slug: [{"entry": entry_id, "at": now} for entry_id in entry_ids]}
    next_free = slots.insert_slots(
        mongo.database()[CHANGES], bodies, {sheet_slug: first}, make_id=change_id, ordered=True, max_slots=None
    )
    _change_hint[sheet_slug] = next_free.get(sheet_slug, first) - 1


def has_entries(sheet_slug: str) -> bool:
    return mongo.database()[ENTRIES].find_one({"sheet": sheet_slug}, projection={"_id": 1}) is not None


def distinct_values(sheet_slug: str, field_key: str) -> list:
    return mongo.database()[ENTRIES].distinct(f"values.{field_key}", {"sheet": sheet_slug})


def cached_choices(source_key: str) -> dict | None:
    return mongo.database()[CHOICE_LISTS].find_one({"_id": source_key})


def save_choices(source_key: str, values: dict) -> None:
    """Record a fetch (or a failed attempt) of a choice list: `$set` keeps the last good list."""
    mongo.database()[CHOICE_LISTS].update_one({"_id": source_key}, {"$set": values}, upsert=True)
