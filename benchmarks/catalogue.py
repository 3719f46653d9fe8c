"""SciCat registration rate against the tests' local SciCat, beside the bare HTTP POST rate of the
same client in the same run, and the outbox's own cost per job.

    .venv/bin/python benchmarks/catalogue.py [--entries N] [--rounds R] [--validate] [--server-in-process]
                                             [--latency-ms T]
    .venv/bin/python benchmarks/catalogue.py --backlog N [--entries N]

The local SciCat runs in a process of its own, as a real one does (`--server-in-process`: in a
thread of this one, where its Python competes with the sync for the GIL). A round, in a MongoDB
database of its own with 3 sheets of N new entries, measures in this order: (a) bare, sequential:
`catalogue.scicat.Client.create_dataset` of N ready bodies, one after another (the issue's
baseline: one POST per dataset, nothing else); (b) bare, concurrent: the same client with
CATALOGUE_CONCURRENCY threads (the ceiling of a sync with that many jobs in flight); (c)
`catalogue_sync`'s work (`Sync.run_once`) on the first sheet with CATALOGUE_CONCURRENCY = 1 (the
sequential sync); (a); (d) on the second sheet with the setting: the scan (each sheet is a new
backlog, so it is caught up in one streamed read of the sheet, handed to the sync a batch at a
time: README, Catching up), the outbox, the body built and checked with scitacean's models, the
POST, the records (one write per batch) and job removals (one a pass); (a); (e) as (d) on the
third sheet with the catch-up left off, change by change, as entries saved one at a time reach a
sync that keeps up; (a). This machine's speed drifts by 2× within seconds, so each sync run's
ratio is to the mean of the bare runs just before and after it, and each figure printed is the
median of --rounds rounds (each round's ratios are printed too). The scan's share is measured again
on its own. Each client is made and logged in, and one body checked, before the clock starts. The
server does not check bodies against the OpenAPI schemas unless --validate (that would cost it
~1 ms a request in every run and hide our own cost), and answers at once unless --latency-ms (a
real SciCat takes 10-50 ms a request). The last line is one JSON object.

The outbox alone (enqueue, find the due jobs, remove them; no HTTP, no build) is measured two ways
in the same run: as catalogue_sync works it (its in-memory schedule, catalogue/schedule.py; the
jobs done removed by `_id`, or by one `$in` from a small outbox, once a pass: `removal_due`) and
the way it did before (a query for the due jobs and a removal by `$in` per batch of 100, which
FerretDB answers by scanning the outbox). `--backlog N` measures only that,
for --entries jobs with N others queued already (a rule newly enabled on a big sheet), and the
schedule's whole read of the outbox (at the sync's start and every CATALOGUE_OUTBOX_REFRESH_SECONDS).
"""

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
CONFIGURATION = Path("/tmp") / f"labbook-bench-catalogue-{uuid.uuid4().hex[:8]}.sqlite3"  # not a pid: pids recur
os.environ["DATABASE_URL"] = f"sqlite:///{CONFIGURATION}"
os.environ["SCICAT_USERNAME"], os.environ["SCICAT_PASSWORD"] = "ingestor", "secret"
os.environ["CATALOGUE_SETTLE_SECONDS"] = "0"  # a backlog: every entry is due at once

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from catalogue import store  # noqa: E402
from catalogue.models import Rule  # noqa: E402
from catalogue.schedule import Schedule  # noqa: E402
from catalogue.scicat import Client  # noqa: E402
from catalogue.services import Sync, checked, plan_for, removal_due, scan  # noqa: E402
from core import mongo  # noqa: E402
from shotsheet import schema  # noqa: E402
from shotsheet.entries import create_entry  # noqa: E402
from tests.catalogue.conftest import make_server, make_sheet  # noqa: E402
from tests.catalogue.fake_scicat import FakeScicat  # noqa: E402


class LocalScicat:
    """The tests' SciCat in a process of its own (or in a thread of this one)."""

    def __init__(self, validate: bool, in_process: bool, delay: float):
        self.thread = self.process = None
        if in_process:
            self.thread = FakeScicat().start()
            self.thread.state.validate = validate
            self.thread.state.delay = delay
            self.url = self.thread.url
        else:
            command = [sys.executable, "-m", "tests.catalogue.fake_scicat", "--delay", str(delay)]
            command += [] if validate else ["--no-validate"]
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            self.url = self.process.stdout.readline().strip()

    def stop(self) -> None:
        if self.thread:
            self.thread.stop()
        if self.process:
            self.process.terminate()
            self.process.wait(10)


def cpu_seconds(pid: int | None) -> float:
    """A process's CPU time so far (user + system), 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ferretdb_pid() -> int | None:
    """The MongoDB-wire server's process on this machine (FerretDB, as scripts/services.py runs it)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ferretdb" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


CPU_OF = ("sync", "ferretdb", "scicat")


class CPU:
    """CPU seconds of this process ("sync"), FerretDB and the local SciCat's process over a span."""

    def __init__(self, scicat_pid: int | None):
        self.pids = {"ferretdb": ferretdb_pid(), "scicat": scicat_pid}

    def __enter__(self):
        self.started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started["sync"] = time.process_time()
        return self

    def __exit__(self, *exc):
        self.used = {name: cpu_seconds(pid) - self.started[name] for name, pid in self.pids.items()}
        self.used["sync"] = time.process_time() - self.started["sync"]


def make_entries(sheet, version, n: int) -> list[dict]:
    values = ({"energy": 1.0 + i, "target": "Al", "note": f"n{i}"} for i in range(n))
    return [create_entry(sheet, version, v, author="b", shot_key=None) for v in values]


def outbox_by_schedule(n: int) -> tuple[float, float]:
    """Seconds for n jobs enqueued, taken from the schedule in batches of 100 and removed as `Sync`
    does (`removal_due`, the rest at the pass's end); and seconds for the schedule's whole read of
    the outbox before."""
    started = time.perf_counter()
    schedule = Schedule()
    schedule.load(*store.outbox())
    read = time.perf_counter() - started
    started, done, done_ids = time.perf_counter(), 0, []
    schedule.add(store.enqueue("bench-outbox", [(f"bench-outbox-{uuid.uuid4().hex}", 1) for _ in range(n)]))
    while done < n:
        batch = schedule.take(100, store.datetime.now(store.UTC))
        done_ids += [job.id for job in batch] + [older for job in batch for older in schedule.done(job)]
        done += len(batch)
        outbox = len(schedule) + len(done_ids)
        if done == n or removal_due(len(done_ids), outbox, 100):
            store.jobs_done(done_ids, outbox_size=outbox)
            done_ids = []
    return time.perf_counter() - started, read


def outbox_by_query(n: int) -> float:
    """Seconds for n jobs enqueued, read as due and removed in batches of 100 the way the sync did
    before its schedule: a query sorted by due time, a `delete_many` by `$in` (each scans the outbox
    on FerretDB)."""
    jobs = mongo.database()[store.JOBS]
    started, done = time.perf_counter(), 0
    store.enqueue("bench-outbox", [(f"bench-outbox-{uuid.uuid4().hex}", 1) for _ in range(n)])
    while done < n:
        due = {"status": store.PENDING, "next_try": {"$lte": store.datetime.now(store.UTC)}}
        batch = [document["_id"] for document in jobs.find(due, {"_id": 1}).sort("next_try", 1).limit(100)]
        jobs.delete_many({"_id": {"$in": batch}})
        done += len(batch)
    return time.perf_counter() - started


def outbox_cost(n: int, backlog: int) -> dict:
    """Both ways over the same outbox: `backlog` jobs queued first, n more worked off each way."""
    for first in range(0, backlog, 10_000):
        queued = range(first, min(first + 10_000, backlog))
        store.enqueue("bench-backlog", [(f"bench-backlog-{i}", 1) for i in queued])
    by_query = outbox_by_query(n)
    by_schedule, read = outbox_by_schedule(n)
    return {
        "outbox_backlog": backlog,
        "outbox_us_per_job": round(by_schedule / n * 1e6),
        "outbox_by_query_us_per_job": round(by_query / n * 1e6),
        "outbox_read_ms": round(read * 1e3),
    }


def backlog_only(n: int, backlog: int) -> None:
    settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
    try:
        print(f"{backlog} jobs queued, then {n} jobs worked off each way …", flush=True)
        result = {"jobs": n, **outbox_cost(n, backlog)}
    finally:
        mongo.drop_databases()
    print(
        f"outbox with {backlog} jobs queued, per job (enqueue + due + done, batches of 100): "
        f"{result['outbox_by_query_us_per_job']} µs by query and $in, {result['outbox_us_per_job']} µs by the "
        f"schedule; its whole read {result['outbox_read_ms']} ms (at the start, then every "
        f"CATALOGUE_OUTBOX_REFRESH_SECONDS = {settings.CATALOGUE_OUTBOX_REFRESH_SECONDS:g} s)"
    )
    print(json.dumps(result))


def timed_sync(rule: Rule, concurrency: int, profile: bool) -> tuple[Sync, float, float]:
    """`Sync.run_once` with this many threads: (the sync, wall seconds, this process's CPU seconds)."""
    settings.CATALOGUE_CONCURRENCY = concurrency
    sync = Sync()
    sync.client(rule.server).login()  # made and logged in beforehand, as the bare runs' client
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    sync.run_once()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    sync.close()
    return sync, wall, cpu


def bare_rate(client: Client, bodies: list[dict]) -> float:
    """POSTs a second of `client.create_dataset`, one after another, of these bodies under new pids."""
    fresh = [{**body, "pid": f"bare/{uuid.uuid4()}"} for body in bodies]
    started = time.perf_counter()
    for body in fresh:
        client.create_dataset(body)
    return len(fresh) / (time.perf_counter() - started)


def sync_rate(rule: Rule, n: int, concurrency: int, profile: bool = False) -> tuple[float, Sync, float]:
    """`Sync.run_once` over the rule's sheet (its n entries new): (registrations a second, the sync,
    this process's CPU seconds)."""
    Rule.objects.filter(pk=rule.pk).update(enabled=True)
    sync, wall, cpu = timed_sync(rule, concurrency, profile)
    Rule.objects.filter(pk=rule.pk).update(enabled=False)
    assert sync.stats.created == n, sync.stats
    return n / wall, sync, cpu


def one_round(n: int, concurrency: int, server, scicat: LocalScicat, profile: bool) -> dict:
    """Bare, sync, bare, sync, …: each sync run between two bare runs (this machine's speed drifts
    within seconds), in a MongoDB database of its own, so that every round's sheets share their
    collections with the same number of entries (FerretDB reads a sheet by scanning them all)."""
    sheets = [make_sheet(f"bench{uuid.uuid4().hex[:6]}") for _ in range(3)]
    rules = [Rule.objects.create(sheet=sheet, server=server, enabled=False) for sheet in sheets]
    entries = [make_entries(sheet, schema.save_version(sheet), n) for sheet in sheets]
    plans = [plan_for(rules[0], entry) for entry in entries[0]]  # the bare runs' bodies: built beforehand
    checked(plans[0], server.api_version)  # its first call loads what it needs, once a process
    bodies = [plan.dataset for plan in plans]
    client = Client(scicat.url, username="ingestor", password="secret")
    client.login()
    scicat_pid = scicat.process.pid if scicat.process else None
    figures: dict = {}
    try:
        with CPU(scicat_pid) as bare_cpu:
            bare = [bare_rate(client, bodies)]
        with ThreadPoolExecutor(concurrency) as pool:  # the concurrent bare: the ceiling of jobs in flight
            fresh = [{**body, "pid": f"bare/{uuid.uuid4()}"} for body in bodies]
            started = time.perf_counter()
            list(pool.map(client.create_dataset, fresh))
            figures["bare_concurrent"] = n / (time.perf_counter() - started)
        # (c) sequential, (d) the setting, both caught up (each sheet is a new backlog)
        with CPU(scicat_pid) as sequential_cpu:
            figures["sequential"] = sync_rate(rules[0], n, 1)[0]
        bare.append(bare_rate(client, bodies))
        figures["setting"], sync, figures["cpu"] = sync_rate(rules[1], n, concurrency, profile)
        figures["width"] = sync.width
        bare.append(bare_rate(client, bodies))
        # (e) the setting, change by change: the catch-up left off, as for entries saved one at a
        # time while the sync keeps up (each change and its entry read by _id)
        settings.CATALOGUE_CATCH_UP_CHANGES, catch_up = 10 * n, settings.CATALOGUE_CATCH_UP_CHANGES
        figures["change_by_change"] = sync_rate(rules[2], n, concurrency)[0]
        settings.CATALOGUE_CATCH_UP_CHANGES = catch_up
        bare.append(bare_rate(client, bodies))
        assert store.counts()["registered"] == 3 * n, store.counts()
    finally:
        client.close()
    figures["bare"] = bare
    for run, neighbours in (("sequential", bare[0:2]), ("setting", bare[1:3]), ("change_by_change", bare[2:4])):
        figures[f"ratio_{run}"] = figures[run] / statistics.mean(neighbours)
    figures["ratio_to_concurrent_bare"] = figures["setting"] / figures["bare_concurrent"]
    figures["cpu_per_registration"] = sequential_cpu.used
    figures["cpu_per_bare_post"] = bare_cpu.used
    figures["pids_known"] = all(bare_cpu.pids.values())
    # the scan alone, again over the second sheet's change log (nothing new to send)
    store.save_scan_position(sheets[1].slug, 0, None)
    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        scan({sheets[1].slug: rules[1]}, pool=pool)
        figures["scanned"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the median of this many rounds")
    parser.add_argument("--profile", action="store_true", help="print where the sync's time goes (its main thread)")
    parser.add_argument("--validate", action="store_true", help="the server checks each body (OpenAPI)")
    parser.add_argument("--server-in-process", action="store_true", help="the local SciCat in a thread of this process")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="each dataset request takes this long")
    parser.add_argument("--backlog", type=int, help="only the outbox's cost a job, with this many jobs queued")
    options = parser.parse_args()
    if options.backlog is not None:
        backlog_only(options.entries, options.backlog)
        return
    n, concurrency = options.entries, settings.CATALOGUE_CONCURRENCY
    call_command("migrate", verbosity=0)
    scicat = LocalScicat(options.validate, options.server_in_process, options.latency_ms / 1000)
    server = make_server(scicat.url)
    rounds = []
    try:
        for number in range(options.rounds):
            settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
            print(f"round {number + 1} of {options.rounds}: 3 × {n} entries …", flush=True)
            try:
                rounds.append(one_round(n, concurrency, server, scicat, options.profile and number == 0))
                if number == options.rounds - 1:  # the outbox alone: enqueue, read due, remove, both ways
                    outbox = outbox_cost(n, backlog=0)
            finally:
                mongo.drop_databases()
    finally:
        scicat.stop()
        CONFIGURATION.unlink(missing_ok=True)

    def median(key: str) -> float:
        return statistics.median(figures[key] for figures in rounds)

    def each(key: str, digits: int = 2) -> list[float]:
        return [round(figures[key], digits) for figures in rounds]

    bare = statistics.median(statistics.mean(figures["bare"]) for figures in rounds)
    result = {
        "entries": n,
        "rounds": options.rounds,
        "concurrency": concurrency,
        "server": "in this process" if options.server_in_process else "own process",
        "server_validates": options.validate,
        "latency_ms": options.latency_ms,
        "batch_size": settings.CATALOGUE_BATCH_SIZE,
        "bare_posts_per_s": round(bare, 1),
        "bare_posts_per_s_each_round": [[round(rate) for rate in figures["bare"]] for figures in rounds],
        f"bare_posts_per_s_{concurrency}_threads": round(median("bare_concurrent"), 1),
        "registered_per_s_sequential": round(median("sequential"), 1),
        "registered_per_s": round(median("setting"), 1),
        "width_fitted": each("width", 0),  # entries the sync worked at once in the end
        "registered_per_s_change_by_change": round(median("change_by_change"), 1),
        "ratio": round(median("ratio_setting"), 2),
        "ratio_each_round": each("ratio_setting"),
        "ratio_to_concurrent_bare": round(median("ratio_to_concurrent_bare"), 2),
        "ratio_sequential": round(median("ratio_sequential"), 2),
        "ratio_sequential_each_round": each("ratio_sequential"),
        "ratio_change_by_change": round(median("ratio_change_by_change"), 2),
        "ratio_change_by_change_each_round": each("ratio_change_by_change"),
        "sync_cpu_us_per_job": round(median("cpu") / n * 1e6),
        "scan_us_per_entry": round(median("scanned") / n * 1e6),
        "outbox_us_per_job": outbox["outbox_us_per_job"],
        "outbox_by_query_us_per_job": outbox["outbox_by_query_us_per_job"],
    }
    # the ceiling: every process's CPU per registration (sequential: no thread handovers) spread
    # over all the machine's cores with nothing ever waiting, beside the bare POST's rate
    if all(figures["pids_known"] for figures in rounds):
        per_job = {name: statistics.median(f["cpu_per_registration"][name] for f in rounds) / n for name in CPU_OF}
        per_post = {name: statistics.median(f["cpu_per_bare_post"][name] for f in rounds) / n for name in CPU_OF}
        ceiling = os.cpu_count() / sum(per_job.values())
        result["cpu_us_per_registration"] = {name: round(used * 1e6) for name, used in per_job.items()}
        result["cpu_us_per_bare_post"] = {name: round(used * 1e6) for name, used in per_post.items()}
        result["ceiling_per_s"] = round(ceiling)
        result["ceiling_ratio"] = round(ceiling / bare, 2)
        print(
            f"CPU per registration (sequential sync) {result['cpu_us_per_registration']} µs, per bare POST "
            f"{result['cpu_us_per_bare_post']} µs: with all {os.cpu_count()} cores busy and no waiting at all "
            f"the sync could reach {result['ceiling_per_s']}/s = {result['ceiling_ratio']}× the sequential bare"
        )
    r = result
    print(
        f"SciCat {r['server']}; medians of {r['rounds']} rounds, each sync run to the bare runs just before "
        f"and after it: bare POST {r['bare_posts_per_s']}/s sequential, "
        f"{r[f'bare_posts_per_s_{concurrency}_threads']}/s with {concurrency} threads; registered "
        f"{r['registered_per_s']}/s with CATALOGUE_CONCURRENCY={concurrency} = {r['ratio']}× the sequential bare "
        f"(target ≥ 0.5×; rounds {r['ratio_each_round']}), {r['ratio_to_concurrent_bare']}× the concurrent bare; "
        f"sequential sync {r['registered_per_s_sequential']}/s = {r['ratio_sequential']}×; change by change "
        f"(no catch-up) {r['registered_per_s_change_by_change']}/s = {r['ratio_change_by_change']}×. This "
        f"process's CPU {r['sync_cpu_us_per_job']} µs/job, the scan alone {r['scan_us_per_entry']} µs/entry, the "
        f"outbox alone (enqueue + due + done) {r['outbox_us_per_job']} µs/job "
        f"({r['outbox_by_query_us_per_job']} µs by query and $in)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
