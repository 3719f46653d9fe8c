"""The sheet table's read model: a sheet's entries in memory, kept current by the change log.

FerretDB, the local MongoDB-wire server, answers only `_id` look-ups from an index; any other
filter or sort reads the whole collection (seconds per 100,000 entries). So each process reads a
sheet's entries once, then follows the sheet's change log (`store.append_changes`: an `_id`
look-up per request when nothing changed) and filters, sorts and pages in memory. Filters are
the MongoDB query documents `query.table_query` builds, so MongoDB itself could answer them
too (`store.find_entries`); this module evaluates the subset that function produces.
"""

from __future__ import annotations

import bisect
import gc
import logging
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pymongo.errors import PyMongoError

from core.matching import lookup, same

from . import store
from .metrics import TABLE_ENTRIES, TABLE_READ_SECONDS

log = logging.getLogger(__name__)
MAX_CATCH_UP = 2000  # further behind (a big import): one read of everything is cheaper
RELOAD_SECONDS = 1800  # re-read now and then in the background: heals a write whose change was never logged
COMPARE = {"$gte": operator.ge, "$lte": operator.le, "$gt": operator.gt, "$lt": operator.lt}


class SheetTable:
    def __init__(self, slug: str):
        self.slug = slug
        self.entries: dict[str, dict] = {}
        self.changes = -1  # the last change applied; -1: nothing read yet
        self.last_entry = ""  # what that change named: a reset database shows as a mismatch
        self.ordered: list[dict] | None = None  # the entries oldest first (DEFAULT_ORDER reversed), made when asked for
        self.by_shot: dict[str, set[str]] | None = None  # entry ids by shot key, made when asked for
        self.loaded_at = 0.0
        self.reloading = False
        self.stale_since: datetime | None = None  # MongoDB unreachable since: shown as it was
        self.lock = threading.Lock()

    def sync(self) -> SheetTable:
        with self.lock:
            if self.changes < 0 or not self._log_intact():
                self._set(*self._read_all())
            else:
                self._catch_up()
            TABLE_ENTRIES.labels(self.slug).set(len(self.entries))
            if time.monotonic() - self.loaded_at > RELOAD_SECONDS and not self.reloading:
                self.reloading = True
                threading.Thread(target=self._reload, name=f"table-{self.slug}", daemon=True).start()
        return self

    def _log_intact(self) -> bool:
        last = store.change(self.slug, self.changes)
        return last is not None and last["entry"] == self.last_entry

    def _read_all(self) -> tuple[dict, int, str]:
        """All entries, with the last change logged before they were read (later ones are caught up)."""
        began = time.perf_counter()
        store.start_change_log(self.slug, f"generation:{uuid.uuid4().hex}")
        changes = store.last_change(self.slug)
        last_entry = store.change(self.slug, changes)["entry"]
        unfinished = store.unfinished_imports(self.slug)  # an import counts once it is done, or not at all
        entries = {e["_id"]: e for e in store.sheet_entries(self.slug) if e.get("import_id") not in unfinished}
        TABLE_READ_SECONDS.labels(self.slug).observe(time.perf_counter() - began)
        return entries, changes, last_entry

    def _set(self, entries: dict, changes: int, last_entry: str) -> None:
        self.entries, self.changes, self.last_entry = entries, changes, last_entry
        self.ordered = None
        self.by_shot = None
        self.loaded_at = time.monotonic()
        # Take the entries out of the cyclic garbage collector's reach: they hold no cycles (plain
        # documents, freed by reference counting once replaced), and scanning 100,000 of them
        # cost a request ~100 ms now and then.
        gc.collect()
        gc.freeze()

    def _reload(self) -> None:
        try:
            state = self._read_all()
            with self.lock:
                self._set(*state)
        except PyMongoError as exc:
            log.warning("table %s not re-read (%s); trying again at the next request", self.slug, exc)
        finally:
            self.reloading = False

    def _catch_up(self) -> None:
        for _ in range(MAX_CATCH_UP):
            change = store.change(self.slug, self.changes + 1)
            if change is None:
                return
            entry = store.table_entry(change["entry"])
            previous = self.entries.pop(change["entry"], None)
            if entry is not None:
                self.entries[entry["_id"]] = entry
            if self.ordered is not None:
                self._reorder(previous, entry)
            if self.by_shot is not None:
                self._reindex_shot(previous, entry)
            self.changes, self.last_entry = self.changes + 1, change["entry"]
        self._set(*self._read_all())

    def _reorder(self, previous: dict | None, entry: dict | None) -> None:
        """Keep the ordered list without sorting it again: a change moves one entry."""
        if previous is not None:
            i = bisect.bisect_left(self.ordered, default_order(previous), key=default_order)
            if i < len(self.ordered) and self.ordered[i]["_id"] == previous["_id"]:
                del self.ordered[i]
        if entry is not None:
            bisect.insort(self.ordered, entry, key=default_order)

    def _reindex_shot(self, previous: dict | None, entry: dict | None) -> None:
        if previous is not None:
            self.by_shot.get(previous.get("shot_key"), set()).discard(previous["_id"])
        if entry is not None:
            self.by_shot.setdefault(entry.get("shot_key"), set()).add(entry["_id"])

    def of_shot(self, shot_key: str) -> list[dict]:
        """The entries with this shot key, newest first: the shot join's look-up, by a dict kept
        beside the entries (a `find` by shot key reads every entry: 100,000 took ~130 ms)."""
        with self.lock:
            if self.by_shot is None:
                self.by_shot = {}
                for entry in self.entries.values():
                    self.by_shot.setdefault(entry.get("shot_key"), set()).add(entry["_id"])
            found = [self.entries[i] for i in self.by_shot.get(shot_key, ())]
        return sorted(found, key=default_order, reverse=True)

    def find(self, query: dict, sort: list[tuple[str, int]]) -> list[dict]:
        """The entries matching a query, in the order of `sort` (MongoDB's order of types)."""
        if query.get("sheet") == self.slug:
            query = {k: v for k, v in query.items() if k != "sheet"}  # every entry here is the sheet's
        test = all_of([compile_condition(path, condition) for path, condition in query.items()])
        with self.lock:
            if self.ordered is None:
                self.ordered = sorted(self.entries.values(), key=default_order)
            newest_first = reversed(self.ordered)
            found = [entry for entry in newest_first if test(entry)] if test else list(newest_first)
        for path, direction in reversed(strip_default_order(list(sort))):  # stable sorts, least significant first
            found.sort(key=lambda entry: sort_key(lookup(entry, path)), reverse=direction < 0)
        return found

    def pick(self, ids: list[str], query: dict) -> list[dict]:
        """The entries of these ids that match a query: live rows checked against an open grid's filters."""
        test = all_of([compile_condition(path, condition) for path, condition in query.items() if path != "sheet"])
        with self.lock:
            found = [self.entries[i] for i in ids if i in self.entries]
        return [entry for entry in found if test(entry)] if test else found


DEFAULT_ORDER = [("created", -1), ("_id", -1)]


def default_order(entry: dict) -> tuple:
    return sort_key(entry.get("created")), entry["_id"]


def strip_default_order(sort: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The sort keys left to apply to entries already in DEFAULT_ORDER."""
    for tail in (DEFAULT_ORDER, DEFAULT_ORDER[:1]):
        if sort[-len(tail) :] == tail:
            return sort[: -len(tail)]
    return sort


_tables: dict[str, SheetTable] = {}
_tables_lock = threading.Lock()


def table(slug: str) -> SheetTable:
    """The sheet's table in this process, brought up to date.

    With MongoDB unreachable, a table read before is returned as it was, `stale_since` set.
    """
    with _tables_lock:
        sheet_table = _tables.setdefault(slug, SheetTable(slug))
    try:
        sheet_table.sync()
    except PyMongoError:
        if sheet_table.changes < 0:
            raise
        sheet_table.stale_since = sheet_table.stale_since or datetime.now(UTC)
    else:
        sheet_table.stale_since = None
    return sheet_table


def warm_in_background() -> threading.Thread:
    """Read every active sheet's table in a thread, so that after a restart the first page view
    does not wait for it (a request meanwhile waits for the table's lock, never reads twice)."""

    def warm() -> None:
        from django.db import DatabaseError, connection

        from .models import Sheet

        try:
            for slug in Sheet.objects.filter(active=True).values_list("slug", flat=True):
                started = time.monotonic()
                sheet_table = table(slug)
                log.info(
                    "table %s read: %d entries in %.1f s", slug, len(sheet_table.entries), time.monotonic() - started
                )
        except (DatabaseError, PyMongoError) as exc:  # read at its first page view instead
            log.warning("tables not read ahead (%s)", exc)
        finally:
            connection.close()

    thread = threading.Thread(target=warm, name="warm-tables", daemon=True)
    thread.start()
    return thread


def forget(slug: str) -> None:
    """Read the sheet afresh next time (its change log missed a write)."""
    with _tables_lock:
        _tables.pop(slug, None)


def newest(slug: str) -> dict | None:
    found = table(slug).find({}, [("created", -1)])
    return found[0] if found else None


# --- the query subset of query.table_query, evaluated as MongoDB would ----------------------------
def compile_condition(path: str, condition) -> Callable[[dict], bool]:
    """A test of one query condition, specialised for the common cases (it runs per entry)."""
    parts = path.split(".")
    if len(parts) == 2:
        outer, inner = parts
        get = lambda entry: (entry.get(outer) or {}).get(inner)  # noqa: E731
    elif len(parts) == 1:
        get = lambda entry: entry.get(path)  # noqa: E731
    else:
        get = lambda entry: lookup(entry, path)  # noqa: E731
    if condition is None:  # missing or null: every page's `voided` test (hide voided entries)
        return lambda entry: (value := get(entry)) is None or (isinstance(value, list) and None in value)
    if isinstance(condition, str):  # equality on text: the choice and shot filters
        return lambda entry: (value := get(entry)) == condition or (isinstance(value, list) and condition in value)
    if isinstance(condition, dict) and condition.keys() <= COMPARE.keys() and condition:
        rank, tests = sort_key(next(iter(condition.values())))[0], [(COMPARE[op], a) for op, a in condition.items()]
        if any(sort_key(a)[0] != rank for _, a in tests):
            return lambda entry: condition_holds(get(entry), condition)
        return lambda entry: (
            (value := get(entry)) is not None and sort_key(value)[0] == rank and all(op(value, a) for op, a in tests)
        ) or (isinstance(value, list) and any(operators_hold(v, condition) for v in value))
    return lambda entry: condition_holds(get(entry), condition)


def all_of(tests: list[Callable[[dict], bool]]) -> Callable[[dict], bool] | None:
    """One test that holds when every test holds (None for no test), as chained calls: over
    100,000 entries `all(test(e) for test in tests)` cost 21 ms more than the test itself."""
    if not tests:
        return None
    first, rest = tests[0], all_of(tests[1:])
    return first if rest is None else lambda entry: first(entry) and rest(entry)


def condition_holds(value, condition) -> bool:
    candidates = value if isinstance(value, list) else [value]  # a list matches through its elements
    if isinstance(condition, dict) and condition.keys() == {"$ne"}:  # no element equal (`voided=only`)
        return not condition_holds(value, condition["$ne"])
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        return any(operators_hold(v, condition) for v in candidates)
    return same(value, condition) or any(same(v, condition) for v in candidates)


def operators_hold(value, condition: dict) -> bool:
    for op, argument in condition.items():
        if op == "$options":
            continue
        if op == "$regex":
            flags = re.IGNORECASE if "i" in condition.get("$options", "") else 0
            if not isinstance(value, str) or not re.search(argument, value, flags):
                return False
        elif op == "$in":
            if not any(same(value, a) for a in argument):
                return False
        elif op in COMPARE:
            if sort_key(value)[0] != sort_key(argument)[0] or not COMPARE[op](value, argument):
                return False
        else:
            raise ValueError(f"the table does not evaluate {op}")
    return True


def sort_key(value) -> tuple:
    """MongoDB's order across types: null, numbers, strings, objects/arrays, booleans, dates."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (4, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (5, value)
    return (3, str(value))
