"""Shot-sheet pages, export and save→visible latency against the running MongoDB and Redis.

    .venv/bin/python benchmarks/shotsheet.py [--quick]

With N entries in one sheet (100,000; --quick: 10,000): the first table page, a filtered and
sorted page, an export of 10,000 rows, each beside the bare pymongo query it needs (the
baseline); then save → visible in a second websocket client, p50/p99 over 200 saves, beside a
bare channel-layer round trip. The last line is one JSON object.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ["DATABASE_URL"] = f"sqlite:///{Path('/tmp') / f'labbook-bench-sheet-{os.getpid()}.sqlite3'}"

warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's, once per import of the layer

import django  # noqa: E402

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from core import mongo  # noqa: E402
from shotsheet import schema, store, table  # noqa: E402
from shotsheet.entries import create_entry  # noqa: E402
from shotsheet.export import export_rows  # noqa: E402
from shotsheet.models import Field, Sheet  # noqa: E402
from shotsheet.query import table_query  # noqa: E402


def timed(function, repeat: int = 3) -> float:
    """Best of `repeat`, in ms."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def pct(values, p):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 1)


def make_bench_sheet(count: int) -> tuple[Sheet, object]:
    """The sheet `bench` with `count` entries, one a second from 2026-11-01 (benchmarks/api.py reads it too)."""
    sheet = Sheet.objects.create(name="Bench", slug="bench", experiment="BEN")
    Field.objects.create(sheet=sheet, key="energy", label="Energy", type=Field.Type.FLOAT, unit="J")
    Field.objects.create(sheet=sheet, key="target", label="Target", type=Field.Type.CHOICE, choices="Al\nCu\nTi")
    Field.objects.create(sheet=sheet, key="note", label="Note", type=Field.Type.TEXT)
    version = schema.save_version(sheet)
    store.ensure_indexes()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    print(f"inserting {count} entries…", flush=True)
    for first in range(0, count, 5000):
        store.insert_entries(
            [
                {
                    "_id": f"bench:{n:08d}",
                    "sheet": "bench",
                    "experiment": "BEN",
                    "schema_version": version.number,
                    "values": {
                        "energy": (n * 7919 % 1000) / 10,
                        "target": ("Al", "Cu", "Ti")[n % 3],
                        "note": f"shot {n}",
                    },
                    "shot_key": f"BEN-20261101-{n:06d}",
                    "shot_number": n,
                    "author": "bench",
                    "created": start + timedelta(seconds=n),
                    "updated": start,
                    "comment": "",
                    "rev": 1,
                    "history": [],
                }
                for n in range(first, min(first + 5000, count))
            ]
        )
    return sheet, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    call_command("migrate", verbosity=0)
    settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
    figures: dict = {"entries": count}
    try:
        sheet, version = make_bench_sheet(count)

        user = get_user_model().objects.create_superuser("bench", password="bench-pass-123")
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        entries = mongo.database()[store.ENTRIES]

        def page(params):
            response = client.get("/sheets/bench/", params)
            assert response.status_code == 200, (response.status_code, response.content[:300])

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures["table_cold_load_ms"] = timed(lambda: table.table("bench"), repeat=1)
        figures["table_peak_rss_growth_mb"] = round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1
        )
        figures["first_page_ms"] = timed(lambda: page({}))
        figures["first_page_bare_query_ms"] = timed(
            lambda: (
                entries.count_documents({"sheet": "bench"}),
                list(entries.find({"sheet": "bench"}).sort("created", -1).limit(50)),
            )
        )

        def page_after_a_save():
            create_entry(sheet, version, {"energy": 5.0, "target": "Ti", "note": "new"}, author="bench", shot_key=None)
            started = time.perf_counter()
            page({})
            return (time.perf_counter() - started) * 1000

        figures["first_page_after_a_save_ms"] = round(max(page_after_a_save() for _ in range(5)), 1)
        filtered = {"f_target": "Cu", "f_energy_min": "20", "f_energy_max": "60", "sort": "-energy"}
        figures["filtered_sorted_page_ms"] = timed(lambda: page(filtered))
        query = {"sheet": "bench", "values.target": "Cu", "values.energy": {"$gte": 20.0, "$lte": 60.0}}
        figures["filtered_sorted_bare_query_ms"] = timed(
            lambda: (entries.count_documents(query), list(entries.find(query).sort("values.energy", -1).limit(50)))
        )
        export_filter = {"f_energy_max": str(10_000 / count * 100 - 0.05)} if not args.quick else {}
        sheet_schema = schema.schema_for(sheet)
        figures["export_rows"] = len(
            export_rows(sheet_schema, *table_query(sheet_schema, export_filter)[:2], limit=10_000)[1]
        )
        figures["export_10k_csv_ms"] = timed(
            lambda: client.get("/sheets/bench/export.csv", export_filter).content, repeat=1
        )
        figures["export_10k_bare_query_ms"] = timed(
            lambda: list(entries.find({"sheet": "bench"}).limit(10_000)), repeat=1
        )
        print(
            f"table read into memory once per process: {figures['table_cold_load_ms']} ms, "
            f"peak RSS +{figures['table_peak_rss_growth_mb']} MB",
            flush=True,
        )
        print(
            f"first page {figures['first_page_ms']} ms (bare query {figures['first_page_bare_query_ms']} ms), "
            f"worst of 5 just after a save {figures['first_page_after_a_save_ms']} ms; "
            f"filtered+sorted page {figures['filtered_sorted_page_ms']} ms (bare "
            f"{figures['filtered_sorted_bare_query_ms']} ms); export of {figures['export_rows']} rows "
            f"{figures['export_10k_csv_ms']} ms (bare {figures['export_10k_bare_query_ms']} ms); target pages < 300 ms",
            flush=True,
        )

        async def save_to_visible(saves: int = 200):
            from labbook.asgi import application

            communicator = WebsocketCommunicator(
                application,
                "/ws/sheets/bench/",
                headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
            )
            communicator.scope["user"] = user
            assert (await communicator.connect())[0]
            latencies, bare = [], []
            for _ in range(saves):
                started = time.perf_counter()
                await sync_to_async(create_entry)(
                    sheet, version, {"energy": 1.0, "target": "Al", "note": ""}, author="bench", shot_key=None
                )
                while (await communicator.receive_json_from(timeout=5))["type"] != "entry":
                    pass
                latencies.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await get_channel_layer().group_send("sheet.bench", {"type": "entry.changed", "entry": {}})
                await communicator.receive_json_from(timeout=5)
                bare.append((time.perf_counter() - started) * 1000)
            await communicator.disconnect()
            return latencies, bare

        latencies, bare = asyncio.run(save_to_visible())
        figures.update(
            {
                "save_visible_p50_ms": pct(latencies, 50),
                "save_visible_p99_ms": pct(latencies, 99),
                "bare_layer_p50_ms": pct(bare, 50),
                "bare_layer_p99_ms": pct(bare, 99),
            }
        )
        print(
            f"save → visible in a second client over 200 saves: p50 {figures['save_visible_p50_ms']} ms, "
            f"p99 {figures['save_visible_p99_ms']} ms (bare channel layer p50 {figures['bare_layer_p50_ms']} ms, "
            f"p99 {figures['bare_layer_p99_ms']} ms); target p99 < 500 ms",
            flush=True,
        )
    finally:
        mongo.drop_databases()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
