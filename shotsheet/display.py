"""Entries as people read them: values as text, times in the lab's zone, a table row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.utils import timezone

from .schema import FieldDef


def row_for(entry: dict, columns: list[FieldDef]) -> dict:
    """An entry as a table row, its cells as text in the columns' order (the page and the live row)."""
    return {
        "id": entry["_id"],
        "shot_key": entry.get("shot_key"),
        "created": display(entry["created"]),
        "author": entry.get("author"),
        "rev": entry.get("rev"),
        "comment": entry.get("comment", ""),
        "values": [display(entry["values"].get(c.key)) for c in columns],
        "voided": voided_note(entry.get("voided")),
    }


def voided_note(voided: dict | None) -> str:
    """`voided by ada at 2026-12-02 03:14:15 CET: wrong target` or "" for an entry in force."""
    if not voided:
        return ""
    return f"voided by {voided['who']} at {lab_time(voided['when']):%Y-%m-%d %H:%M:%S %Z}: {voided['reason']}"


def display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, datetime):
        return f"{lab_time(value):%Y-%m-%d %H:%M:%S}"  # the page names the zone once (created [zone])
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def lab_time(value: datetime) -> datetime:
    """A stored time (UTC) in the lab's zone, settings.TIME_ZONE: the one clock people read."""
    return (value if timezone.is_aware(value) else value.replace(tzinfo=UTC)).astimezone(
        timezone.get_default_timezone()
    )


def iso_time(value: datetime) -> str:
    """ISO 8601 in the lab's zone with its offset (milliseconds only when there are some)."""
    return lab_time(value).isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def created_header() -> str:
    return f"created [{settings.TIME_ZONE}]"


@dataclass(frozen=True)
class HistoryChange:
    label: str  # the field's label as the form shows it (its key only if no version knows it)
    old: str
    new: str


def history_items(entry: dict, fields: list[FieldDef]) -> list[dict]:
    """An entry's history, newest first, as people read it: labels with units, values as text,
    a void as its reason."""
    labels = {f.key: f.heading for f in fields} | {"shot_key": "Shot key", "comment": "Comment", "voided": "Voided"}

    def text(key: str, value) -> str:
        if key == "voided":
            return f"voided: {value['reason']}" if value else "in force"
        return display(value)

    return [
        {
            "who": item["who"],
            "when": item["when"],
            "changes": [
                HistoryChange(labels.get(key, key), text(key, old), text(key, new))
                for key, (old, new) in item["changes"].items()
            ],
        }
        for item in reversed(entry.get("history", []))
    ]
