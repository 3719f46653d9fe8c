"""Shot-sheet logic: schema versions, entries with history, table queries, live broadcast, export."""

from __future__ import annotations

import csv
import io
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.utils import timezone
from pymongo.errors import PyMongoError

from labbook.envelope import parse_shot_key

from . import store, table
from .consumers import sheet_group
from .models import Field, SchemaVersion, Sheet
from .numbers import NumberError, parse_number
from .schema import CHOICES, NUMERIC, FieldDef, SheetSchema, schema_for

log = logging.getLogger(__name__)


class EditConflict(Exception):
    """Somebody else saved the entry first."""

    def __init__(self):
        super().__init__("This entry was changed by someone else while you edited it; nothing of yours was saved. "
                         "Their values and yours are compared below, and yours are still in the form. Start from "
                         "theirs (reload), or choose “Overwrite with my values” to save the form as it is.")


@dataclass(frozen=True)
class ConflictRow:
    """One field whose saved value differs from the value in a refused form."""

    key: str
    label: str
    theirs: str  # saved now
    yours: str  # in the form
    changed_by: str  # who changed it since the form was opened, and when ('' if nobody)


class NotSaved(Exception):
    """MongoDB did not take the entry; the form keeps what was typed."""

    def __init__(self, error: Exception):
        super().__init__(f"Not saved: the database cannot be reached ({type(error).__name__}). Everything you "
                         "typed is still in the form: save again when it is back.")


# --- entries -----------------------------------------------------------------------------------------
def relay_shot() -> dict | None:
    """The relay's latest shot, when the relay app keeps one; never blocks entry."""
    try:
        from relay.store import latest_shot

        return latest_shot()
    except Exception:
        return None


def shot_identity(shot_key: str | None) -> dict:
    """The shot fields of an entry with this key: the number read from any well-formed key, the
    laser time (UTC ns, as in the envelope) from the relay's record of that very shot, if any."""
    key = (shot_key or "").strip() or None
    parts = parse_shot_key(key) if key else None
    record = None
    if key and apps.is_installed("relay"):
        from relay.store import shot

        record = shot(key)
    return {"shot_key": key, "shot_number": parts.number if parts else None,
            "laser_ts_ns": record.get("laser_ts_ns") if record else None}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def laser_time(entry: dict) -> datetime | None:
    """The entry's laser time in the lab's zone, for people to read (stored as UTC ns)."""
    ns = entry.get("laser_ts_ns")
    return timezone.localtime(EPOCH + timedelta(microseconds=ns // 1000)) if ns is not None else None


def sticky_values(sheet: Sheet, fields: list[FieldDef]) -> dict:
    try:
        last = table.newest(sheet.slug)
    except PyMongoError:
        return {}  # the form still opens; it says so when a save fails
    if not last:
        return {}
    return {f.key: last["values"].get(f.key) for f in fields if f.sticky and f.key in last["values"]}


def daq_snapshot(sheet: Sheet) -> dict | None:
    profile = sheet.daq_profile
    return {"profile": profile.name, "config": profile.config, "updated": profile.updated} if profile else None


def new_id(sheet: Sheet, when: datetime) -> str:
    """A readable, unique id of an entry or an import: sheet, time, random suffix."""
    return f"{sheet.slug}:{when:%Y%m%d%H%M%S}:{uuid.uuid4().hex[:8]}"


def entry_document(sheet: Sheet, version_number: int, values: dict, *, author: str, shot_key: str | None,
                   comment: str, created: datetime, daq: dict | None = None, **extra) -> dict:
    """The one builder of an entry document, for the web form and the import alike."""
    return {
        "_id": new_id(sheet, created), "sheet": sheet.slug, "experiment": sheet.experiment,
        "schema_version": version_number, "values": values, **shot_identity(shot_key),
        "author": author, "created": created, "updated": created, "comment": comment,
        "rev": 1, "history": [], "daq": daq, **extra,
    }


def create_entry(sheet: Sheet, version: SchemaVersion, values: dict, *, author: str, shot_key: str | None,
                 comment: str = "") -> dict:
    try:
        entry = entry_document(sheet, version.number, values, author=author, shot_key=shot_key, comment=comment,
                               created=datetime.now(UTC), daq=daq_snapshot(sheet))
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


def update_entry(sheet: Sheet, entry: dict, rev: int, values: dict, *, author: str, comment: str,
                 shot_key: str | None) -> dict:
    """Save changed values, comment and shot key with their history, refusing it if the entry
    changed since `rev`. A new shot key brings its own shot number and laser time."""
    diff = {key: [entry["values"].get(key), new] for key, new in values.items()
            if not same_value(entry["values"].get(key), new)}
    changes = {f"values.{key}": new for key, (_, new) in diff.items()}
    if comment != entry.get("comment", ""):
        changes["comment"] = comment
        diff["comment"] = [entry.get("comment", ""), comment]
    shot_key = (shot_key or "").strip() or None
    if not same_value(entry.get("shot_key"), shot_key):
        try:
            changes.update(shot_identity(shot_key))
        except PyMongoError as exc:
            raise NotSaved(exc) from exc
        diff["shot_key"] = [entry.get("shot_key"), shot_key]
    if not changes:
        return entry
    now = datetime.now(UTC)
    try:
        saved = store.update_entry(entry["_id"], rev, changes, {"who": author, "when": now, "changes": diff}, now)
    except PyMongoError as exc:
        raise NotSaved(exc) from exc
    if not saved:
        raise EditConflict()
    log_change(sheet, [entry["_id"]])
    try:
        updated = store.get_entry(entry["_id"])
    except PyMongoError:
        return entry  # saved; the table and the other browsers catch up when MongoDB answers
    broadcast(sheet, updated)
    return updated


def conflict_rows(fields: list[FieldDef], entry: dict, opened_rev: int, values: dict, *, comment: str,
                  shot_key: str | None) -> list[ConflictRow]:
    """Field by field, the saved entry against a form opened at revision `opened_rev`: what a
    refused editor must see before choosing to overwrite."""
    changed_by: dict[str, list[str]] = {}
    for item in entry.get("history", [])[max(opened_rev, 1) - 1:]:  # revision n+1 added history item n
        when = timezone.localtime(item["when"]).strftime("%Y-%m-%d %H:%M:%S %Z")
        for key in item["changes"]:
            changed_by.setdefault(key, []).append(f"{item['who']}, {when}")
    compared = [(f.key, f.heading, entry["values"].get(f.key), values.get(f.key)) for f in fields if not f.archived]
    compared += [("shot_key", "Shot key", entry.get("shot_key"), (shot_key or "").strip() or None),
                 ("comment", "Comment", entry.get("comment", ""), comment)]
    return [ConflictRow(key, label, display(theirs), display(yours),
                        "changed by " + "; ".join(changed_by[key]) if key in changed_by else "")
            for key, label, theirs, yours in compared if not same_value(theirs, yours)]


def same_value(old, new) -> bool:
    """An empty form input is no change to a value that was never set."""
    return old == new or (old in (None, "", []) and new in (None, "", []))


def broadcast(sheet: Sheet, entry: dict) -> None:
    """Tell every open table of the sheet (best effort: a missing Redis never blocks a save).

    The row carries the schema version of its columns: a table opened before fields were added
    has other columns, and reloads itself instead of putting cells under the wrong headers.
    """
    try:
        schema = schema_for(sheet)
        row = {**row_for(entry, schema.columns), "columns_version": schema.newest_version}
        async_to_sync(get_channel_layer().group_send)(
            sheet_group(sheet.slug), {"type": "entry.changed", "entry": orjson.loads(orjson.dumps(row, default=str))})
    except Exception:
        pass


def row_for(entry: dict, columns: list[FieldDef]) -> dict:
    return {"id": entry["_id"], "shot_key": entry.get("shot_key"), "created": display(entry["created"]),
            "author": entry.get("author"), "rev": entry.get("rev"), "comment": entry.get("comment", ""),
            "values": [display(entry["values"].get(c.key)) for c in columns]}


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
        timezone.get_default_timezone())


def iso_time(value: datetime) -> str:
    """ISO 8601 in the lab's zone with its offset (milliseconds only when there are some)."""
    return lab_time(value).isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def created_header() -> str:
    return f"created [{settings.TIME_ZONE}]"


# --- the table -------------------------------------------------------------------------------------
def table_filters(schema: SheetSchema, params) -> list[dict]:
    """The table's filter inputs (built from the sheet's columns), each with its value from the URL."""
    groups = [{"label": "shot key", "inputs": [{"name": "shot", "placeholder": "contains", "type": "text"}]},
              {"label": created_header(), "inputs": [{"name": "from", "placeholder": "from", "type": "datetime-local"},
                                              {"name": "to", "placeholder": "to", "type": "datetime-local"}]}]
    for column in schema.columns:
        key, kind = column.key, column.type
        if kind in NUMERIC:
            inputs = [{"name": f"f_{key}_min", "placeholder": "min", "type": "text", "inputmode": "decimal"},
                      {"name": f"f_{key}_max", "placeholder": "max", "type": "text", "inputmode": "decimal"}]
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
        groups.append({"label": column.label, "inputs": inputs})
    for group in groups:
        for item in group["inputs"]:
            item["value"] = params.get(item["name"], "").strip()
    return groups


def table_query(schema: SheetSchema, params) -> tuple[dict, list, list[str]]:
    """(MongoDB filter, sort, problems) for the URL's query parameters: never raw operators."""
    sheet, columns = schema.sheet, schema.by_key
    query: dict = {"sheet": sheet.slug}
    problems = []

    def number(raw: str) -> float:
        return float(parse_number(raw, sheet.decimal_mark))

    def bounds(path: str, label: str, low: str, high: str, parse) -> None:
        found = {}
        for raw, op in ((low, "$gte"), (high, "$lte")):
            if raw:
                try:
                    found[op] = parse(raw)
                except NumberError as exc:
                    problems.append(f"{label}: {exc}")
                except ValueError:
                    problems.append(f"{label}: '{raw}' is not a date/time")
        if found:
            query[path] = found

    def text(name: str) -> str:
        return params.get(name, "").strip()

    bounds("created", "created", text("from"), text("to"), parse_time)
    for key, column in columns.items():
        kind = column.type
        if kind in NUMERIC:
            bounds(f"values.{key}", column.label, text(f"f_{key}_min"), text(f"f_{key}_max"), number)
        elif kind == Field.Type.DATETIME:
            bounds(f"values.{key}", column.label, text(f"f_{key}_from"), text(f"f_{key}_to"), parse_time)
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
    return {"x": [p[0] for p in points], "y": [p[1] for p in points], "label": label,
            "missing": missing_note(entries, {"shot number": no_x, label: no_y})}


def missing_note(entries: int, missing: dict[str, int]) -> str:
    """'Not plotted: of 5 entries, 2 have no shot number, 1 has no Energy [J].' ('' if none is missing)."""
    parts = [f"{count} {'has' if count == 1 else 'have'} no {name}" for name, count in missing.items() if count]
    return f"Not plotted: of {entries} entries, {', '.join(parts)}." if parts else ""


def export_rows(schema: SheetSchema, query: dict, sort: list, limit: int = 100_000) -> tuple[list[str], list[list]]:
    sheet, columns = schema.sheet, schema.columns
    header = ["entry", "shot_key", created_header(), "author", "schema_version", "comment"] + [
        c.heading for c in columns]
    rows = [[e["_id"], e.get("shot_key"), e["created"], e.get("author"), e.get("schema_version"),
             e.get("comment", "")] + [e["values"].get(c.key) for c in columns]
            for e in table.table(sheet.slug).find(query, sort)[:limit]]
    return header, rows


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)


def csv_cell(value) -> str:
    """A value as CSV text; text a spreadsheet would run as a formula gets a leading `'` (OWASP's
    advice), numbers stay as they are (a negative number is still a number)."""
    if isinstance(value, int | float):
        return display(value)
    text = value if isinstance(value, str) else iso_time(value) if isinstance(value, datetime) else display(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(h) for h in header])
    writer.writerows([[csv_cell(v) for v in row] for row in rows])
    return out.getvalue()


def xlsx_cell(sheet, value):
    """Text is stored as a string cell, never a formula (openpyxl makes one of any text starting
    with `=`; other text is a string cell already, and a cell object per value cost 2x the time)."""
    if isinstance(value, datetime):  # Excel has no zones: the lab's time, named in the header
        return lab_time(value).replace(tzinfo=None)
    if isinstance(value, list | dict):
        value = display(value)
    if not isinstance(value, str) or not value.startswith("="):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


def to_xlsx(header: list[str], rows: list[list]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("entries")
    sheet.append([xlsx_cell(sheet, h) for h in header])
    for row in rows:
        sheet.append([xlsx_cell(sheet, v) for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def to_json(header: list[str], rows: list[list]) -> bytes:
    rows = [[lab_time(v) if isinstance(v, datetime) else v for v in row] for row in rows]
    return orjson.dumps([dict(zip(header, row, strict=True)) for row in rows],
                        option=orjson.OPT_INDENT_2, default=str)
