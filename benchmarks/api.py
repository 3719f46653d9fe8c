"""The read API over HTTP beside the same data through the internal function call, same run.

    .venv/bin/python benchmarks/api.py [--quick]

On the 100,000-entry sheet of benchmarks/shotsheet.py (--quick: 10,000): a 1,000-row JSON page
(newest first, then the next page by its cursor, then a filtered and sorted one), a 10,000-row
CSV and the shot join (`/api/v1/shots/<key>/`), each requested from a real server process
(daphne serving labbook.asgi, over loopback HTTP with keep-alive, a bearer token) and
in-process through Django's test client, beside the internal call that gives the same data
(`shotsheet.selectors.entries`, the table's read model: Python objects, no serialisation; for
the shot join its three selector calls) and beside that call with its rows rendered in-process
by the API's own builders and renderers (no HTTP, no DRF), and the web export's own CSV of the
same 10,000 rows, and the floor of any CSV of them (the csv module writing the rows with their
cells already converted). Target: HTTP ≤ 2× the internal call, a 1,000-row page < 300 ms.
Best of 9 each (the machine is shared: the best is the least disturbed). The last line is one JSON object.
"""

import argparse
import csv
import http.client
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
DATABASE_URL = f"sqlite:///{Path('/tmp') / f'labbook-bench-api-{os.getpid()}.sqlite3'}"
os.environ["DATABASE_URL"] = DATABASE_URL

warnings.simplefilter("ignore", DeprecationWarning)

import django  # noqa: E402
from bench_common import free_port, timed  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from api import sheets, tokens  # noqa: E402
from api import shots as api_shots  # noqa: E402
from api.pagination import Page  # noqa: E402
from api.renderers import CSVRenderer, JSONRenderer, csv_value  # noqa: E402
from core import mongo  # noqa: E402
from core.envelope import make_envelope  # noqa: E402
from core.times import from_ns  # noqa: E402
from relay import selectors as relay_selectors  # noqa: E402
from relay import store as relay_store  # noqa: E402
from shotsheet import selectors, table  # noqa: E402
from shotsheet.export import export_rows, to_csv  # noqa: E402
from shotsheet.query import table_query  # noqa: E402
from watcher import selectors as watcher_selectors  # noqa: E402
from watcher import store as watcher_store  # noqa: E402
from watcher.models import Route  # noqa: E402


def shotsheet_benchmark():
    """benchmarks/shotsheet.py (its name would shadow the app), for its sheet of N entries."""
    spec = importlib.util.spec_from_file_location("bench_shotsheet", ROOT / "benchmarks" / "shotsheet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """daphne serving labbook.asgi in a process of its own, on this run's databases."""

    def __init__(self, token: str):
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": DATABASE_URL,
            "MONGODB_DB": settings.MONGODB_DB,
            "API_REQUESTS_PER_MINUTE": "1000000",
            # as in production: debug off (plain HTTP on loopback here, so no HTTPS redirect)
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "benchmark-only-" + uuid.uuid4().hex,
            "DJANGO_SECURE_HTTPS": "0",
            "LABBOOK_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "labbook.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
        self.connection = None
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.get("/api/v1/sheets/")[0] == 200:
                    break
            except OSError:
                self.connection = None
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("daphne did not answer")
            time.sleep(0.3)

    def get(self, path: str, params: dict | None = None, accept: str = "application/json") -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        url = f"{path}?{urlencode(params)}" if params else path
        self.connection.request("GET", url, headers={**self.headers, "Accept": accept})
        response = self.connection.getresponse()
        return response.status, response.read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def shot_join(figures: dict, server: Server, client: Client, user, count: int) -> None:
    """GET /api/v1/shots/<key>/ beside the three selector calls it makes (relay record, the entries
    the user may view, every ingested event), and beside those rendered in-process: for a shot in
    the middle of the sheet, among 10,000 relay records and 20,000 events of 2,000 shots in two
    routed collections (ten events a shot), stored and indexed by the watcher's own functions."""
    day = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # BEN-20261101-… in the lab's zone
    middle = count // 2
    numbers = range(max(1, middle - 5_000), middle + 5_000)
    envelopes = {
        n: make_envelope(
            experiment="BEN",
            source="laser",
            kind="shot",
            shot_number=n,
            laser_ts_ns=int(day.timestamp()) * 10**9 + n * 100_000_000,
            tz=settings.TIME_ZONE,
            seq=n,
            values={"energy_J": 1.0, "pulse_fs": 30.0},
        )
        for n in numbers
    }
    state = relay_store.ShotIndexState()
    shots = list(envelopes.values())
    for i in range(0, len(shots), 1000):
        relay_store.record_shots(shots[i : i + 1000], state)
    for collection in ("bench_diag", "bench_camera"):
        Route.objects.create(name=collection.replace("_", "-"), topic=f"bench.{collection}", collection=collection)
        watcher_store.prepare_collection(collection, False)
        documents = []
        for n in range(middle - 1_000, middle + 1_000):
            for i in range(5):
                event = make_envelope(
                    experiment="BEN",
                    source=collection,
                    kind="measurement",
                    shot_number=n,
                    laser_ts_ns=envelopes[n]["laser_ts_ns"] + i * 1_000_000,
                    tz=settings.TIME_ZONE,
                    seq=i,
                    values={"charge_pC": i},
                )
                documents.append({**event, "_id": event["event_id"], "_ts": from_ns(event["laser_ts_ns"])})
        for i in range(0, len(documents), 2000):
            batch = documents[i : i + 2000]
            watcher_store.insert_idempotent(collection, batch)
            watcher_store.index_shots({collection: batch}, {})
            watcher_store.index_times({collection: batch}, {}, set())
    key = envelopes[middle]["shot_key"]
    path = f"/api/v1/shots/{key}/"

    def internal():
        return (
            relay_selectors.shot_record(key),
            selectors.entries_for_shot(user, key),
            watcher_selectors.events_for_shot(key, settings.API_SHOT_JOIN_MAX_EVENTS + 1),
        )

    def internal_rendered() -> bytes:
        record, found, events = internal()
        joined = api_shots.shot_join_json(
            key, record, found, settings.API_SHOT_JOIN_MAX_ENTRIES, events, settings.API_SHOT_JOIN_MAX_EVENTS
        )
        return JSONRenderer().render(joined)

    record, found, events = internal()
    assert record and len(found) == 1 and len(events) == 10, (record, found, len(events))
    status, body = server.get(path)
    assert status == 200 and len(json.loads(body)["events"]["results"]) == 10, (status, body[:300])
    figures["shot_join_internal_ms"] = timed(internal)
    figures["shot_join_internal_rendered_ms"] = timed(internal_rendered)
    figures["shot_join_http_ms"] = timed(lambda: server.get(path))
    figures["shot_join_test_client_ms"] = timed(lambda: client.get(path))
    figures["shot_join_http_over_internal"] = round(figures["shot_join_http_ms"] / figures["shot_join_internal_ms"], 1)
    figures["shot_join_bytes"] = len(body)
    print(
        f"shot join (1 relay record, 1 entry of {count:,}, 10 events of 20,000): "
        f"HTTP {figures['shot_join_http_ms']} ms, "
        f"test client {figures['shot_join_test_client_ms']} ms, internal calls {figures['shot_join_internal_ms']} ms, "
        f"rendered in-process {figures['shot_join_internal_rendered_ms']} ms "
        f"(HTTP/internal {figures['shot_join_http_over_internal']}×, {figures['shot_join_bytes']:,} bytes)",
        flush=True,
    )


def csv_floor(figures: dict, schema) -> None:
    """What writing 10,000 rows of CSV costs at least: the csv module writing the API's rows with
    every cell already as it is written (no entries read, no value converted), beside the HTTP
    figure, the bare internal call plus that floor, and the web export's CSV of the same rows."""
    page = Page(selectors.entries(schema, {}).entries[:10_000], 10_000, None)
    table_ = sheets.entries_table(page, schema.columns)
    cells = [[csv_value(value) for value in row] for row in zip(*table_.columns)]
    assert len(cells) == 10_000, len(cells)

    def write() -> bytes:
        out = io.StringIO()
        csv.writer(out).writerows(cells)
        return out.getvalue().encode()

    figures["csv_10000_floor_ms"] = timed(write)
    floor = figures["csv_10000_internal_ms"] + figures["csv_10000_floor_ms"]
    figures["csv_10000_internal_plus_floor_ms"] = round(floor, 1)
    figures["csv_10000_http_over_internal_plus_floor"] = round(figures["csv_10000_http_ms"] / floor, 1)
    web_export = figures["csv_10000_web_export_internal_ms"]
    figures["csv_10000_http_over_web_export"] = round(figures["csv_10000_http_ms"] / web_export, 2)
    figures["csv_10000_rendered_over_web_export"] = round(figures["csv_10000_internal_rendered_ms"] / web_export, 2)
    print(
        f"CSV floor (the csv module writing the 10,000 rows, cells already converted): "
        f"{figures['csv_10000_floor_ms']} ms; internal call + floor {figures['csv_10000_internal_plus_floor_ms']} ms "
        f"(HTTP ÷ that {figures['csv_10000_http_over_internal_plus_floor']}×); "
        f"HTTP ÷ the web export's CSV {figures['csv_10000_http_over_web_export']}×, "
        f"API rendered in-process ÷ web export {figures['csv_10000_rendered_over_web_export']}×",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    call_command("migrate", verbosity=0)
    settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
    figures: dict = {
        "entries": count,
        "server": "daphne (a process of its own, debug off), HTTP/1.1 keep-alive on loopback",
        "load_average_at_start": os.getloadavg()[0],
    }
    server = None
    try:
        sheet, _ = shotsheet_benchmark().make_bench_sheet(count)
        user = get_user_model().objects.create_superuser("bench", password="bench-pass-123")
        _, token = tokens.create_token(user, "benchmark")
        started = time.perf_counter()
        table.table("bench")
        figures["table_cold_load_ms"] = round((time.perf_counter() - started) * 1000)
        server = Server(token)
        status, _ = server.get("/api/v1/sheets/bench/entries/", {"page_size": 1})  # the server reads its table
        assert status == 200, status
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
        url = "/api/v1/sheets/bench/entries/"

        def internal(params: dict, rows: int):
            schema = selectors.sheet_schema(sheet)
            return selectors.entries(schema, params).entries[:rows]

        def internal_rendered(params: dict, rows: int, csv: bool) -> bytes:
            """The same call, its rows rendered in-process as the API renders them (no HTTP, no DRF)."""
            schema = selectors.sheet_schema(sheet)
            page = Page(selectors.entries(schema, params).entries[:rows], count, None)
            if csv:
                return CSVRenderer().render(sheets.entries_table(page, schema.columns))
            return JSONRenderer().render(sheets.entries_page_json(page, schema.columns))

        def over_http(params: dict, accept: str = "application/json") -> bytes:
            status, body = server.get(url, params, accept)
            assert status == 200, (status, body[:300])
            return body

        def in_process(params: dict) -> bytes:
            response = client.get(url, params)
            assert response.status_code == 200, (response.status_code, response.content[:300])
            return response.content

        filtered = {"f_target": "Cu", "f_energy_min": "20", "f_energy_max": "60", "sort": "-energy"}
        next_url = json.loads(over_http({"page_size": 1000}))["next"]
        cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
        cases = {
            "json_page_1000": ({"page_size": 1000}, 1000),
            "json_next_page_1000": ({"page_size": 1000, "cursor": cursor}, 1000),
            "json_filtered_sorted_page_1000": ({**filtered, "page_size": 1000}, 1000),
            "csv_10000": ({"page_size": 10_000, "format": "csv"}, 10_000),
        }
        for name, (params, rows) in cases.items():
            internal_params = {k: v for k, v in params.items() if k in filtered}
            figures[f"{name}_internal_ms"] = timed(lambda p=internal_params, r=rows: internal(p, r))
            figures[f"{name}_internal_rendered_ms"] = timed(
                lambda p=internal_params, r=rows, c=name.startswith("csv"): internal_rendered(p, r, c)
            )
            figures[f"{name}_http_ms"] = timed(lambda p=params: over_http(p))
            figures[f"{name}_test_client_ms"] = timed(lambda p=params: in_process(p))
            for baseline in ("internal", "internal_rendered"):
                figures[f"{name}_http_over_{baseline}"] = round(
                    figures[f"{name}_http_ms"] / max(figures[f"{name}_{baseline}_ms"], 0.1), 1
                )
            figures[f"{name}_bytes"] = len(over_http(params))
            print(
                f"{name}: HTTP {figures[f'{name}_http_ms']} ms, test client {figures[f'{name}_test_client_ms']} ms, "
                f"internal call {figures[f'{name}_internal_ms']} ms, rendered in-process "
                f"{figures[f'{name}_internal_rendered_ms']} ms (HTTP/internal "
                f"{figures[f'{name}_http_over_internal']}×, "
                f"/rendered {figures[f'{name}_http_over_internal_rendered']}×, "
                f"{figures[f'{name}_bytes']:,} bytes)",
                flush=True,
            )
        assert over_http({"page_size": 10_000}, accept="text/csv") == over_http(cases["csv_10000"][0])
        schema = selectors.sheet_schema(sheet)
        query, sort, _ = table_query(schema, {})
        figures["csv_10000_web_export_internal_ms"] = timed(
            lambda: to_csv(*export_rows(schema, query, sort, limit=10_000))
        )
        print(f"the web export's own CSV of 10,000 rows, in-process: {figures['csv_10000_web_export_internal_ms']} ms")
        csv_floor(figures, schema)
        shot_join(figures, server, client, user, count)
        print("targets: HTTP ≤ 2× the internal call, a 1,000-row page < 300 ms", flush=True)
    finally:
        if server is not None:
            server.stop()
        mongo.drop_databases()
        for suffix in ("", "-wal", "-shm"):  # SQLite in WAL mode leaves the last two beside the database
            Path(DATABASE_URL.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
