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


def client() -> pymongo.MongoClient:
    """The client for settings.MONGODB_URI (one per URI and process, as pymongo intends)."""
    return client_for(settings.MONGODB_URI)


def database() -> Database:
    """The labbook database named by settings.MONGODB_DB (tests point it at their own)."""
    return client()[settings.MONGODB_DB]
