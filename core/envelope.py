"""The shot envelope: one definition shared by the relay, the watcher and experiment agents.

Its JSON Schema is envelope.schema.json beside this file; the README documents the fields.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import fastjsonschema
from jsonschema import Draft7Validator

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("envelope.schema.json")


@cache
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def fast_check():
    """The schema compiled to Python (~3 µs an envelope, vs ~70 µs interpreted): the hot path."""
    return fastjsonschema.compile(schema())


def validation_errors(document: Any) -> list[str]:
    """Every way `document` differs from the envelope schema, as readable sentences."""
    try:
        fast_check()(document)
        return []
    except fastjsonschema.JsonSchemaException:
        pass  # explain it with jsonschema's complete, readable list of errors
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(envelope)'}: {error.message}"
        for error in sorted(Draft7Validator(schema()).iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def shot_key(experiment: str, shot_number: int | None, laser_ts_ns: int | None, tz: str, run: int = 1) -> str | None:
    """`<experiment>[-r<run>]-<local YYYYMMDD>-<shot, 6 digits>`: shot counters restart daily,
    and a counter that restarts within a day starts run 2, 3, … of that day, so a key never
    names two shots. Run 1 has no run segment (the keys of a day without a reset read as before)."""
    if shot_number is None:
        return None
    return f"{key_prefix(experiment, run, local_date(laser_ts_ns or time.time_ns(), tz))}-{shot_number:06d}"


def key_prefix(experiment: str, run: int, date: str) -> str:
    """A shot key up to its number: `<experiment>[-r<run>]-<YYYYMMDD>` (run 1 has no run segment)."""
    return f"{experiment}-r{run}-{date}" if run > 1 else f"{experiment}-{date}"


SHOT_KEY = re.compile(r"^(?P<experiment>.+?)(?:-r(?P<run>[1-9][0-9]*))?-(?P<date>[0-9]{8})-(?P<number>[0-9]{6,})$")


class ShotKey(NamedTuple):
    """The parts of a well-formed shot key (a named tuple: a third of a frozen dataclass's cost to
    make, and the watcher's shot index parses the key of every event)."""

    experiment: str
    date: str  # local YYYYMMDD
    run: int  # 1 for the day's first run of the shot counter
    number: int


def parse_shot_key(text: str) -> ShotKey | None:
    """The parts of a key `shot_key()` makes (`LWFA-20261202-000012`, `LWFA-r2-20261202-000001`),
    or None for any other text."""
    match = SHOT_KEY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    return ShotKey(match["experiment"], match["date"], int(match["run"] or 1), int(match["number"]))


_day = ("", 0, 0, "")  # (zone, start ns, end ns, YYYYMMDD) of the last local day asked for


def local_date(when_ns: int, tz: str) -> str:
    """The local date (YYYYMMDD) of an instant; the day's bounds are kept, so a shot costs a compare."""
    global _day
    zone, start, end, date = _day
    if zone == tz and start <= when_ns < end:
        return date
    local = datetime.fromtimestamp(when_ns / 1e9, tz=UTC).astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    following = (midnight + timedelta(days=1, hours=3)).replace(hour=0)  # the next local midnight, DST or not
    start, end = (int(midnight.timestamp()) * 10**9, int(following.timestamp()) * 10**9)
    _day = (tz, start, end, f"{local:%Y%m%d}")
    return _day[3]


def event_id(*identity: Any) -> str:
    """A deterministic id from what identifies the event (never a random UUID per send)."""
    return hashlib.blake2b("\x1f".join(map(str, identity)).encode(), digest_size=16).hexdigest()


def make_envelope(
    *,
    experiment: str,
    source: str,
    kind: str,
    shot_number: int | None,
    laser_ts_ns: int | None,
    tz: str,
    run: int = 1,
    relay_ts_ns: int | None = None,
    seq: int | None = None,
    transport: dict | None = None,
    values: dict | None = None,
    metadata: dict | None = None,
) -> dict:
    """One envelope. Its event id hashes what names the event, so a re-send or a replay (which
    sends the logged envelope itself) keeps it: the run-qualified shot key and the laser time
    when there is one of them; else, for an event with neither (a status message without time)
    and for any other kind than a shot without a laser time (`kind=status shot=2` twice is two
    events), the moment and sequence number it was stamped with, which no other event shares."""
    relay_ts_ns = relay_ts_ns if relay_ts_ns is not None else time.time_ns()
    key = shot_key(experiment, shot_number, laser_ts_ns or relay_ts_ns, tz, run)
    if laser_ts_ns is None and (key is None or kind != "shot"):
        identity = (experiment, source, kind, "stamped", relay_ts_ns, seq)
    else:
        identity = (experiment, source, kind, key, laser_ts_ns)
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(*identity),
        "experiment": experiment,
        "shot_number": shot_number,
        "shot_key": key,
        "source": source,
        "kind": kind,
        "laser_ts_ns": laser_ts_ns,
        "relay_ts_ns": relay_ts_ns,
        "seq": seq,
        "transport": transport or {},
        "values": values or {},
        "metadata": metadata or {},
    }
