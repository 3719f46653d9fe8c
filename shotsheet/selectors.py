"""What other apps may read of the shot sheet (the watcher's shot page links here)."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from core.envelope import parse_shot_key

from . import store, table
from .models import Sheet


@dataclass(frozen=True)
class SheetLink:
    sheet: str  # the sheet's name, for the link text
    url: str


def entries_of_shot(user, shot_key: str) -> list[SheetLink]:
    """The entries with this shot key in the sheets the user may view."""
    visible = [sheet for sheet in Sheet.objects.all() if sheet.allows(user, "view")]
    return [
        SheetLink(sheet.name, reverse("shotsheet:entry_detail", args=[sheet.slug, entry["_id"]]))
        for sheet in visible
        for entry in table.table(sheet.slug).find({"shot_key": shot_key}, [])
    ]


def new_entry_links(user, shot_key: str) -> list[SheetLink]:
    """The entry forms, prefilled with the shot key, of the active sheets the user may add to.

    Sheets of the shot key's experiment when there are any (a shot of LWFA belongs in an LWFA sheet),
    otherwise every such sheet.
    """
    sheets = [sheet for sheet in Sheet.objects.filter(active=True) if sheet.allows(user, "add")]
    parts = parse_shot_key(shot_key)
    same_experiment = [sheet for sheet in sheets if parts and sheet.experiment == parts.experiment]
    query = urlencode({"shot_key": shot_key})
    return [
        SheetLink(sheet.name, f"{reverse('shotsheet:entry_new', args=[sheet.slug])}?{query}")
        for sheet in same_experiment or sheets
    ]


def entry(entry_id: str) -> dict | None:
    """One entry document (values, shot identity, `rev`, `schema_version`, `daq`), or None."""
    return store.get_entry(entry_id)


def schema_fields(sheet_slug: str, version: int) -> list[dict]:
    """The fields (key, label, type, unit, …) of a sheet's schema version, as stored beside the entries."""
    snapshot = store.schema(sheet_slug, version)
    return snapshot["fields"] if snapshot else []


def changes_since(sheet_slug: str, after: int, limit: int) -> tuple[str | None, list[tuple[int, str]]]:
    """The sheet's change log after change `after`: its generation (it changes when the database
    was reset) and up to `limit` (number, entry id) pairs in order. Each read is by `_id`."""
    start = store.change(sheet_slug, 0)
    found = []
    for number in range(after + 1, after + 1 + limit):
        change = store.change(sheet_slug, number)
        if change is None:
            break
        found.append((number, change["entry"]))
    return (start["entry"] if start else None), found
