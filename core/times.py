"""Event times as the lab's devices send them → UTC nanoseconds: one reading for relay and watcher.

A number is s, ms, µs or ns since the Unix epoch, told apart by its size (so any time after
March 1973 is read right): the relay once read `timestamp: 1764000000123` (ms) as ns and dated
the shot 1970, while the watcher read the same value right. Text is ISO 8601; a time without an
offset is local time in the sender's zone (the relay input's, else the lab's), never the
server's. Anything else, or a time outside what an int64 of ns holds (1677–2262), is None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT64_MAX = 2**63 - 1
# Above these sizes a number since the epoch is ns, µs or ms; at or below 1e11 it is s (≤ year 5138).
NS_ABOVE, US_ABOVE, MS_ABOVE = 1e17, 1e14, 1e11


@cache
def zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (cached: the relay asks for every naive time)."""
    return ZoneInfo(name)


def is_time_zone(name: str) -> bool:
    try:
        zone(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def epoch_ns(value, tz: str) -> int | None:
    """UTC ns since the epoch of a number (s, ms, µs or ns by size) or of ISO 8601 text (naive: in `tz`)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int):  # integers stay exact: ns since the epoch do not fit a float
            magnitude = abs(value)
            ns = (
                value
                if magnitude > NS_ABOVE
                else value * (1_000 if magnitude > US_ABOVE else 1_000_000 if magnitude > MS_ABOVE else 1_000_000_000)
            )
        elif isinstance(value, float):
            magnitude = abs(value)
            ns = round(
                value
                * (1 if magnitude > NS_ABOVE else 1e3 if magnitude > US_ABOVE else 1e6 if magnitude > MS_ABOVE else 1e9)
            )
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone(tz))
            ns = (parsed - EPOCH) // timedelta(microseconds=1) * 1_000
        else:
            return None
    except (ValueError, OverflowError):  # not ISO 8601, NaN, infinity, beyond datetime's years
        return None
    return ns if -INT64_MAX <= ns <= INT64_MAX else None


def to_datetime(value, tz: str) -> datetime | None:
    """The same reading as `epoch_ns`, as an aware UTC datetime (µs: what BSON and Python keep)."""
    return from_ns(epoch_ns(value, tz))


def from_ns(ns: int | None) -> datetime | None:
    """UTC nanoseconds (the envelope's times) as an aware UTC datetime, to the microsecond."""
    return None if ns is None else EPOCH + timedelta(microseconds=ns // 1_000)
