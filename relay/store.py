"""The relay's small MongoDB state: its latest shot, live status, and a record of each shot by key."""

from core import mongo

STATE = "relay_state"
SHOTS = "relay_shots"  # one document per shot key: `_id` look-ups are the one query FerretDB indexes
SHOT_FIELDS = ("shot_key", "shot_number", "laser_ts_ns", "event_id", "source")


def save_state(status: dict, last_shot: dict | None) -> None:
    collection = mongo.database()[STATE]
    collection.replace_one({"_id": "status"}, {"_id": "status", **status}, upsert=True)
    if last_shot:
        collection.replace_one({"_id": "latest_shot"}, {"_id": "latest_shot", "envelope": last_shot}, upsert=True)


def latest_shot() -> dict | None:
    """The latest shot envelope the relay handled, or None before the first shot."""
    document = mongo.database()[STATE].find_one({"_id": "latest_shot"})
    return document["envelope"] if document else None


def record_shots(envelopes: list[dict]) -> None:
    """Remember when each shot was, by its key, for the shot sheet's entries of that shot.

    The first envelope of a key wins (a duplicate shot keeps the time of the shot it repeats).
    """
    documents = [
        {"_id": e["shot_key"], **{name: e.get(name) for name in SHOT_FIELDS}} for e in envelopes if e.get("shot_key")
    ]
    mongo.insert_by_id(mongo.database()[SHOTS], documents)


def shot(shot_key: str) -> dict | None:
    """The relay's record of a shot (key, number, laser time in ns), or None if it never saw it."""
    return mongo.database()[SHOTS].find_one({"_id": shot_key}, projection={"_id": 0})


def status() -> dict | None:
    document = mongo.database()[STATE].find_one({"_id": "status"})
    if document:
        document.pop("_id")
    return document
