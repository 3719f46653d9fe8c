"""The sheet's plot: numeric fields against shot number or time, one point per entry."""

from __future__ import annotations

from collections import Counter

from . import table
from .schema import SheetSchema

MAX_SERIES = 8


def plot_series(schema: SheetSchema, query: dict, y_keys: list[str], x: str, limit: int = 20_000) -> dict:
    """x (shot number or time, seconds), and y of each numeric field (None where an entry has none),
    for the newest `limit` entries of the table's filters; each point's entry id and shot key (hover,
    click); and a sentence on the entries left out for want of a value (so a sparse plot is not taken
    as the data)."""
    sheet = schema.sheet
    columns = []
    for key in y_keys:
        column = schema.by_key.get(key)
        if column is None or not column.numeric:
            raise ValueError(f"'{key}' is not a numeric field of {sheet.slug}")
        columns.append(column)
    if not columns:
        raise ValueError("choose a numeric field to plot (y)")
    if len(columns) > MAX_SERIES:
        raise ValueError(f"at most {MAX_SERIES} fields at once")
    if x not in ("time", "shot"):
        raise ValueError("x is 'time' or 'shot'")
    found = table.table(sheet.slug).find(query, [("created", -1)])
    points, no_x, no_y = [], 0, Counter()
    for entry in found[:limit]:
        x_value = entry["created"].timestamp() if x == "time" else entry.get("shot_number")
        ys = [number(entry["values"].get(column.key)) for column in columns]
        no_x += x_value is None
        for column, y in zip(columns, ys, strict=True):
            no_y[column.heading] += y is None
        if x_value is not None and any(y is not None for y in ys):
            points.append((x_value, entry["_id"], entry.get("shot_key") or "", ys))
    points.sort(key=lambda point: point[:2])
    series = [
        {"key": column.key, "label": column.heading, "unit": column.unit, "y": [point[3][n] for point in points]}
        for n, column in enumerate(columns)
    ]
    shown = min(len(found), limit)
    note = missing_note(shown, {"shot number": no_x, **no_y})
    if len(found) > limit:
        note = f"The newest {limit:,} of {len(found):,} entries. {note}".strip()
    return {
        "x": [point[0] for point in points],
        "ids": [point[1] for point in points],
        "shots": [point[2] for point in points],
        "series": series,
        "y": series[0]["y"],  # one field: as before several could be plotted
        "label": series[0]["label"],
        "missing": note,
    }


def number(value) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def missing_note(entries: int, missing: dict[str, int]) -> str:
    """'Not plotted: of 5 entries, 2 have no shot number, 1 has no Energy [J].' ('' if none is missing)."""
    parts = [f"{count} {'has' if count == 1 else 'have'} no {name}" for name, count in missing.items() if count]
    return f"Not plotted: of {entries} entries, {', '.join(parts)}." if parts else ""
