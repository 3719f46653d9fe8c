"""The shots, shot-join and events endpoints' answers, as plain dicts and CSV tables, from the relay's,
the watcher's and the shot sheet's selectors."""

from __future__ import annotations

import orjson
from django.urls import reverse

from core.envelope import parse_shot_key
from core.times import from_ns

from .renderers import JSON_OPTIONS, Table
from .sheets import entry_json, fields_block

OPERATOR_LOOKING = ("$", "{", "[")  # a plain value never starts so; a query that does is refused


def shot_json(shot: dict) -> dict:
    """A relay record (every envelope field; None where a record made before the indexes has none)."""
    return {
        "shot_key": shot["shot_key"],
        "shot_number": shot["shot_number"],
        "experiment": shot["experiment"],
        "source": shot["source"],
        "laser_time": from_ns(shot["laser_ts_ns"]),
        "laser_ts_ns": shot["laser_ts_ns"],
        "relay_time": from_ns(shot["relay_ts_ns"]),
        "relay_ts_ns": shot["relay_ts_ns"],
        "seq": shot["seq"],
        "event_id": shot["event_id"],
        "values": shot["values"],
        "flags": shot["metadata"],
    }


SHOT_COLUMNS = [
    "shot_key",
    "shot_number",
    "experiment",
    "source",
    "laser_time [UTC]",
    "laser_ts_ns",
    "relay_time [UTC]",
    "seq",
    "event_id",
    "flags",
]


def json_text(value) -> str | None:
    return None if value is None else orjson.dumps(value, option=JSON_OPTIONS, default=str).decode()


def cell(value):
    """A CSV cell: numbers, text and times as they are, anything nested as its JSON."""
    return json_text(value) if isinstance(value, dict | list) else value


def shots_table(shots: list[dict]) -> Table:
    """One row per shot: its own columns, then `values.<name>` for every value any shot of the page has."""
    names = list(dict.fromkeys(name for shot in shots for name in (shot["values"] or {})))
    rows = [
        [
            shot["shot_key"],
            shot["shot_number"],
            shot["experiment"],
            shot["source"],
            from_ns(shot["laser_ts_ns"]),
            shot["laser_ts_ns"],
            from_ns(shot["relay_ts_ns"]),
            shot["seq"],
            shot["event_id"],
            json_text(shot["metadata"] or None),
        ]
        + [cell((shot["values"] or {}).get(name)) for name in names]
        for shot in shots
    ]
    return Table(SHOT_COLUMNS + [f"values.{name}" for name in names], rows)


def flatten(document: dict, prefix: str = "") -> dict:
    """Nested subdocuments as dotted columns (`values.energy`); lists stay one cell (as JSON)."""
    flat = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = cell(value)
    return flat


def events_table(events: list[dict]) -> Table:
    flat = [flatten(event) for event in events]
    first = ["_id", "_ts", "shot_key", "source", "kind"]
    names = first + [name for name in dict.fromkeys(n for row in flat for n in row) if name not in first]
    return Table(names, [[row.get(name) for name in names] for row in flat])


def shot_join_json(
    shot_key: str,
    record: dict | None,
    sheets: list,
    entries_limit: int,
    events: list[dict],
    events_limit: int,
    simulations: list[dict] | None = None,
) -> dict:
    """Everything known of one shot: the relay's record, the entries the caller may view (per
    sheet, with its fields' units), every ingested event; each list says if it was cut at its limit."""
    parts = parse_shot_key(shot_key)
    entries, stale = [], None
    for found in sheets:
        columns = found.schema.columns
        keys = [c.key for c in columns]
        for entry in found.entries:
            entries.append(
                {"sheet": found.sheet.slug, "sheet_name": found.sheet.name, **entry_json(entry, keys)}
                | {"fields": fields_block(columns)}
            )
        stale = max(filter(None, (stale, found.stale_since)), default=None)
    entries.sort(key=lambda entry: entry["created"], reverse=True)
    return {
        "shot_key": shot_key,
        "parsed": (
            {"experiment": parts.experiment, "date": parts.date, "run": parts.run, "number": parts.number}
            if parts
            else None
        ),
        "relay": {"record": shot_json(record) if record else None},
        "entries": {
            "results": entries[:entries_limit],
            "limit": entries_limit,
            "truncated": len(entries) > entries_limit,
            "stale_since": stale,
        },
        "events": {"results": events[:events_limit], "limit": events_limit, "truncated": len(events) > events_limit},
        "simulations": {"results": [simulation_json(run) for run in simulations or []]},
    }


def simulation_json(run: dict) -> dict:
    """A simulation run that models the shot: what it is and where labbook shows it."""
    return {
        "id": run["_id"],
        "name": run.get("name"),
        "code": run.get("code"),
        "software": run.get("software"),
        "software_version": run.get("software_version"),
        "summary": run.get("summary") or {},
        "experiment": run.get("experiment"),
        "url": reverse("simulations:detail", args=[run["_id"]]),
    }
