"""All MongoDB access of the shot sheet: entries and the schema snapshots beside them."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from labbook import mongo

ENTRIES = "entries"
SCHEMAS = "schema_versions"
CHOICE_LISTS = "choice_lists"


def ensure_indexes() -> None:
    entries = mongo.database()[ENTRIES]
    entries.create_index([("sheet", ASCENDING), ("created", DESCENDING)])
    entries.create_index([("sheet", ASCENDING), ("shot_key", ASCENDING)])


def save_schema(sheet_slug: str, number: int, fields: list[dict]) -> None:
    """Write a schema version beside the entries, so the data there describes itself."""
    try:
        mongo.database()[SCHEMAS].insert_one(
            {"_id": f"{sheet_slug}:v{number}", "sheet": sheet_slug, "version": number, "fields": fields})
    except DuplicateKeyError:
        pass  # already written (the same version is immutable)


def schema(sheet_slug: str, number: int) -> dict | None:
    return mongo.database()[SCHEMAS].find_one({"_id": f"{sheet_slug}:v{number}"})


def insert_entry(entry: dict) -> None:
    mongo.database()[ENTRIES].insert_one(entry)


def insert_entries(entries: list[dict]) -> None:
    """All or nothing from the caller's view: ids are fresh, so only a server error can fail."""
    if entries:
        try:
            mongo.database()[ENTRIES].insert_many(entries, ordered=True)
        except BulkWriteError:
            mongo.database()[ENTRIES].delete_many({"_id": {"$in": [e["_id"] for e in entries]}})
            raise


def get_entry(entry_id: str) -> dict | None:
    return mongo.database()[ENTRIES].find_one({"_id": str(entry_id)})


def update_entry(entry_id: str, expected_rev: int, changes: dict, history_item: dict, updated: datetime) -> bool:
    """Apply `changes` only if nobody saved since revision `expected_rev` (optimistic locking)."""
    result = mongo.database()[ENTRIES].update_one(
        {"_id": str(entry_id), "rev": expected_rev},
        {"$set": {**changes, "updated": updated}, "$inc": {"rev": 1}, "$push": {"history": history_item}},
    )
    return result.modified_count == 1


def latest_entry(sheet_slug: str) -> dict | None:
    return mongo.database()[ENTRIES].find_one({"sheet": sheet_slug}, sort=[("created", DESCENDING)])


def find_entries(query: dict, sort: list[tuple[str, int]], skip: int, limit: int) -> list[dict]:
    return list(mongo.database()[ENTRIES].find(query).sort(sort).skip(skip).limit(limit))


def count_entries(query: dict) -> int:
    return mongo.database()[ENTRIES].count_documents(query)


def entries_by_shot(sheet_slugs: list[str], shot_key: str) -> list[dict]:
    return list(mongo.database()[ENTRIES].find({"sheet": {"$in": sheet_slugs}, "shot_key": str(shot_key)}))


def has_entries(sheet_slug: str) -> bool:
    return mongo.database()[ENTRIES].find_one({"sheet": sheet_slug}, projection={"_id": 1}) is not None


def distinct_values(sheet_slug: str, field_key: str) -> list:
    return mongo.database()[ENTRIES].distinct(f"values.{field_key}", {"sheet": sheet_slug})


def cached_choices(source_key: str) -> dict | None:
    return mongo.database()[CHOICE_LISTS].find_one({"_id": source_key})


def save_choices(source_key: str, values: dict) -> None:
    """Record a fetch (or a failed attempt) of a choice list: `$set` keeps the last good list."""
    mongo.database()[CHOICE_LISTS].update_one({"_id": source_key}, {"$set": values}, upsert=True)
