"""Shot-sheet logic: schema versions, entries with history, table queries, live broadcast, export."""

from __future__ import annotations

import csv
import io
import logging
import re
import uuid
from datetime import UTC, datetime

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone
from pymongo.errors import PyMongoError

from . import store, table
from .consumers import sheet_group
from .models import Field, SchemaVersion, Sheet

log = logging.getLogger(__name__)
NUMERIC = {Field.Type.INTEGER, Field.Type.FLOAT}
CHOICES = {Field.Type.CHOICE, Field.Type.MULTI_CHOICE}
FIELD_ATTRIBUTES = ["key", "label", "type", "unit", "required", "min_value", "max_value", "pattern",
                    "default", "help_text", "choices", "sticky", "archived"]


class EditConflict(Exception):
    """Somebody else saved the entry first."""


class NotSaved(Exception):
    """MongoDB did not take the entry; the form keeps what was typed."""

    def __init__(self, error: Exception):
        super().__init__(f"Not saved: the database cannot be reached ({type(error).__name__}). Everything you "
                         "typed is still in the form: save again when it is back.")


# --- schema versions ---------------------------------------------------------------------------
def field_snapshot(sheet: Sheet) -> list[dict]:
    return [field_definition(f) for f in sheet.fields.select_related("choice_source__sheet")]


def field_definition(field: Field) -> dict:
    definition = {name: getattr(field, name) for name in FIELD_ATTRIBUTES}
    if field.choice_source:  # only when set, so the versions of fields without one stay as they were
        definition["choice_source"] = field.choice_source.describe()
    return definition


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
    try:
        last = table.newest(sheet.slug)
    except PyMongoError:
        return {}  # the form still opens; it says so when a save fails
    if not last:
        return {}
    return {f["key"]: last["values"].get(f["key"]) for f in fields if f["sticky"] and f["key"] in last["values"]}


def daq_snapshot(sheet: Sheet) -> dict | None:
    profile = sheet.daq_profile
    return {"profile": profile.name, "config": profile.config, "updated": profile.updated} if profile else None


def new_id(sheet: Sheet, when: datetime) -> str:
    """A readable, unique id of an entry or an import: sheet, time, random suffix."""
    return f"{sheet.slug}:{when:%Y%m%d%H%M%S}:{uuid.uuid4().hex[:8]}"


def create_entry(sheet: Sheet, version: SchemaVersion, values: dict, *, author: str, shot: dict,
                 comment: str = "") -> dict:
    now = datetime.now(UTC)
    entry = {
        "_id": new_id(sheet, now),
        "sheet": sheet.slug, "experiment": sheet.experiment, "schema_version": version.number,
        "values": values, "shot_key": shot.get("shot_key") or None, "shot_number": shot.get("shot_number"),
        "laser_ts": shot.get("laser_ts"), "author": author, "created": now, "updated": now,
        "comment": comment, "rev": 1, "history": [], "daq": daq_snapshot(sheet),
    }
    try:
        store.insert_entry(entry)
    except PyMongoError as exc:
        raise NotSaved(exc) from exc
    log_change(sheet, [entry["_id"]])
    broadcast(sheet, entry)
    return entry


def log_change(sheet: Sheet, entry_ids: list[str]) -> None:
    """Tell the tables of every process; the entries themselves are already stored."""
    try:
        store.append_changes(sheet.slug, entry_ids)
    except PyMongoError as exc:  # never report a stored entry as lost: its table re-reads instead
        log.error("entries of %s stored but their change not logged (%s); tables see them at their next "
                  "full read", sheet.slug, exc)
        table.forget(sheet.slug)


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
    try:
        saved = store.update_entry(entry["_id"], rev, changes, {"who": author, "when": now, "changes": diff}, now)
    except PyMongoError as exc:
        raise NotSaved(exc) from exc
    if not saved:
        raise EditConflict("This entry was changed by someone else while you edited it; "
                           "reload it to see their changes, then apply yours again.")
    log_change(sheet, [entry["_id"]])
    try:
        updated = store.get_entry(entry["_id"])
    except PyMongoError:
        return entry  # saved; the table and the other browsers catch up when MongoDB answers
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
def table_filters(sheet: Sheet, params) -> list[dict]:
    """The table's filter inputs (built from the sheet's columns), each with its value from the URL."""
    groups = [{"label": "shot key", "inputs": [{"name": "shot", "placeholder": "contains", "type": "text"}]},
              {"label": "created", "inputs": [{"name": "from", "placeholder": "from", "type": "datetime-local"},
                                              {"name": "to", "placeholder": "to", "type": "datetime-local"}]}]
    for column in table_columns(sheet):
        key, kind = column["key"], column["type"]
        if kind in NUMERIC:
            inputs = [{"name": f"f_{key}_min", "placeholder": "min", "type": "number"},
                      {"name": f"f_{key}_max", "placeholder": "max", "type": "number"}]
        elif kind == Field.Type.DATETIME:
            inputs = [{"name": f"f_{key}_from", "placeholder": "from", "type": "datetime-local"},
                      {"name": f"f_{key}_to", "placeholder": "to", "type": "datetime-local"}]
        elif kind == Field.Type.BOOLEAN:
            inputs = [{"name": f"f_{key}", "type": "select", "options": ["", "true", "false"]}]
        elif kind == Field.Type.JSON:
            continue
        else:
            inputs = [{"name": f"f_{key}", "placeholder": "equals" if kind in CHOICES else "contains",
                       "type": "text"}]
        groups.append({"label": column["label"], "inputs": inputs})
    for group in groups:
        for item in group["inputs"]:
            item["value"] = params.get(item["name"], "").strip()
    return groups


def table_query(sheet: Sheet, params) -> tuple[dict, list, list[str]]:
    """(MongoDB filter, sort, problems) for the URL's query parameters: never raw operators."""
    columns = {c["key"]: c for c in table_columns(sheet)}
    query: dict = {"sheet": sheet.slug}
    problems = []

    def bounds(path: str, label: str, low: str, high: str, parse) -> None:
        found = {}
        for raw, op in ((low, "$gte"), (high, "$lte")):
            if raw:
                try:
                    found[op] = parse(raw)
                except ValueError:
                    problems.append(f"{label}: '{raw}' is not a {'number' if parse is float else 'date/time'}")
        if found:
            query[path] = found

    def text(name: str) -> str:
        return params.get(name, "").strip()

    bounds("created", "created", text("from"), text("to"), parse_time)
    for key, column in columns.items():
        kind = column["type"]
        if kind in NUMERIC:
            bounds(f"values.{key}", column["label"], text(f"f_{key}_min"), text(f"f_{key}_max"), float)
        elif kind == Field.Type.DATETIME:
            bounds(f"values.{key}", column["label"], text(f"f_{key}_from"), text(f"f_{key}_to"), parse_time)
        elif raw := text(f"f_{key}"):
            if kind == Field.Type.BOOLEAN:
                query[f"values.{key}"] = raw.lower() in ("true", "yes", "1")
            elif kind in CHOICES:
                query[f"values.{key}"] = raw  # matches a list element too (multi-choice)
            elif kind != Field.Type.JSON:
                query[f"values.{key}"] = {"$regex": re.escape(raw), "$options": "i"}
    if shot := text("shot"):
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
    sort.append(("_id", -1))  # entries saved in the same millisecond still come in one order
    return query, sort, problems


def parse_time(raw: str) -> datetime:
    """An ISO date or date/time from a filter; without a zone it is the lab's local time."""
    value = datetime.fromisoformat(raw)
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def plot_series(sheet: Sheet, query: dict, y_key: str, x: str, limit: int = 20_000) -> dict:
    """x (shot number or time, seconds) and y of a numeric field, for the sheet's plot."""
    columns = {c["key"]: c for c in table_columns(sheet)}
    if y_key not in columns or columns[y_key]["type"] not in NUMERIC:
        raise ValueError(f"'{y_key}' is not a numeric field of {sheet.slug}")
    if x not in ("time", "shot"):
        raise ValueError("x is 'time' or 'shot'")
    points = []
    for entry in table.table(sheet.slug).find(query, [("created", 1)])[:limit]:
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
            for e in table.table(sheet.slug).find(query, sort)[:limit]]
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
