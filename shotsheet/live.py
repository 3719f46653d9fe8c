"""Live updates of a sheet's table: one channel group per sheet, and the send of a changed row."""

import orjson

from core import live


def sheet_group(slug: str) -> str:
    return f"sheet.{slug}"


def send_row(slug: str, row: dict) -> bool:
    """Tell every open table of the sheet about a changed row (best effort: never blocks a save).

    The row goes through JSON first: dates and ids become text the channel layer can carry.
    """
    entry = orjson.loads(orjson.dumps(row, default=str))
    return live.send(sheet_group(slug), {"type": "entry.changed", "entry": entry})
