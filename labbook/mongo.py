"""The MongoDB clients of a process; each app's store module asks for its database here."""

from functools import cache

import pymongo
from django.conf import settings
from pymongo.database import Database


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


def database() -> Database:
    """The labbook database named by settings.MONGODB_DB (tests point it at their own)."""
    return client()[settings.MONGODB_DB]


def shot_index_database() -> Database:
    """The watcher's shot index: a database of its own, next to the labbook database.

    FerretDB keeps each database in its own SQLite file, and SQLite writes one file at a time;
    in a second file the index is written in parallel with the events (watcher/store.py).
    """
    return client()[f"{settings.MONGODB_DB}_shots"]


def drop_databases() -> None:
    """Drop every database labbook writes (for tests and benchmarks that used their own)."""
    for db in (database(), shot_index_database()):
        db.client.drop_database(db.name)
