"""The relay's recorded shots by laser time or by shot number, a page at a time, newest first.

Both go through the hand-made indexes of `relay.store` (`_id` look-ups only: FerretDB reads the
whole collection for any other query), so a page costs the same on a day of shots or a year:
by time, one look-up per minute of the range that the relay's hours index lists plus one per
shot; by number, one look-up per shot key of the range (the keys are known from the runs). A
request stops after `MAX_LOOKUPS` look-ups and says so (`complete=False`) instead of running on.
Until `manage.py relay_index_shots` indexed the shots recorded before the indexes, the shots are
found by reading the whole collection (`indexed=False`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.envelope import key_prefix, parse_shot_key
from core.times import EPOCH

from . import store

MAX_LOOKUPS = 20_000  # index slots and shot keys read by one request (≈ 0.3-1 ms each on FerretDB)


@dataclass(frozen=True)
class ShotQuery:
    """Plain values, never operators. Number bounds given: by number (and time, if given), else by time."""

    since: datetime | None = None  # laser time from (included)
    until: datetime | None = None  # laser time to (excluded)
    number_min: int | None = None
    number_max: int | None = None
    experiment: str = ""
    limit: int = 100
    after: str = ""  # the last shot key of the previous page: go on after it

    @property
    def by_number(self) -> bool:
        return self.number_min is not None or self.number_max is not None


@dataclass
class ShotPage:
    shots: list[dict]  # the records, each with every field of `store.RECORD_FIELDS` (None: not recorded)
    more: bool = False  # another page follows: ask again with `after` = the last shot's key
    complete: bool = True  # False: stopped after MAX_LOOKUPS look-ups (narrow the range, or go on with `after`)
    indexed: bool = True  # False: the whole collection was read (shots not yet indexed)
    lookups: int = 0  # index slots and shot keys read


def to_ns(when: datetime | None) -> int | None:
    return None if when is None else (when - EPOCH) // timedelta(microseconds=1) * 1000


def record(raw: dict) -> dict:
    """A recorded shot with every field (records made before the indexes kept only five)."""
    shot = {name: raw.get(name) for name in store.RECORD_FIELDS}
    if shot["experiment"] is None and (parts := parse_shot_key(shot["shot_key"] or "")):
        shot["experiment"] = parts.experiment
    return shot


def shots(query: ShotQuery) -> ShotPage:
    if not store.index_complete():
        return _by_scan(query)
    return _by_number(query) if query.by_number else _by_time(query)


def _time_order(shot: dict) -> tuple[int, str]:
    return store.shot_time_ns(shot) or 0, shot["shot_key"]


def _in_time(shot_ns: int | None, since: int | None, until: int | None) -> bool:
    if since is None and until is None:
        return True
    return shot_ns is not None and (since is None or shot_ns >= since) and (until is None or shot_ns < until)


def _experiment_of(key: str) -> str | None:
    parts = parse_shot_key(key)
    return parts.experiment if parts else None


def _by_time(query: ShotQuery) -> ShotPage:
    since, until = to_ns(query.since), to_ns(query.until)
    position = None
    if query.after:
        previous = next(store.shots_by_key([query.after]), None)
        position = _time_order(previous) if previous else None
        if position is not None:  # not excluded: shots at the same instant come after by key
            until = position[0] + 1 if until is None else min(until, position[0] + 1)
    first = query.since.astimezone(UTC).strftime(store.MINUTE) if query.since else ""
    last = datetime.fromtimestamp(until / 1e9, UTC).strftime(store.MINUTE) if until is not None else "9" * 12
    page = ShotPage([])
    for hour in reversed(store.hours()):
        if hour < first[:10] or hour > last[:10]:
            continue
        for m in range(59, -1, -1):
            minute = f"{hour}{m:02d}"
            if not first <= minute <= last:
                continue
            if page.lookups >= MAX_LOOKUPS:
                page.complete = False
                return page
            refs = store.minute_refs(minute)
            page.lookups += 1 + len(refs) // 1000
            for shot_ns, key in sorted(refs, reverse=True):
                if not _in_time(shot_ns, since, until) or (position and (shot_ns, key) >= position):
                    continue
                if query.experiment and _experiment_of(key) not in (None, query.experiment):
                    continue
                if page.lookups >= MAX_LOOKUPS:
                    page.complete = False
                    return page
                page.lookups += 1
                found = next(store.shots_by_key([key]), None)
                if found is None or query.experiment and record(found)["experiment"] != query.experiment:
                    continue
                if len(page.shots) == query.limit:
                    page.more = True
                    return page
                page.shots.append(record(found))
    return page


def _run_order(run: dict) -> tuple[str, int, str]:
    return run["date"], run["run"], run["experiment"]


def _by_number(query: ShotQuery) -> ShotPage:
    since, until = to_ns(query.since), to_ns(query.until)
    position = None
    if query.after and (parts := parse_shot_key(query.after)):
        position = (parts.date, parts.run, parts.experiment, parts.number)
    runs = [
        run
        for run in store.runs()
        if (not query.experiment or run["experiment"] == query.experiment)
        and (since is None or run.get("last_ts_ns") is None or run["last_ts_ns"] >= since)
        and (until is None or run.get("first_ts_ns") is None or run["first_ts_ns"] < until)
    ]
    page = ShotPage([])
    for run in sorted(runs, key=_run_order, reverse=True):
        low = max(run.get("first_number", 0), query.number_min if query.number_min is not None else 0)
        high = min(run.get("last_number", -1), query.number_max if query.number_max is not None else 10**12)
        if position is not None:
            if _run_order(run) > position[:3]:
                continue
            if _run_order(run) == position[:3]:
                high = min(high, position[3] - 1)
        prefix = key_prefix(run["experiment"], run["run"], run["date"])
        for number in range(high, low - 1, -1):
            if page.lookups >= MAX_LOOKUPS:
                page.complete = False
                return page
            page.lookups += 1
            found = next(store.shots_by_key([f"{prefix}-{number:06d}"]), None)
            if found is None or not _in_time(store.shot_time_ns(found), since, until):
                continue
            if len(page.shots) == query.limit:
                page.more = True
                return page
            page.shots.append(record(found))
    return page


def _by_scan(query: ShotQuery) -> ShotPage:
    """Every recorded shot read and filtered here: before the old records are indexed."""
    since, until = to_ns(query.since), to_ns(query.until)
    matching = []
    for raw in store.scan_shots():
        shot = record(raw)
        parts = parse_shot_key(shot["shot_key"] or "")
        if query.experiment and shot["experiment"] != query.experiment:
            continue
        if not _in_time(store.shot_time_ns(shot), since, until):
            continue
        if query.by_number:
            number = parts.number if parts else shot["shot_number"]
            if not isinstance(number, int) or (
                query.number_min is not None
                and number < query.number_min
                or query.number_max is not None
                and number > query.number_max
            ):
                continue
        matching.append(shot)
    order = _number_order if query.by_number else _time_order
    matching.sort(key=order, reverse=True)
    if query.after:
        previous = next((shot for shot in matching if shot["shot_key"] == query.after), None)
        if previous is not None:
            matching = [shot for shot in matching if order(shot) < order(previous)]
    return ShotPage(matching[: query.limit], more=len(matching) > query.limit, indexed=False, lookups=0)


def _number_order(shot: dict) -> tuple:
    parts = parse_shot_key(shot["shot_key"] or "")
    if parts is None:
        return ("", 0, "", shot["shot_number"] or 0)
    return parts.date, parts.run, parts.experiment, parts.number
