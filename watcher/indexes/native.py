"""The server's own indexes: a server whose queries use secondary indexes (MongoDB) answers the
search and the shot join with indexed finds, and the watcher writes no index of its own."""

from __future__ import annotations

from datetime import datetime

from core import mongo

from .base import EventQuery, IndexStrategy, SearchResult, create_server_indexes, event_time


class NativeIndexes(IndexStrategy):
    name = "native"

    def prepare(self, collection: str) -> None:
        create_server_indexes(collection)

    def index_shots(self, documents_by_collection: dict[str, list[dict]], slots: dict) -> None:
        """Nothing to write: the server indexes `shot_key` as it stores the events."""

    def index_times(
        self, documents_by_collection: dict[str, list[dict]], slots: dict, hours_known: set[tuple[str, str]]
    ) -> None:
        """Nothing to write: the server indexes `_ts` as it stores the events."""

    def events_for_shot(self, shot_key: str, collections: list[str], limit: int) -> list[dict]:
        if limit <= 0:
            return []
        db, events = mongo.database(), []
        for collection in collections:
            for doc in db[collection].find({"shot_key": shot_key}).sort("_ts", -1).limit(limit):
                doc["_collection"] = collection
                events.append(doc)
        events.sort(key=lambda doc: event_time(doc, "_ts"), reverse=True)
        return events[:limit]

    def search(self, query: EventQuery, limit: int) -> SearchResult:
        cursor = (
            mongo.database()[query.collection].find(query.mongo_filter()).sort([("_ts", -1), ("_id", -1)]).limit(limit)
        )
        return SearchResult(list(cursor))

    def events_in_range(self, collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
        return events_in_range_by_find(collection, since, until, path, limit)


def events_in_range_by_find(collection: str, since: datetime, until: datetime, path: str, limit: int) -> SearchResult:
    """A projected, sorted find (indexed on `_ts` where the server uses indexes)."""
    cursor = (
        mongo.database()[collection]
        .find({"_ts": {"$gte": since, "$lt": until}}, {"_ts": 1, path: 1})
        .sort([("_ts", -1), ("_id", -1)])
        .limit(limit + 1)
    )
    events = list(cursor)
    return SearchResult(events[:limit], complete=len(events) <= limit, fetched=len(events))
