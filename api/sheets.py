"""The sheets and entries endpoints' answers, as plain dicts and CSV tables (no serializer per row:
a 1,000-row page must stay well under 300 ms). Everything is read through shotsheet.selectors."""

from __future__ import annotations

from core.times import from_ns
from shotsheet import selectors as shotsheet_selectors

from .pagination import Page
from .renderers import Table, utc_texts

ENTRY_PARAMETERS = {"fields", "since", "until", "time"}  # besides the web table's filters


def field_json(field) -> dict:
    return {
        "key": field.key,
        "label": field.label,
        "type": field.type,
        "unit": field.unit,
        "choices": [line.strip() for line in field.choices.splitlines() if line.strip()],
        "choice_source": field.choice_source,
        "required": field.required,
        "archived": field.archived,
    }


def sheet_json(sheet, schema, *, versions: list[dict] | None = None) -> dict:
    data = {
        "slug": sheet.slug,
        "name": sheet.name,
        "description": sheet.description,
        "experiment": sheet.experiment,
        "active": sheet.active,
        "created": sheet.created,
        "schema_version": schema.newest_version or None,
        "fields": [field_json(field) for field in schema.fields],
    }
    if versions is not None:
        data["schema_versions"] = [
            {"number": v["number"], "created": v["created"], "fields": [field_json(f) for f in v["fields"]]}
            for v in versions
        ]
    return data


def sheets_table(items: list[tuple]) -> Table:
    return Table(
        ["slug", "name", "experiment", "active", "created [UTC]", "schema_version", "fields"],
        [
            [
                s.slug,
                s.name,
                s.experiment,
                s.active,
                s.created,
                schema.newest_version or None,
                ", ".join(f.heading for f in schema.fields),
            ]
            for s, schema in items
        ],
    )


def fields_block(columns) -> dict:
    """The `fields` block of an entries answer: each chosen column's label, type and unit."""
    return {c.key: {"label": c.label, "type": c.type, "unit": c.unit} for c in columns}


def entry_json(entry: dict, keys: list[str]) -> dict:
    values = entry.get("values") or {}
    return {
        "id": entry["_id"],
        "shot_key": entry.get("shot_key"),
        "shot_number": entry.get("shot_number"),
        "laser_time": from_ns(entry.get("laser_ts_ns")),
        "created": entry.get("created"),
        "updated": entry.get("updated"),
        "author": entry.get("author"),
        "schema_version": entry.get("schema_version"),
        "rev": entry.get("rev"),
        "comment": entry.get("comment", ""),
        "voided": entry.get("voided"),  # {reason, who, when} of a voided entry (listed with voided=show|only)
        "values": {key: values.get(key) for key in keys},
    }


def entries_page_json(page: Page, columns) -> dict:
    keys = [c.key for c in columns]
    return {
        "count": page.count,
        "next": page.next,
        "fields": fields_block(columns),
        "results": [entry_json(entry, keys) for entry in page.items],
    }


ENTRY_COLUMNS = [
    "entry",
    "shot_key",
    "shot_number",
    "laser_time [UTC]",
    "created [UTC]",
    "author",
    "schema_version",
    "comment",
    "voided",
]


def entries_table(page: Page, columns) -> Table:
    """The CSV: the entry's own columns, then each field as `label [unit]` (the web export's header),
    built column by column (10,000 rows: a row list each, then turned into columns, cost ~10 ms)."""
    entries = page.items
    values = [entry.get("values") or {} for entry in entries]

    def column(key: str, default=None) -> list:
        return [entry.get(key, default) for entry in entries]

    return Table(
        ENTRY_COLUMNS + [shotsheet_selectors.field_heading(c) for c in columns],
        columns=[
            [entry["_id"] for entry in entries],
            column("shot_key"),
            column("shot_number"),
            utc_texts([from_ns(entry.get("laser_ts_ns")) for entry in entries]),
            utc_texts(column("created")),
            column("author"),
            column("schema_version"),
            column("comment", ""),
            [shotsheet_selectors.voided_note(entry) if entry.get("voided") else "" for entry in entries],
            *([value.get(c.key) for value in values] for c in columns),
        ],
    )


def entry_detail_json(entry: dict, columns) -> dict:
    data = entry_json(entry, [c.key for c in columns])
    data["values"] = dict(entry.get("values") or {})  # every value it holds, archived fields' too
    data["fields"] = fields_block(columns)
    data["daq"] = entry.get("daq")
    data["history"] = [
        {
            "who": item.get("who"),
            "when": item.get("when"),
            "changes": {key: {"old": old, "new": new} for key, (old, new) in item.get("changes", {}).items()},
        }
        for item in entry.get("history", [])
    ]
    return data
