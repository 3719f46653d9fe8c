"""The time-series endpoint's rows: one numeric field over a time range as (time, value), optionally
reduced per interval in Python (FerretDB has no `$avg`/`$min`/`$max` accumulators), for dashboards
(Grafana's Infinity plugin reads the CSV `time,value` or the JSON rows directly)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean

from core.times import EPOCH

INTERVAL = re.compile(r"^([1-9][0-9]{0,8})(ms|s|m|h|d|w)$")  # Grafana's `$__interval` units
UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
REDUCERS = {"mean": fmean, "min": min, "max": max, "count": len}


def parse_interval(text: str) -> timedelta | None:
    """`10s`, `1m`, `500ms`, `2h`, `1d`, `1w`; None if not so written."""
    match = INTERVAL.match(text)
    return timedelta(**{UNITS[match[2]]: int(match[1])}) if match else None


def numeric(value) -> int | float | None:
    """A number a plot can use: an int or a finite float (true/false, text, NaN are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


@dataclass
class Series:
    rows: list[tuple[datetime, int | float]] = field(default_factory=list)  # oldest first
    skipped: int = 0  # values there but not numbers (text, true/false, lists, NaN)
    missing: int = 0  # entries or events without the field
    read: int = 0  # entries or events read
    complete: bool = True  # False: stopped at the limit of events read (the oldest part is left out)


def collect(points: Iterable[tuple[datetime, object]], complete: bool = True) -> Series:
    """The numeric points, oldest first; the others counted."""
    series = Series(complete=complete)
    for when, value in points:
        series.read += 1
        if value is None:
            series.missing += 1
        elif (number := numeric(value)) is None:
            series.skipped += 1
        else:
            series.rows.append((when, number))
    series.rows.sort(key=lambda row: row[0])
    return series


def reduce_rows(rows: list[tuple[datetime, int | float]], interval: timedelta, reduce: str) -> list[tuple]:
    """One row per interval that has values (intervals counted from the epoch, so the same every
    request), at the interval's start."""
    buckets: dict[int, list] = {}
    for when, value in rows:
        buckets.setdefault((when - EPOCH) // interval, []).append(value)
    return [(EPOCH + number * interval, REDUCERS[reduce](values)) for number, values in sorted(buckets.items())]
