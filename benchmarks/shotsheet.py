"""Shot-sheet pages, export and save→visible latency against the running MongoDB and Redis.

    .venv/bin/python benchmarks/shotsheet.py [--quick]

With N entries in one sheet (100,000; --quick: 10,000): the first table page, a filtered and
sorted page, an export of 10,000 rows, each beside the bare pymongo query it needs (the
baseline); then save → visible in a second websocket client, p50/p99 over 200 saves, beside a
bare channel-layer round trip; then the grid in headless Chromium (daphne on a free port): first
rows painted, all rows in the grid and End to the last row, beside the bare fetch of the same rows
(--no-browser skips it). The last line is one JSON object.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ["DATABASE_URL"] = f"sqlite:///{Path('/tmp') / f'labbook-bench-sheet-{os.getpid()}.sqlite3'}"

warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's, once per import of the layer

import bench_common  # noqa: E402
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
from tests.shotsheet.bulk import insert_many_entries  # noqa: E402


def timed(function, repeat: int = 3) -> float:
    """Best of 3 here (a page of 100,000 entries takes long enough to be steady)."""
    return bench_common.timed(function, repeat)


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
    print(f"inserting {count} entries…", flush=True)
    insert_many_entries(sheet, version.number, count)
    return sheet, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-browser", action="store_true", help="skip the grid in Chromium")
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
        if not args.no_browser:
            figures.update(grid_in_the_browser(count))
            print(
                f"grid in Chromium: first rows painted {figures['grid_first_rows_ms']} ms after navigation "
                f"(bare fetch of those 100 rows {figures['grid_first_rows_bare_fetch_ms']} ms), all {count} rows "
                f"in the grid {figures['grid_all_rows_ms']} ms (bare fetch+parse of them "
                f"{figures['grid_all_rows_bare_fetch_ms']} ms, {figures['grid_json_mb']} MB); scroll to the last row "
                f"{figures['grid_scroll_to_last_ms']} ms; targets < 500 ms and < 300 ms",
                flush=True,
            )
    finally:
        mongo.drop_databases()
    print(json.dumps(figures))


# In the page: the time End takes to select the last row and draw it (two frames: painted).
SCROLL_TO_LAST = """async (lastId) => {
  const grid = document.getElementById("grid");
  grid.focus();
  const started = performance.now();
  grid.dispatchEvent(new KeyboardEvent("keydown", {key: "End", bubbles: true}));
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const row = grid.querySelector(`.tabulator-row[data-entry="${lastId}"]`);
  if (!row || !row.classList.contains("tabulator-selected")) throw new Error("the last row is not drawn");
  return performance.now() - started;
}"""
BARE_FETCH = """async (url) => {
  const started = performance.now();
  const response = await fetch(url);
  const text = await response.text();
  JSON.parse(text);
  return [performance.now() - started, text.length];
}"""


def grid_in_the_browser(count: int, runs: int = 3) -> dict:
    """The sheet's page in headless Chromium against daphne: first rows painted, every row in the
    grid, End to the last row; beside the bare fetch (and JSON parse) of the same rows."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MONGODB_DB": settings.MONGODB_DB, "DJANGO_DEBUG": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "labbook.asgi:application"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(180_000)
            for _ in range(300):  # daphne starting
                try:
                    page.goto(f"{base}/accounts/login/")
                    break
                except Exception:
                    time.sleep(0.2)
            page.fill("#id_username", "bench")
            page.fill("#id_password", "bench-pass-123")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/sheets/")
            page.goto(f"{base}/sheets/bench/")  # the server reads the sheet once (table_cold_load_ms)
            page.wait_for_selector("#grid[data-loaded]")
            last_id = page.evaluate("Tabulator.findTable('#grid')[0].getRows('active').at(-1).getData().id")
            first, loaded, scroll, bare_first, bare_all = [], [], [], [], []
            for _ in range(runs):
                page.goto(f"{base}/sheets/bench/")
                page.wait_for_selector("#grid[data-loaded]")
                first.append(float(page.get_attribute("#grid", "data-first-rows-ms")))
                loaded.append(float(page.get_attribute("#grid", "data-loaded")))
                page.wait_for_timeout(300)
                scroll.append(page.evaluate(SCROLL_TO_LAST, last_id))
                bare_first.append(page.evaluate(BARE_FETCH, f"{base}/sheets/bench/grid.json?limit=100")[0])
                ms, size = page.evaluate(BARE_FETCH, f"{base}/sheets/bench/grid.json")
                bare_all.append(ms)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    best = lambda values: round(min(values), 1)  # noqa: E731
    return {
        "grid_first_rows_ms": best(first),
        "grid_first_rows_bare_fetch_ms": best(bare_first),
        "grid_all_rows_ms": best(loaded),
        "grid_all_rows_bare_fetch_ms": best(bare_all),
        "grid_json_mb": round(size / 1e6, 1),
        "grid_scroll_to_last_ms": best(scroll),
    }


if __name__ == "__main__":
    main()
