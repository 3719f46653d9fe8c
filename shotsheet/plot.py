"""The sheet's plot: one numeric field against shot number or time."""

from __future__ import annotations

from . import table
from .schema import SheetSchema


def plot_series(schema: SheetSchema, query: dict, y_key: str, x: str, limit: int = 20_000) -> dict:
    """x (shot number or time, seconds) and y of a numeric field, for the sheet's plot, and a
    sentence on the entries left out for want of a value (so a sparse plot is not taken as the data)."""
    sheet, column = schema.sheet, schema.by_key.get(y_key)
    if column is None or not column.numeric:
        raise ValueError(f"'{y_key}' is not a numeric field of {sheet.slug}")
    if x not in ("time", "shot"):
        raise ValueError("x is 'time' or 'shot'")
    label = column.heading
    points, entries, no_x, no_y = [], 0, 0, 0
    for entry in table.table(sheet.slug).find(query, [("created", 1)])[:limit]:
        entries += 1
        y = entry["values"].get(y_key)
        x_value = entry["created"].timestamp() if x == "time" else entry.get("shot_number")
        has_y = isinstance(y, int | float) and not isinstance(y, bool)
        no_x += x_value is None
        no_y += not has_y
        if has_y and x_value is not None:
            points.append((x_value, y))
    points.sort()
    return {
        "x": [p[0] for p in points],
        "y": [p[1] for p in points],
        "label": label,
        "missing": missing_note(entries, {"shot number": no_x, label: no_y}),
    }


def missing_note(entries: int, missing: dict[str, int]) -> str:
    """'Not plotted: of 5 entries, 2 have no shot number, 1 has no Energy [J].' ('' if none is missing)."""
    parts = [f"{count} {'has' if count == 1 else 'have'} no {name}" for name, count in missing.items() if count]
    return f"Not plotted: of {entries} entries, {', '.join(parts)}." if parts else ""
