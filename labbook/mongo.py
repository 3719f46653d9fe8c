"""The one MongoDB client of a process; each app's store module asks it for its database."""

from functools import cache

import pymongo
from django.conf import settings
from pymongo.database import Database


@cache
def client(uri: str | None = None) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        uri or settings.MONGODB_URI,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        appname="labbook",
    )


def database() -> Database:
    """The labbook database named by settings.MONGODB_DB (tests point it at their own)."""
    return client()[settings.MONGODB_DB]
