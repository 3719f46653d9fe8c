"""Shot-sheet logic: schema versions, entries with history, table queries, live broadcast, export."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import store
from .consumers import sheet_group
from .models import Field, SchemaVersion, Sheet

NUMERIC = {Field.Type.INTEGER, Field.Type.FLOAT}
FIELD_ATTRIBUTES = ["key", "label", "type", "unit", "required", "min_value", "max_value", "pattern",
                    "default", "help_text", "choices", "sticky", "archived"]


class EditConflict(Exception):
    """Somebody else saved the entry first."""


# --- schema versions ---------------------------------------------------------------------------
def field_snapshot(sheet: Sheet) -> list[dict]:
    return [{name: getattr(f, name) for name in FIELD_ATTRIBUTES} for f in sheet.fields.all()]


@transaction.atomic
def current_schema(sheet: Sheet) -> SchemaVersion:
    """The sheet's schema version for its fields as they are now; a change makes a new version."""
    fields = field_snapshot(sheet)
    latest = sheet.versions.select_for_update().order_by("-number").first()
    if latest and latest.fields == fields:
        return latest
    version = SchemaVersion.objects.create(sheet=sheet, number=(latest.number + 1) if latest else 1, fields=fields)
    store.save_schema(sheet.slug, version.number, fields)
    return version


def schema_fields(sheet: Sheet, number: int) -> list[dict]:
    version = sheet.versions.filter(number=number).first()
    if version:
        return version.fields
    saved = store.schema(sheet.slug, number)  # the Django database may have been reset
    return saved["fields"] if saved else []


def table_columns(sheet: Sheet) -> list[dict]:
    """Every field any version had, newest definition first: old entries keep their columns."""
    columns: dict[str, dict] = {}
    for version in sheet.versions.order_by("-number"):
        for field in version.fields:
            columns.setdefault(field["key"], field)
    current = [f["key"] for f in field_snapshot(sheet)]
    return sorted(columns.values(), key=lambda f: (f["key"] not in current,
                                                   current.index(f["key"]) if f["key"] in current else 0))


# --- entries -----------------------------------------------------------------------------------------
def relay_shot() -> dict | None:
    """The relay's latest shot, when the relay app keeps one; never blocks entry."""
    try:
        from relay.store import latest_shot

        return latest_shot()
    except Exception:
        return None


def sticky_values(sheet: Sheet, fields: list[dict]) -> dict:
    last = store.latest_entry(sheet.slug)
    if not last:
        return {}
    return {f["key"]: last["values"].get(f["key"]) for f in fields if f["sticky"] and f["key"] in last["values"]}


def daq_snapshot(sheet: Sheet) -> dict | None:
    profile = sheet.daq_profile
    return {"profile": profile.name, "config": profile.config, "updated": profile.updated} if profile else None


def create_entry(sheet: Sheet, version: SchemaVersion, values: dict, *, author: str, shot: dict,
                 comment: str = "") -> dict:
    now = datetime.now(UTC)
    entry = {
        "_id": f"{sheet.slug}:{now:%Y%m%d%H%M%S}:{uuid.uuid4().hex[:8]}",
        "sheet": sheet.slug, "experiment": sheet.experiment, "schema_version": version.number,
        "values": values, "shot_key": shot.get("shot_key") or None, "shot_number": shot.get("shot_number"),
        "laser_ts": shot.get("laser_ts"), "author": author, "created": now, "updated": now,
        "comment": comment, "rev": 1, "history": [], "daq": daq_snapshot(sheet),
    }
    store.insert_entry(entry)
    broadcast(sheet, entry)
    return entry


def update_entry(sheet: Sheet, entry: dict, rev: int, values: dict, *, author: str, comment: str) -> dict:
    """Save changed values with their history, refusing it if the entry changed since `rev`."""
    diff = {key: [entry["values"].get(key), new] for key, new in values.items()
            if not same_value(entry["values"].get(key), new)}
    changes = {f"values.{key}": new for key, (_, new) in diff.items()}
    if comment != entry.get("comment", ""):
        changes["comment"] = comment
        diff["comment"] = [entry.get("comment", ""), comment]
    if not changes:
        return entry
    now = datetime.now(UTC)
    if not store.update_entry(entry["_id"], rev, changes, {"who": author, "when": now, "changes": diff}, now):
        raise EditConflict("This entry was changed by someone else while you edited it; "
                           "reload it to see their changes, then apply yours again.")
    updated = store.get_entry(entry["_id"])
    broadcast(sheet, updated)
    return updated


def same_value(old, new) -> bool:
    """An empty form input is no change to a value that was never set."""
    return old == new or (old in (None, "", []) and new in (None, "", []))


def broadcast(sheet: Sheet, entry: dict) -> None:
    """Tell every open table of the sheet (best effort: a missing Redis never blocks a save)."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            sheet_group(sheet.slug), {"type": "entry.changed", "entry": orjson.loads(orjson.dumps(
                row_for(entry, table_columns(sheet)), default=str))})
    except Exception:
        pass


def row_for(entry: dict, columns: list[dict]) -> dict:
    return {"id": entry["_id"], "shot_key": entry.get("shot_key"), "created": entry["created"],
            "author": entry.get("author"), "rev": entry.get("rev"), "comment": entry.get("comment", ""),
            "values": [display(entry["values"].get(c["key"])) for c in columns]}


def display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


# --- the table -------------------------------------------------------------------------------------
@dataclass
class TableQuery:
    """Sort and filters from the URL, checked against the sheet's columns: never raw operators."""

    sort: str = "-created"
    filters: dict | None = None
    page: int = 1
    page_size: int = 50


def table_query(sheet: Sheet, params) -> tuple[dict, list, list[str]]:
    """(MongoDB filter, sort, problems) for the URL's query parameters."""
    columns = {c["key"]: c for c in table_columns(sheet)}
    query: dict = {"sheet": sheet.slug}
    problems = []
    for key, column in columns.items():
        if column["type"] in NUMERIC:
            bounds = {}
            for suffix, op in (("min", "$gte"), ("max", "$lte")):
                raw = params.get(f"f_{key}_{suffix}", "").strip()
                if raw:
                    try:
                        bounds[op] = float(raw)
                    except ValueError:
                        problems.append(f"{column['label']}: '{raw}' is not a number")
            if bounds:
                query[f"values.{key}"] = bounds
        else:
            raw = params.get(f"f_{key}", "").strip()
            if raw:
                if column["type"] in (Field.Type.CHOICE, Field.Type.BOOLEAN):
                    query[f"values.{key}"] = {"true": True, "false": False}.get(raw, raw) \
                        if column["type"] == Field.Type.BOOLEAN else raw
                else:
                    query[f"values.{key}"] = {"$regex": re.escape(raw), "$options": "i"}
    shot = params.get("shot", "").strip()
    if shot:
        query["shot_key"] = {"$regex": re.escape(shot), "$options": "i"}
    sort_key = params.get("sort", "-created")
    direction = -1 if sort_key.startswith("-") else 1
    name = sort_key.lstrip("-")
    if name in ("created", "shot_key", "author"):
        sort = [(name, direction)]
    elif name in columns:
        sort = [(f"values.{name}", direction)]
    else:
        problems.append(f"cannot sort by '{name}'")
        sort = [("created", -1)]
    if sort[0][0] != "created":
        sort.append(("created", -1))
    return query, sort, problems


def plot_series(sheet: Sheet, query: dict, y_key: str, x: str, limit: int = 20_000) -> dict:
    """x (shot number or time, seconds) and y of a numeric field, for the sheet's plot."""
    columns = {c["key"]: c for c in table_columns(sheet)}
    if y_key not in columns or columns[y_key]["type"] not in NUMERIC:
        raise ValueError(f"'{y_key}' is not a numeric field of {sheet.slug}")
    if x not in ("time", "shot"):
        raise ValueError("x is 'time' or 'shot'")
    points = []
    for entry in store.find_entries(query, [("created", 1)], 0, limit):
        y = entry["values"].get(y_key)
        x_value = entry["created"].timestamp() if x == "time" else entry.get("shot_number")
        if isinstance(y, int | float) and not isinstance(y, bool) and x_value is not None:
            points.append((x_value, y))
    points.sort()
    column = columns[y_key]
    return {"x": [p[0] for p in points], "y": [p[1] for p in points],
            "label": f"{column['label']} [{column['unit']}]" if column["unit"] else column["label"]}


def export_rows(sheet: Sheet, query: dict, sort: list, limit: int = 100_000) -> tuple[list[str], list[list]]:
    columns = table_columns(sheet)
    header = ["entry", "shot_key", "created", "author", "schema_version", "comment"] + [
        f"{c['label']} [{c['unit']}]" if c["unit"] else c["label"] for c in columns]
    rows = [[e["_id"], e.get("shot_key"), e["created"], e.get("author"), e.get("schema_version"),
             e.get("comment", "")] + [e["values"].get(c["key"]) for c in columns]
            for e in store.find_entries(query, sort, 0, limit)]
    return header, rows


def to_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([[display(v) for v in row] for row in rows])
    return out.getvalue()


def to_xlsx(header: list[str], rows: list[list]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("entries")
    sheet.append(header)
    for row in rows:
        sheet.append([v.replace(tzinfo=None) if isinstance(v, datetime) else
                      (display(v) if isinstance(v, list | dict) else v) for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def to_json(header: list[str], rows: list[list]) -> bytes:
    return orjson.dumps([dict(zip(header, row, strict=True)) for row in rows],
                        option=orjson.OPT_INDENT_2, default=str)


# --- import of legacy shot logs ------------------------------------------------------------------
TRUE_WORDS = {"yes", "y", "true", "1", "on", "x", "ok"}


def read_table(path) -> tuple[list[str], list[list]]:
    """Header and rows of a CSV or XLSX file."""
    path = str(path)
    if path.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook

        rows = [list(r) for r in load_workbook(path, read_only=True, data_only=True).active.values]
    else:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty")
    return [str(h or "").strip() for h in rows[0]], rows[1:]


def column_mapping(header: list[str], fields: list[dict], explicit: dict[str, str]) -> dict[int, str]:
    """Column index → field key: explicit `column=field` pairs, else header = key or label."""
    by_name = {}
    for f in fields:
        by_name[f["key"].lower()] = f["key"]
        by_name[f["label"].lower()] = f["key"]
        if f["unit"]:
            by_name[f"{f['label']} [{f['unit']}]".lower()] = f["key"]
    by_name.update({"shot_key": "shot_key", "shot": "shot_key", "comment": "comment"})
    mapping = {}
    for index, column in enumerate(header):
        key = explicit.get(column) or by_name.get(column.lower())
        if key:
            mapping[index] = key
    unknown = set(explicit.values()) - {f["key"] for f in fields} - {"shot_key", "comment"}
    if unknown:
        raise ValueError(f"no such field(s) in the sheet: {', '.join(sorted(unknown))}")
    return mapping


def import_rows(sheet: Sheet, header: list[str], rows: list[list], explicit: dict[str, str] | None = None,
                *, author: str, progress=None) -> tuple[int, list[str]]:
    """Validate every row with the sheet's entry form; store all of them, or none if any fails.

    Returns (entries stored, per-row error report).
    """
    from .forms import entry_form_class, entry_values

    version = current_schema(sheet)
    fields = version.fields
    by_key = {f["key"]: f for f in fields}
    mapping = column_mapping(header, fields, explicit or {})
    if not set(mapping.values()) - {"shot_key", "comment"}:
        raise ValueError(f"no column matches a field of '{sheet.slug}' (columns: {', '.join(header)})")
    form_class = entry_form_class(fields)
    entries, errors = [], []
    now = datetime.now(UTC)
    for number, row in enumerate(progress(rows) if progress else rows, start=2):
        data = {}
        for index, key in mapping.items():
            value = row[index] if index < len(row) else None
            field = by_key.get(key)
            if field and field["type"] == Field.Type.BOOLEAN:
                value = "on" if str(value or "").strip().lower() in TRUE_WORDS or value is True else ""
            elif field and field["type"] == Field.Type.MULTI_CHOICE:
                value = [v.strip() for v in str(value or "").split(",") if v.strip()]
            elif isinstance(value, datetime):
                value = value.isoformat(sep=" ")
            data[key] = "" if value is None else value
        form = form_class(data)
        if not form.is_valid():
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            errors.append(f"row {number}: {problems}")
            continue
        entries.append({
            "_id": f"{sheet.slug}:{now:%Y%m%d%H%M%S}:{uuid.uuid4().hex[:8]}", "sheet": sheet.slug,
            "experiment": sheet.experiment, "schema_version": version.number, "values": entry_values(form, fields),
            "shot_key": form.cleaned_data["shot_key"] or None, "shot_number": None, "laser_ts": None,
            "author": author, "created": now, "updated": now, "comment": form.cleaned_data["comment"],
            "rev": 1, "history": [], "imported": True,
        })
    if errors:
        return 0, errors
    store.insert_entries(entries)
    return len(entries), []
