"""Entries: the one builder of an entry document, saving and editing with history, edit conflicts,
the shot an entry names, and the live row sent to open tables."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.apps import apps
from django.db import DatabaseError
from django.utils import timezone
from pymongo.errors import PyMongoError

from core import times
from core.envelope import parse_shot_key
from core.matching import lookup
from relay import selectors as relay_selectors

from . import live, store, table
from .display import display, row_for
from .metrics import ENTRIES_SAVED
from .models import SchemaVersion, Sheet
from .schema import FieldDef, schema_for

log = logging.getLogger(__name__)


class EditConflict(Exception):
    """Somebody else saved the entry first."""

    def __init__(self):
        super().__init__(
            "This entry was changed by someone else while you edited it; nothing of yours was saved. "
            "Their values and yours are compared below, and yours are still in the form. Start from "
            "theirs (reload), or choose “Overwrite with my values” to save the form as it is."
        )


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
        super().__init__(
            f"Not saved: the database cannot be reached ({type(error).__name__}). Everything you "
            "typed is still in the form: save again when it is back."
        )


# --- entries -----------------------------------------------------------------------------------------
def relay_shot() -> dict | None:
    """The relay's latest shot, when the relay app keeps one; never blocks entry."""
    if not apps.is_installed("relay"):
        return None
    try:
        return relay_selectors.latest_shot()
    except PyMongoError as exc:
        log.warning("the relay's latest shot not read: %s", exc)
        return None


def relay_values(fields: list[FieldDef], shot_key: str) -> dict:
    """The values the relay's envelope of this shot gives for fields that name one (`relay_value`),
    as the form shows them; {} when the relay holds no envelope of the shot (only its latest)."""
    mapped = [f for f in fields if f.relay_value and not f.archived]
    envelope = relay_shot() if mapped and shot_key else None
    if not envelope or envelope.get("shot_key") != shot_key:
        return {}
    found = {f.key: lookup(envelope, f.relay_value) for f in mapped}
    return {key: value for key, value in found.items() if value is not None}


def entries_of_shot(sheet: Sheet, shot_key: str) -> list[dict]:
    """This sheet's entries of one shot, newest first (the form warns of a second entry); voided
    ones are left out: a voided entry is what a new one replaces."""
    try:
        return table.table(sheet.slug).find({"shot_key": shot_key, "voided": None}, [("created", -1)])
    except PyMongoError as exc:
        log.warning("entries of shot %s not read: %s", shot_key, exc)
        return []


def shot_identity(shot_key: str | None) -> dict:
    """The shot fields of an entry with this key: the number read from any well-formed key, the
    laser time (UTC ns, as in the envelope) from the relay's record of that very shot, if any."""
    key = (shot_key or "").strip() or None
    parts = parse_shot_key(key) if key else None
    record = None
    if key and apps.is_installed("relay"):
        record = relay_selectors.shot(key)
    return {
        "shot_key": key,
        "shot_number": parts.number if parts else None,
        "laser_ts_ns": record.get("laser_ts_ns") if record else None,
    }


def laser_time(entry: dict) -> datetime | None:
    """The entry's laser time in the lab's zone, for people to read (stored as UTC ns)."""
    when = times.from_ns(entry.get("laser_ts_ns"))
    return timezone.localtime(when) if when else None


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


def entry_document(
    sheet: Sheet,
    version_number: int,
    values: dict,
    *,
    author: str,
    shot_key: str | None,
    comment: str,
    created: datetime,
    daq: dict | None = None,
    entry_id: str | None = None,
    shot: dict | None = None,
    **extra,
) -> dict:
    """The one builder of an entry document, for the web form, the import and bulk loads alike.
    A bulk load names its ids and the shot identity (`shot_identity`'s fields) itself: no relay
    look-up per entry."""
    return {
        "_id": entry_id or new_id(sheet, created),
        "sheet": sheet.slug,
        "experiment": sheet.experiment,
        "schema_version": version_number,
        "values": values,
        **(shot if shot is not None else shot_identity(shot_key)),
        "author": author,
        "created": created,
        "updated": created,
        "comment": comment,
        "rev": 1,
        "history": [],
        "daq": daq,
        **extra,
    }


def create_entry(
    sheet: Sheet, version: SchemaVersion, values: dict, *, author: str, shot_key: str | None, comment: str = ""
) -> dict:
    try:
        entry = entry_document(
            sheet,
            version.number,
            values,
            author=author,
            shot_key=shot_key,
            comment=comment,
            created=datetime.now(UTC),
            daq=daq_snapshot(sheet),
        )
        store.insert_entry(entry)
    except PyMongoError as exc:
        raise NotSaved(exc) from exc
    ENTRIES_SAVED.labels(sheet.slug, "new").inc()
    log_change(sheet, [entry["_id"]])
    broadcast(sheet, entry)
    return entry


def log_change(sheet: Sheet, entry_ids: list[str]) -> None:
    """Tell the tables of every process; the entries themselves are already stored."""
    try:
        store.append_changes(sheet.slug, entry_ids)
    except PyMongoError as exc:  # never report a stored entry as lost: its table re-reads instead
        log.error(
            "entries of %s stored but their change not logged (%s); tables see them at their next full read",
            sheet.slug,
            exc,
        )
        table.forget(sheet.slug)


def update_entry(
    sheet: Sheet, entry: dict, rev: int, values: dict, *, author: str, comment: str, shot_key: str | None
) -> dict:
    """Save changed values, comment and shot key with their history, refusing it if the entry
    changed since `rev`. A new shot key brings its own shot number and laser time."""
    diff = {
        key: [entry["values"].get(key), new]
        for key, new in values.items()
        if not same_value(entry["values"].get(key), new)
    }
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
    ENTRIES_SAVED.labels(sheet.slug, "edit").inc()
    log_change(sheet, [entry["_id"]])
    try:
        updated = store.get_entry(entry["_id"])
    except PyMongoError:
        return entry  # saved; the table and the other browsers catch up when MongoDB answers
    broadcast(sheet, updated)
    return updated


VOID_REASON_MAX = 500


def set_voided(sheet: Sheet, entry: dict, rev: int, *, author: str, reason: str | None) -> dict:
    """Void an entry (with a reason) or restore it (`reason=None`): never deleted, so its values,
    who voided it, when and why stay, in the entry and its history. Refused, like an edit, if the
    entry changed since `rev`."""
    now = datetime.now(UTC)
    voided = {"reason": reason, "who": author, "when": now} if reason is not None else None
    if same_value(entry.get("voided"), voided):
        return entry
    history_item = {"who": author, "when": now, "changes": {"voided": [entry.get("voided"), voided]}}
    try:
        saved = store.update_entry(entry["_id"], rev, {"voided": voided}, history_item, now)
    except PyMongoError as exc:
        raise NotSaved(exc) from exc
    if not saved:
        raise EditConflict()
    log_change(sheet, [entry["_id"]])
    try:
        updated = store.get_entry(entry["_id"])
    except PyMongoError:
        return entry
    broadcast(sheet, updated)
    return updated


def conflict_rows(
    fields: list[FieldDef], entry: dict, opened_rev: int, values: dict, *, comment: str, shot_key: str | None
) -> list[ConflictRow]:
    """Field by field, the saved entry against a form opened at revision `opened_rev`: what a
    refused editor must see before choosing to overwrite."""
    changed_by: dict[str, list[str]] = {}
    for item in entry.get("history", [])[max(opened_rev, 1) - 1 :]:  # revision n+1 added history item n
        when = timezone.localtime(item["when"]).strftime("%Y-%m-%d %H:%M:%S %Z")
        for key in item["changes"]:
            changed_by.setdefault(key, []).append(f"{item['who']}, {when}")
    compared = [(f.key, f.heading, entry["values"].get(f.key), values.get(f.key)) for f in fields if not f.archived]
    compared += [
        ("shot_key", "Shot key", entry.get("shot_key"), (shot_key or "").strip() or None),
        ("comment", "Comment", entry.get("comment", ""), comment),
    ]
    return [
        ConflictRow(
            key,
            label,
            display(theirs),
            display(yours),
            "changed by " + "; ".join(changed_by[key]) if key in changed_by else "",
        )
        for key, label, theirs, yours in compared
        if not same_value(theirs, yours)
    ]


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
    except DatabaseError as exc:  # the entry is saved; open tables show it at their next reload
        log.warning("sheet %s: changed row not sent: %s", sheet.slug, exc)
        return
    live.send_row(sheet.slug, {**row_for(entry, schema.columns), "columns_version": schema.newest_version})
