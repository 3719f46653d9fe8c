"""Many entries straight into the store, built by the shot sheet's own `entry_document`: seconds for
100,000, not minutes (the grid's browser tests, benchmarks/shotsheet.py and benchmarks/api.py)."""

from datetime import UTC, datetime, timedelta

from shotsheet import store
from shotsheet.entries import entry_document
from shotsheet.models import Sheet

START = datetime(2026, 11, 1, tzinfo=UTC)


def bench_values(n: int) -> dict:
    return {"energy": (n * 7919 % 1000) / 10, "target": ("Al", "Cu", "Ti")[n % 3], "note": f"shot {n}"}


def insert_many_entries(sheet: Sheet, version_number: int, count: int, values=bench_values) -> None:
    """Entry n is `<sheet>:<n, 8 digits>`, shot n of 2026-11-01, written one a second from START."""
    for first in range(0, count, 5000):
        store.insert_entries(
            [
                entry_document(
                    sheet,
                    version_number,
                    values(n),
                    author="bench",
                    shot_key=None,
                    comment="",
                    created=START + timedelta(seconds=n),
                    entry_id=f"{sheet.slug}:{n:08d}",
                    shot={
                        "shot_key": f"{sheet.experiment}-20261101-{n:06d}",
                        "shot_number": n,
                        "laser_ts_ns": None,
                    },
                )
                for n in range(first, min(first + 5000, count))
            ]
        )
