"""Entries as people read them: values as text, times in the lab's zone, a table row."""

from __future__ import annotations

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
    }


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
