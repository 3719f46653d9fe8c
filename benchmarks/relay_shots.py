"""What recording a shot costs the relay's status thread, before and after the time and number
indexes, and what finding shots by time and number costs, beside reading the whole collection.

    .venv/bin/python benchmarks/relay_shots.py [--quick]

The relay records the shots of each half second in one round (`relay.store.record_shots`, from
its status thread, off the shots' path). Measured: rounds of 5 shots (10 Hz) and of 1,000 (the
most a round records, 2 kHz), each (a) as before the indexes (key, number, laser time, event id,
source; one insert_many) and (b) as now (the whole envelope, the minute slots, the hour and the
run's bounds). Then, on the N shots recorded, pages of 100 through `relay.selectors.shots` beside
the scan a query without the indexes needs (FerretDB reads the whole collection for any filter).
The last line is one JSON object.
"""

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from pymongo.errors import BulkWriteError  # noqa: E402

from core import mongo  # noqa: E402
from core.envelope import make_envelope  # noqa: E402
from relay import selectors, store  # noqa: E402
from relay.selectors import ShotQuery  # noqa: E402

START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def envelopes(count: int, first: int = 1) -> list[dict]:
    """Shots at 10 Hz from START, as the relay makes them."""
    start_ns = int(START.timestamp()) * 10**9
    return [
        make_envelope(
            experiment="BENCH",
            source="laser",
            kind="shot",
            shot_number=n,
            laser_ts_ns=start_ns + n * 100_000_000,
            tz=settings.TIME_ZONE,
            seq=n,
            values={"energy_J": 10.12, "pulse_fs": 29.8, "mode": "single"},
            metadata={},
        )
        for n in range(first, first + count)
    ]


def record_as_before(shots: list[dict]) -> None:
    """What `record_shots` wrote before the indexes."""
    documents = [{"_id": e["shot_key"], **{name: e.get(name) for name in store.SHOT_FIELDS}} for e in shots]
    try:
        mongo.database()[store.SHOTS].insert_many(documents, ordered=False)
    except BulkWriteError:
        pass


def per_shot_us(record, shots: list[dict], per_round: int) -> float:
    state = store.ShotIndexState()
    started = time.perf_counter()
    for i in range(0, len(shots), per_round):
        if record is store.record_shots:
            record(shots[i : i + per_round], state)
        else:
            record(shots[i : i + per_round])
    return round((time.perf_counter() - started) / len(shots) * 1e6, 1)


def fresh_database() -> None:
    mongo.drop_databases()
    settings.MONGODB_DB = f"labbook_bench_shots_{uuid.uuid4().hex[:8]}"


def timed_ms(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return round((time.perf_counter() - started) * 1000, 1), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 shots instead of 100,000")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    figures: dict = {"shots": count}
    try:
        for per_round, label in ((5, "10hz"), (1000, "2khz")):
            sample = envelopes(min(count, 5_000 if per_round == 5 else 20_000))
            for name, record in (("before", record_as_before), ("now", store.record_shots)):
                fresh_database()
                figures[f"record_{label}_{name}_us_per_shot"] = per_shot_us(record, sample, per_round)
            print(
                f"recording, rounds of {per_round}: before {figures[f'record_{label}_before_us_per_shot']} µs a shot, "
                f"now {figures[f'record_{label}_now_us_per_shot']} µs a shot",
                flush=True,
            )
        fresh_database()
        shots = envelopes(count)
        state = store.ShotIndexState()
        for i in range(0, count, 1000):
            store.record_shots(shots[i : i + 1000], state)
        middle = shots[count // 2]
        middle_time = datetime.fromtimestamp(middle["laser_ts_ns"] / 1e9, UTC)
        cases = {
            "newest_100": ShotQuery(),
            "one_minute_at_the_middle": ShotQuery(since=middle_time, until=middle_time + timedelta(minutes=1)),
            "numbers_100_at_the_middle": ShotQuery(
                number_min=middle["shot_number"], number_max=middle["shot_number"] + 99, experiment="BENCH"
            ),
            "oldest_minute": ShotQuery(since=START, until=START + timedelta(minutes=1)),
        }
        for name, query in cases.items():
            ms, page = timed_ms(lambda q=query: selectors.shots(q))
            figures[f"{name}_ms"], figures[f"{name}_found"], figures[f"{name}_lookups"] = (
                ms,
                len(page.shots),
                page.lookups,
            )
            print(f"{name}: {ms} ms, {len(page.shots)} shots, {page.lookups} look-ups", flush=True)
        low, high = middle["laser_ts_ns"], middle["laser_ts_ns"] + 60 * 10**9
        ms, found = timed_ms(
            lambda: list(
                mongo.database()[store.SHOTS].find({"laser_ts_ns": {"$gte": low, "$lt": high}}).sort("laser_ts_ns", -1)
            )
        )
        figures["scan_one_minute_ms"] = ms
        print(f"the same minute by a filtered find (what the server does without the indexes): {ms} ms", flush=True)
    finally:
        mongo.drop_databases()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
