"""Simulation runs in MongoDB: one document per run folder (`_id` from its path, so extracting a
run again updates it). A lab has hundreds of runs, not millions: lists and searches read the
collection's summaries and filter in Python (FerretDB scans for any filter anyway)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core import mongo

SIMULATIONS = "simulations"
LIST_FIELDS = {
    "name": 1, "path": 1, "code": 1, "software": 1, "software_version": 1, "summary": 1,
    "experiment": 1, "shot_keys": 1, "sheet": 1, "updated": 1, "created": 1, "rev": 1,
}  # fmt: skip


def save_run(
    document: dict,
    *,
    experiment: str | None,
    shot_keys: list[str] | None,
    matched: list[str],
    sheet: str | None = None,
) -> dict:
    """Store a run's metadata; the experiment, sheet and shot keys given before stay unless given anew."""
    collection = mongo.database()[SIMULATIONS]
    before = collection.find_one({"_id": document["_id"]}, {"experiment": 1, "shot_keys_given": 1, "sheet": 1}) or {}
    given = sorted(set(shot_keys)) if shot_keys is not None else before.get("shot_keys_given", [])
    now = datetime.now(UTC)
    fields = {
        **storable(document),
        "parameters": storable(parameter_list(document.get("parameters", {}))),
        "experiment": experiment if experiment is not None else before.get("experiment"),
        "sheet": sheet if sheet is not None else before.get("sheet"),
        "shot_keys_given": given,
        "shot_keys_matched": sorted(set(matched)),
        "shot_keys": sorted(set(given) | set(matched)),
        "updated": now,
    }
    collection.update_one(
        {"_id": document["_id"]},
        {"$set": fields, "$setOnInsert": {"created": now}, "$inc": {"rev": 1}},  # rev: SciCat's PATCH follows it
        upsert=True,
    )
    return collection.find_one({"_id": document["_id"]})


def storable(value):
    """A value as every MongoDB-wire server takes it: FerretDB refuses arrays in arrays
    (`[["silver-muller"], ["periodic"]]`), so such a list is kept as its JSON text, and BSON holds
    no integer beyond 64 bits (`max_step = 1e20` written out), kept as its digits (as the relay does)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)
    if isinstance(value, dict):
        return {key: storable(item) for key, item in value.items()}
    if isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            return json.dumps(value)
        return [storable(item) for item in value]
    return value


def as_written(value):
    """A stored value as the run's files hold it: a list holding lists back from its JSON text
    (`storable`); an integer beyond 64 bits stays as its digits."""
    if isinstance(value, dict):
        return {key: as_written(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_written(item) for item in value]
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, list) and any(isinstance(item, list) for item in decoded):
            return decoded
    return value


def parameter_list(parameters: dict) -> list[dict]:
    """Parameters as a list of {name, value, unit}: their names have dots (`laser1.a0`,
    `Main.timestep`), which MongoDB-wire servers refuse as keys (FerretDB does)."""
    return [
        {"name": name, **(entry if isinstance(entry, dict) else {"value": entry, "unit": ""})}
        for name, entry in sorted(parameters.items())
    ]


def run(run_id: str) -> dict | None:
    return mongo.database()[SIMULATIONS].find_one({"_id": str(run_id)})


def summaries() -> list[dict]:
    return list(mongo.database()[SIMULATIONS].find({}, LIST_FIELDS))


def runs_of_shot(shot_key: str) -> list[dict]:
    return list(mongo.database()[SIMULATIONS].find({"shot_keys": str(shot_key)}, LIST_FIELDS))


def shot_keys_of_runs() -> list[dict]:
    """`{_id, rev, shot_keys}` of every run: one read (a filtered one scans the collection anyway)."""
    return list(mongo.database()[SIMULATIONS].find({}, {"rev": 1, "shot_keys": 1}))


def changed_since(when: datetime | None) -> list[dict]:
    """Runs extracted at or after `when` (all when None), oldest first: a few hundred at most."""
    query = {"updated": {"$gte": when}} if when else {}
    return list(mongo.database()[SIMULATIONS].find(query, {"_id": 1, "rev": 1, "updated": 1}).sort("updated", 1))
