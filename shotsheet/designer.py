"""The admin's form designer: the fields as they are being edited (the sheet's change form, not yet
saved) read into field definitions, for the live preview of the entry form."""

from __future__ import annotations

from django.http import QueryDict

from .models import Field
from .schema import FieldDef

PREFIX = "fields"  # the active fields' inline (shotsheet/admin.py FieldInline)
TYPES = set(Field.Type.values)


def designed_fields(data: QueryDict) -> tuple[list[FieldDef], list[str]]:
    """(the active fields in their dragged order, notes on what the preview cannot show yet)."""
    notes, rows = [], []
    try:
        total = int(data.get(f"{PREFIX}-TOTAL_FORMS", 0))
    except ValueError:
        total = 0
    for n in range(min(total, 500)):
        get = lambda name: data.get(f"{PREFIX}-{n}-{name}", "").strip()  # noqa: B023, E731
        if get("DELETE") or get("archived"):
            continue
        key, label = get("key"), get("label")
        if not key and not label:
            continue  # an empty extra form
        if not key or not label:
            notes.append(f"Field {n + 1} needs a key and a label; it is left out.")
            continue
        bounds = {}
        for name in ("min_value", "max_value"):
            if raw := get(name):
                try:
                    bounds[name] = float(raw)
                except ValueError:
                    notes.append(f"{label}: {name.replace('_', ' ')} '{raw}' is not a number.")
        if get("choice_source"):
            notes.append(f"{label}: its choices come from a source, listed in the real form only.")
        field = FieldDef(
            key=key,
            label=label,
            type=get("type") if get("type") in TYPES else Field.Type.TEXT,
            unit=get("unit"),
            required=bool(get("required")),
            pattern=get("pattern"),
            default=get("default"),
            help_text=get("help_text"),
            choices=data.get(f"{PREFIX}-{n}-choices", ""),
            sticky=bool(get("sticky")),
            relay_value=get("relay_value"),
            **bounds,
        )
        rows.append((position(get("position"), n), n, field))
    return [field for *_, field in sorted(rows, key=lambda row: row[:2])], notes


def position(raw: str, fallback: int) -> int:
    try:
        return int(raw)
    except ValueError:
        return fallback
