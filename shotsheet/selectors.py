"""What other apps may read of the shot sheet: the watcher's shot page links here, the read API
(`api/`) reads sheets and entries with the web table's filters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.urls import reverse

from core.envelope import parse_shot_key
from core.matching import lookup

from . import display, export, query, store, table
from .models import Sheet
from .schema import NUMERIC, FieldDef, SheetSchema, saved_versions, schema_for


@dataclass(frozen=True)
class SheetLink:
    sheet: str  # the sheet's name, for the link text
    url: str


def entries_of_shot(user, shot_key: str) -> list[SheetLink]:
    """The entries with this shot key in the sheets the user may view."""
    return [
        SheetLink(sheet.name, reverse("shotsheet:entry_detail", args=[sheet.slug, entry["_id"]]))
        for sheet in Sheet.objects.viewable_by(user)
        for entry in table.table(sheet.slug).of_shot(shot_key)
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


# --- the read API's reads ----------------------------------------------------------------------------
def visible_sheets(user) -> list[Sheet]:
    """The sheets the user may view, in the sheet list's order."""
    return list(Sheet.objects.viewable_by(user))


def visible_sheet(user, slug: str) -> Sheet | None:
    """The sheet, if it exists and the user may view it (else None: the caller says 404 either way)."""
    sheet = Sheet.objects.filter(slug=slug).first()
    return sheet if sheet is not None and sheet.allows(user, "view") else None


def sheet_schema(sheet: Sheet) -> SheetSchema:
    """The sheet's fields now, every column any version had, and its versions (`columns`, `by_key`)."""
    return schema_for(sheet)


def schema_versions(sheet: Sheet) -> list[dict]:
    """The sheet's saved schema versions, newest first: number, created (UTC) and fields."""
    return [
        {"number": number, "created": created, "fields": fields} for number, created, fields in saved_versions(sheet)
    ]


def filter_names(schema: SheetSchema) -> set[str]:
    """Every URL parameter the web table reads (its filters and `sort`)."""
    return {item["name"] for group in query.table_filters(schema, {}) for item in group["inputs"]} | {"sort"}


TIME_PATHS = {"entry": "created", "shot": "laser_ts_ns"}  # what `since`/`until` apply to


@dataclass(frozen=True)
class Entries:
    entries: list[dict]  # the table's documents (no history, no DAQ block), in `sort`'s order
    sort: list[tuple[str, int]]  # a total order: the last key is the entry id
    problems: list[query.Problem]  # each names its URL parameter
    stale_since: datetime | None  # MongoDB unreachable since then: the entries as they were


def entries(
    schema: SheetSchema,
    params,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    time: str = "entry",
) -> Entries:
    """The entries of the web table for the same URL parameters (`query.table_query`, evaluated by
    the table's read model), within [since, until) of the entry's time or its shot's laser time."""
    conditions, sort, problems = query.table_query(schema, params)
    path = TIME_PATHS[time]
    bounds = conditions.get(path, {}) if path == "created" else {}
    if since is not None:
        low = since if path == "created" else to_ns(since)
        bounds["$gte"] = max(bounds["$gte"], low) if "$gte" in bounds else low
    if until is not None:
        bounds["$lt"] = until if path == "created" else to_ns(until)
    if bounds:
        conditions[path] = bounds
    sheet_table = table.table(schema.sheet.slug)
    return Entries(sheet_table.find(conditions, sort), sort, problems, sheet_table.stale_since)


def entry_position(entry: dict, sort: list[tuple[str, int]]) -> list:
    """Where an entry stands in `sort`'s order (MongoDB's order of types), as JSON values compared
    item by item: the API's cursor holds the last entry's."""
    position = []
    for path, _ in sort:
        rank, value = table.sort_key(lookup(entry, path))
        if isinstance(value, datetime):
            value = to_ns(value)
        position.append([rank, value])
    return position


def to_ns(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def entry_with_history(sheet: Sheet, entry_id: str) -> dict | None:
    """One entry of the sheet as stored, with its history (oldest change first); None if not the sheet's."""
    entry = store.get_entry(entry_id)
    return entry if entry is not None and entry.get("sheet") == sheet.slug else None


FORMULA_STARTS = export.FORMULA_STARTS  # text starting so is a formula to a spreadsheet: csv_cell escapes it


def csv_cell(value) -> str:
    """A value as CSV text as the web export writes it: text a spreadsheet would run as a formula
    gets a leading `'`, numbers stay numbers."""
    return export.csv_cell(value)


def csv_text(header: list[str], rows, cell) -> str:
    """The web export's CSV writer (its fast path for plain columns), each cell as `cell` makes it."""
    return export.csv_text(header, rows, cell)


def csv_text_of_columns(header: list[str], columns, cell) -> str:
    """csv_text of a table given column by column."""
    return export.csv_text_of_columns(header, columns, cell)


def field_heading(field: FieldDef) -> str:
    """`label [unit]`, as the web export's header names a field."""
    return field.heading


def voided_note(entry: dict) -> str:
    """`voided by ada at 2026-12-02 03:14:15 CET: wrong target`, or "" for an entry in force."""
    return display.voided_note(entry.get("voided"))


def entry(entry_id: str) -> dict | None:
    """One entry document (values, shot identity, `rev`, `schema_version`, `daq`), or None."""
    return store.get_entry(entry_id)


def sheet_entries(sheet_slug: str) -> Iterator[dict]:
    """Every entry of a sheet (without its history, with its DAQ snapshot), in one read of the
    collection, streamed: for a reconciliation that must not rely on the change log, or a reader
    so far behind the log that reading change by change would cost more."""
    return iter(store.sheet_entries_streamed(sheet_slug))


def last_change(sheet_slug: str, known: int = 0) -> int:
    """The number of the sheet's latest change (0: none yet), found with a few reads by `_id` from
    a `known` one."""
    return store.last_change(sheet_slug, known)


def schema_fields(sheet_slug: str, version: int) -> list[dict]:
    """The fields (key, label, type, unit, …) of a sheet's schema version, as stored beside the entries."""
    snapshot = store.schema(sheet_slug, version)
    return snapshot["fields"] if snapshot else []


def change_log_generation(sheet_slug: str) -> str | None:
    """The generation of the sheet's change log: it changes when the database was reset."""
    start = store.change(sheet_slug, 0)
    return start["entry"] if start else None


def changed_entry(sheet_slug: str, number: int) -> str | None:
    """The id of the entry written by change `number` of the sheet's log (a read by `_id`), None
    past the log's end: the log is the gap-free run 1..N, so the first missing number ends it."""
    change = store.change(sheet_slug, number)
    return change["entry"] if change else None


# --- the read API's shot join and time series ------------------------------------------------------------
NUMERIC_TYPES = frozenset(NUMERIC)  # the field types a time series plots


@dataclass(frozen=True)
class ShotEntries:
    sheet: Sheet
    schema: SheetSchema
    entries: list[dict]  # the table's documents with this shot key, newest first
    stale_since: datetime | None  # MongoDB unreachable since then: the entries as last read


def entries_for_shot(user, shot_key: str) -> list[ShotEntries]:
    """The entries with this shot key in each sheet the user may view (sheets without one left
    out; voided entries too), from the tables' read model: no scan of the entries collection."""
    found = []
    for sheet in visible_sheets(user):
        sheet_table = table.table(sheet.slug)
        entries = [entry for entry in sheet_table.of_shot(shot_key) if entry.get("voided") is None]
        if entries:
            found.append(ShotEntries(sheet, schema_for(sheet), entries, sheet_table.stale_since))
    return found


def entry_ids_of_shot(shot_key: str, sheet_slugs: list[str]) -> list[str]:
    """The ids of the entries (voided ones left out) with this shot key in these sheets."""
    return [
        entry["_id"]
        for slug in sheet_slugs
        for entry in table.table(slug).find({"shot_key": shot_key, "voided": None}, [("created", -1)])
    ]


def sheet_exists(slug: str) -> bool:
    return Sheet.objects.filter(slug=slug).exists()
