"""The relay's small MongoDB state: its latest shot and live status (one document each)."""

from labbook import mongo

STATE = "relay_state"


def save_state(status: dict, last_shot: dict | None) -> None:
    collection = mongo.database()[STATE]
    collection.replace_one({"_id": "status"}, {"_id": "status", **status}, upsert=True)
    if last_shot:
        collection.replace_one({"_id": "latest_shot"}, {"_id": "latest_shot", "envelope": last_shot}, upsert=True)


def latest_shot() -> dict | None:
    """The latest shot envelope the relay handled, or None before the first shot."""
    document = mongo.database()[STATE].find_one({"_id": "latest_shot"})
    return document["envelope"] if document else None


def status() -> dict | None:
    document = mongo.database()[STATE].find_one({"_id": "status"})
    if document:
        document.pop("_id")
    return document
