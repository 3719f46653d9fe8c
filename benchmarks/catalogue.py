"""SciCat registration rate against the tests' local SciCat, beside the bare HTTP POST rate of the
same client in the same run, and the outbox's own cost per job.

    .venv/bin/python benchmarks/catalogue.py [--entries N] [--validate]

(a) bare: `catalogue.scicat.Client.create_dataset` of N ready bodies, one after another (the
ceiling: one POST per dataset, nothing else); (b) `catalogue_sync`'s work (`Sync.run_once`) on N
new entries: the scan of the change log (a read of each change and each entry), the outbox, the
body built and checked with scitacean's models, the POST, the records and job removals (one
write per batch). The scan's share is measured again on its own. The server
does not check bodies against the OpenAPI schemas unless --validate (that would cost it ~1 ms a
request in both runs and hide our own cost). The last line is one JSON object.
"""

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ["DATABASE_URL"] = f"sqlite:///{Path('/tmp') / f'labbook-bench-catalogue-{os.getpid()}.sqlite3'}"
os.environ["SCICAT_USERNAME"], os.environ["SCICAT_PASSWORD"] = "ingestor", "secret"
os.environ["CATALOGUE_SETTLE_SECONDS"] = "0"  # a backlog: every entry is due at once

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from catalogue import store  # noqa: E402
from catalogue.models import Rule  # noqa: E402
from catalogue.scicat import Client  # noqa: E402
from catalogue.services import Sync, plan_for, scan  # noqa: E402
from core import mongo  # noqa: E402
from shotsheet import schema  # noqa: E402
from shotsheet.entries import create_entry  # noqa: E402
from tests.catalogue.conftest import make_server, make_sheet  # noqa: E402
from tests.catalogue.fake_scicat import FakeScicat  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print where the sync's time goes")
    parser.add_argument("--validate", action="store_true", help="the server checks each body (OpenAPI)")
    options = parser.parse_args()
    n = options.entries
    call_command("migrate", verbosity=0)
    settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
    scicat = FakeScicat().start()
    scicat.state.validate = options.validate
    try:
        sheet = make_sheet(f"bench{uuid.uuid4().hex[:6]}")
        rule = Rule.objects.create(sheet=sheet, server=make_server(scicat.url))
        version = schema.save_version(sheet)
        print(f"making {n} entries …", flush=True)
        entries = [
            create_entry(
                sheet, version, {"energy": 1.0 + i, "target": "Al", "note": f"n{i}"}, author="b", shot_key=None
            )
            for i in range(n)
        ]

        # (a) the bare POST rate of the same client: bodies built beforehand, other pids
        bodies = []
        for entry in entries:
            body = plan_for(rule, entry).dataset
            bodies.append({**body, "pid": f"bare/{uuid.uuid4()}"})
        client = Client(scicat.url, username="ingestor", password="secret")
        client.login()
        started = time.perf_counter()
        for body in bodies:
            client.create_dataset(body)
        bare = time.perf_counter() - started
        client.close()

        # (b) the sync as catalogue_sync runs it: the scan of the change log (which reads each
        # entry once and hands it over), the outbox, build + check, POST, bookkeeping per batch
        sync = Sync(batch_size=100)
        profiler = cProfile.Profile() if options.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        sync.run_once()
        synced = time.perf_counter() - started
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        sync.close()
        # the scan alone, on a second sheet of the same entries' size (nothing sent)
        started = time.perf_counter()
        store.save_scan_position(sheet.slug, 0, None)
        scan({sheet.slug: rule})
        scanned = time.perf_counter() - started
        assert sync.stats.created == n and store.counts()["registered"] == n, store.counts()

        # the outbox alone: enqueue, read due, remove (no HTTP, no build)
        fake = [(f"bench-outbox-{i}", 1) for i in range(n)]
        started = time.perf_counter()
        store.enqueue("bench-outbox", fake)
        jobs = []
        while len(jobs) < n:
            batch = store.due_jobs(100)
            store.jobs_done(batch)
            jobs += batch
        outbox = time.perf_counter() - started
    finally:
        scicat.stop()
        mongo.drop_databases()

    result = {
        "entries": n,
        "server_validates": options.validate,
        "bare_posts_per_s": round(n / bare, 1),
        "registered_per_s": round(n / synced, 1),
        "ratio": round(bare / synced, 2),
        "scan_us_per_entry": round(scanned / n * 1e6),
        "sync_overhead_us_per_job": round((synced - bare) / n * 1e6),
        "outbox_us_per_job": round(outbox / n * 1e6),
    }
    print(
        f"bare POST {result['bare_posts_per_s']}/s, registered {result['registered_per_s']}/s "
        f"(= {result['ratio']}× bare; target ≥ 0.5×), of which the scan {result['scan_us_per_entry']} µs/entry, "
        f"sync overhead {result['sync_overhead_us_per_job']} µs/job, outbox alone "
        f"(enqueue + due + done) {result['outbox_us_per_job']} µs/job"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
