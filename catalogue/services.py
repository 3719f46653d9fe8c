"""Registering entries as SciCat datasets: the scan that fills the outbox, and the sync that
empties it. `catalogue_sync` runs these in a loop; the admin's "register now" runs them once.

Enqueueing is a scan of each ruled sheet's change log (`shotsheet.selectors.changed_entry`), not
a hook in the shot sheet's save: every write of an entry, from the form, an import or a shell, is
in that log (the tables of other processes rely on it), its reads are by `_id` (cheap on
FerretDB), and a scan position kept in MongoDB means an entry saved while catalogue_sync was down
is still found. A hook would run in the web request (a SciCat or outbox outage there would touch
the save) and would miss writes that bypass it.

Both halves wait on round trips (FerretDB ~0.35 ms a read by `_id`, SciCat 10-50 ms a request),
so they overlap them: up to `CATALOGUE_CONCURRENCY` threads work a batch's jobs (as many as
SciCat's answer time needs: `Sync.fit_width`), all of one entry's jobs on one thread in revision
order, while the scan reads the next batch's worth of the change log in
the background, several changes at once. With a SciCat answering in 10-20 ms that is 3.3-3.5× the
rate of one request at a time (README, SciCat). The reads cannot be one query instead: FerretDB
serves only `_id` equality from an index (100 ids by `$in` in a collection of 100,000: 1.8 s,
against 36 ms for 100 single reads).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import statistics
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.urls import NoReverseMatch, get_script_prefix, reverse
from pymongo.errors import PyMongoError

from core import times
from core.runloop import StopFlag
from relay import selectors as relay_selectors
from shotsheet import selectors as shotsheet_selectors
from watcher import selectors as watcher_selectors

from . import contract, store
from .builder import Plan, Recipe, Target, blocks_not_in, build, build_derived
from .models import Rule, Server, comma_list
from .schedule import Schedule
from .scicat import Client, Conflict, Refused, Unavailable
from .templating import TemplateError

log = logging.getLogger(__name__)
SCAN_LIMIT = 2000  # changes read per sheet and pass
RUNS_REREAD_SECONDS = 60  # the index of simulation runs by shot key (runs other processes registered)


@dataclass
class SyncStats:
    created: int = 0
    existed: int = 0  # 409: registered before (a retry after a timeout, another process)
    patched: int = 0
    blocks: int = 0
    unchanged: int = 0
    failed: int = 0
    retries: int = 0
    waiting: int = 0  # simulation runs whose shots are not in SciCat yet
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """The workers of a batch count into the same stats."""
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


def target(server: Server) -> Target:
    return Target(
        api_version=server.api_version,
        owner=server.owner,
        owner_group=server.owner_group,
        access_groups=tuple(comma_list(server.access_groups)),
        contact_email=server.contact_email,
        principal_investigator=server.principal_investigator,
        creation_location=server.creation_location,
        pid_prefix=server.pid_prefix,
        labbook_url=server.labbook_url,
        files_per_block=server.files_per_block,
        time_zone=settings.TIME_ZONE,
    )


def recipe(rule: Rule) -> Recipe:
    return Recipe(
        sheet_name=rule.sheet.name,
        name_template=rule.name_template,
        source_folder_template=rule.source_folder_template,
        metadata_fields=tuple(comma_list(rule.metadata_fields)),
        keywords=tuple(comma_list(rule.keywords)),
        include_shot=rule.include_shot,
    )


def client_for(server: Server) -> Client:
    """Credentials from the environment variables the configuration names, never from the database."""
    return Client(
        server.base_url,
        server.api_version,
        username=os.environ.get(server.username_env, ""),
        password=os.environ.get(server.password_env, ""),
        token=os.environ.get(server.token_env, "") if server.token_env else "",
        timeout=server.timeout_seconds,
    )


def active_rules() -> dict[str, Rule]:
    rules = Rule.objects.filter(enabled=True, server__enabled=True).select_related("sheet", "server")
    return {rule.sheet.slug: rule for rule in rules}


def entry_url(server: Server, entry: dict) -> str:
    return f"{server.labbook_url.rstrip('/')}{entry_path(entry['sheet'], entry['_id'])}"


PLAIN_ID = re.compile(r"[A-Za-z0-9._~-]+")  # what reverse() leaves as it is


def entry_path(sheet: str, entry_id: str) -> str:
    """The entry page's path ('' when it has none). reverse() costs ~30 µs, 3% of a registration's
    CPU: it is called once a sheet, for the ids it would not quote."""
    if PLAIN_ID.fullmatch(entry_id) and (entries := entries_path(sheet, get_script_prefix())):
        return f"{entries}{entry_id}/"
    try:
        return reverse("shotsheet:entry_detail", args=[sheet, entry_id])
    except NoReverseMatch:
        return ""


@lru_cache(maxsize=1024)
def entries_path(sheet: str, script_prefix: str) -> str:
    """The path an entry's id is appended to, from its page's path for the id "0" ('' if that page
    does not end in it)."""
    try:
        path = reverse("shotsheet:entry_detail", args=[sheet, "0"])
    except NoReverseMatch:
        return ""
    return path.removesuffix("0/") if path.endswith("/0/") else ""


# --- the scan: new and changed entries of the ruled sheets into the outbox ------------------------
def settled(entry: dict) -> datetime:
    """When the DAQ's files and events of the entry's shot should all be in: CATALOGUE_SETTLE_SECONDS
    after the shot's laser time, or, without one, after the entry was written. A dataset sent
    sooner would list only the files that beat the physicist's save (later ones would wait for the
    entry's next edit)."""
    when = times.from_ns(entry.get("laser_ts_ns")) or entry.get("updated") or entry.get("created")
    if when is None:
        return datetime.now(UTC)
    return when + timedelta(seconds=settings.CATALOGUE_SETTLE_SECONDS)


def read_ahead(read: Callable[[int], tuple | None], first: int, limit: int, pool: Executor | None) -> list[tuple]:
    """read(first), read(first + 1), … until one is None or `limit` were read: a window of them at a
    time in the pool's threads, the window doubling from 1 (an idle poll reads one change, as
    before) to twice the pool's size (past the log's end that many reads are wasted, once a pass)."""
    found, window = [], 1
    most = 2 * settings.CATALOGUE_CONCURRENCY
    while len(found) < limit:
        start = first + len(found)
        numbers = range(start, start + min(window, limit - len(found)))
        for result in (pool.map if pool else map)(read, numbers):
            if result is None:
                return found
            found.append(result)
        window = min(2 * window, most)
    return found


@dataclass
class ScanPass:
    jobs: list[store.Job] = field(default_factory=list)  # enqueued (and not handed over)
    handed_over: int = 0  # jobs of a catch-up enqueued and handed over as it went
    more: bool = False  # a sheet has more changes than the pass's limit: scan again

    @property
    def new(self) -> int:
        return len(self.jobs) + self.handed_over


def scan(
    rules: dict[str, Rule] | None = None,
    limit: int = SCAN_LIMIT,
    seen: dict | None = None,
    pool: Executor | None = None,
    settle: bool = True,
    hand_over: Callable[[list[store.Job]], None] | None = None,
) -> ScanPass:
    """Enqueue a job for each entry revision written since the last scan (at most `limit` changes
    a sheet). The entries read are left in `seen` (the sync then need not read them again). With a
    `pool`, each change and then its entry are read by one of its threads, several changes at once.
    A job is due when its shot has settled (`settled`), or at once without `settle`. With
    `hand_over`, a sheet's catch-up gives it its jobs a batch at a time as they are stored (the
    sync works the first while the scan reads on); all other jobs are in the pass's `jobs`."""
    done = ScanPass()

    def give(jobs: list[store.Job]) -> None:
        if hand_over is None:
            done.jobs += jobs
        elif jobs:
            done.handed_over += len(jobs)
            hand_over(jobs)

    for slug, rule in (rules if rules is not None else active_rules()).items():
        position = store.scan_position(slug)
        generation = shotsheet_selectors.change_log_generation(slug)
        after = position["change"]
        if position["generation"] and generation and generation != position["generation"]:
            log.warning("sheet %s: its change log was reset; scanning it again from the start", slug)
            after = 0

        def read(number: int, slug: str = slug) -> tuple[int, str, dict | None] | None:
            entry_id = shotsheet_selectors.changed_entry(slug, number)
            return None if entry_id is None else (number, entry_id, shotsheet_selectors.entry(entry_id))

        end = shotsheet_selectors.last_change(slug, after)
        if end - after >= max(settings.CATALOGUE_CATCH_UP_CHANGES, end // 4):
            catch_up(slug, rule, seen, settle, give)
            store.save_scan_position(slug, end, generation or position["generation"])  # after the jobs, as below
            continue
        changes = read_ahead(read, after + 1, limit, pool)
        jobs = {}
        for _, entry_id, entry in changes:
            if entry is not None and (rule.selects(entry) or registered(entry_id)):
                jobs[(entry_id, entry.get("rev", 1))] = settled(entry) if settle else datetime.now(UTC)
                if seen is not None:
                    seen[entry_id] = entry
        # before the position: a crash between them re-enqueues, harmlessly
        done.jobs += store.enqueue(slug, list(jobs), not_before=jobs)
        done.more = done.more or len(changes) == limit
        last = changes[-1][0] if changes else after
        if changes or generation != position["generation"]:
            store.save_scan_position(slug, last, generation or position["generation"])
    return done


def registered(entry_id: str) -> bool:
    """Whether the entry has a dataset: an edit that takes it out of its rule's filter must still
    reach it (left alone, SciCat would keep the values it no longer has)."""
    return store.dataset(entry_id) is not None


class Waiting(Exception):
    """A job whose inputs SciCat does not hold yet (a simulation's shots); it is tried again later."""


class Busy(Exception):
    """Another catalogue_sync is updating this dataset or sending its datablocks; tried again soon."""


@dataclass
class Hold:
    """A claim this process holds, until `until`."""

    claim_id: str
    until: datetime | None

    def extend(self, lease: timedelta) -> None:
        self.until = store.extend(self.claim_id, self.until, lease)  # None: it is not ours any more
        if self.until is None:
            raise self.lost()

    def check(self) -> None:
        if self.until is None or store.claimed_until(self.claim_id) != self.until:
            raise self.lost()

    def lost(self) -> Busy:
        return Busy(f"{self.claim_id} ran out and another catalogue_sync took it over")


def simulation_server() -> Server | None:
    return Server.objects.filter(enabled=True, register_simulations=True).first()


def simulation_url(server: Server, run_id: str) -> str:
    try:
        path = reverse("simulations:detail", args=[run_id])
    except NoReverseMatch:
        path = ""
    return f"{server.labbook_url.rstrip('/')}{path}"


def input_datasets(run: dict, rules: dict[str, Rule]) -> list[str]:
    """The pids of the datasets of the shots the run models: each entry of such a shot in a sheet
    the catalogue registers. A shot without such an entry is named in the run's metadata only; one
    whose entry is not registered yet makes the run wait (Waiting)."""
    pids, waiting, refused = [], [], []
    for shot_key in run.get("shot_keys") or []:
        for entry_id in shotsheet_selectors.entry_ids_of_shot(shot_key, list(rules)):
            entry = shotsheet_selectors.entry(entry_id)
            if entry is None or not rules[entry["sheet"]].selects(entry):
                continue
            record = store.dataset(entry_id)
            if record is not None:
                pids.append(record["pid"])
                continue
            job = store.job(store.job_id(entry_id, entry.get("rev", 1)))
            if job and job["status"] == store.FAILED:  # it waits for somebody: say for whom, and why
                refused.append(f"the dataset of shot {shot_key} (entry {entry_id}) was refused: {job['last_error']}")
            else:
                waiting.append(shot_key)
    if refused:
        raise Waiting(f"waiting until it is queued again and sent: {'; '.join(refused)}")
    if waiting:
        raise Waiting(f"waiting for SciCat to hold the datasets of shots {', '.join(sorted(set(waiting)))}")
    return sorted(set(pids))


def scan_simulations(seen: set[tuple[str, int]]) -> list[store.Job]:
    """Enqueue a job for each simulation run (revision) extracted since the last scan, when a
    server registers simulations. `seen`: jobs this process enqueued already (the last run is
    read again by the next scan, its time being the position). Returns the jobs enqueued."""
    if not apps.is_installed("simulations") or simulation_server() is None:
        return []
    from simulations import selectors as simulation_selectors

    position = store.simulation_scan_position()
    # `updated` is the extracting machine's clock: one behind the last run's would slip past the position
    runs = simulation_selectors.runs_changed_since(position - CLOCK_MARGIN if position else None)
    fresh = [(run["_id"], run.get("rev", 1)) for run in runs if (run["_id"], run.get("rev", 1)) not in seen]
    new = store.enqueue("", fresh, kind=store.SIMULATION)
    seen.update(fresh)
    if runs:
        store.save_simulation_scan_position(runs[-1]["updated"])
    return new


def enqueue_behind(
    slug: str,
    rule: Rule,
    held: dict[str, int],
    hand_over: Callable[[list[store.Job]], None],
    seen: dict | None = None,
    settle: bool = True,
) -> None:
    """A job for each selected entry of the sheet without its dataset or with a newer revision than
    SciCat has (`held`), from one streamed read of the sheet; the first CATALOGUE_BATCH_SIZE × 10
    of them are left in `seen` (the sync then need not read them again). The jobs go to
    `hand_over` CATALOGUE_BATCH_SIZE at a time as they are stored, while the read goes on."""
    behind, now = {}, datetime.now(UTC)

    def enqueue() -> None:
        hand_over(store.enqueue(slug, list(behind), not_before=behind))
        behind.clear()

    for entry in shotsheet_selectors.sheet_entries(slug):
        if (rule.selects(entry) or entry["_id"] in held) and held.get(entry["_id"], 0) < entry.get("rev", 1):
            behind[(entry["_id"], entry.get("rev", 1))] = settled(entry) if settle else now
            if seen is not None and len(seen) < 10 * settings.CATALOGUE_BATCH_SIZE:
                seen[entry["_id"]] = entry
            if len(behind) >= settings.CATALOGUE_BATCH_SIZE:
                enqueue()
    enqueue()


def catch_up(
    slug: str, rule: Rule, seen: dict | None, settle: bool, hand_over: Callable[[list[store.Job]], None]
) -> None:
    """A sheet far behind its change log (its rule just enabled, "register now", catalogue_sync
    down for days): one read of all its entries and one of the datasets recorded, instead of two
    reads by `_id` a change. On FerretDB those cost ~0.8 ms a change, a whole read ~0.06 ms an entry
    of the collection; `scan` catches up from CATALOGUE_CATCH_UP_CHANGES changes behind and a quarter
    of the log. The jobs go to `hand_over` a batch at a time, as they are stored."""
    enqueue_behind(slug, rule, store.dataset_revisions(slug), hand_over, seen, settle)


CLOCK_MARGIN = timedelta(seconds=5)  # between the watcher's (or an extraction's) clock and the catalogue's, at most


def scan_file_log(rules: dict[str, Rule] | None = None, limit: int = SCAN_LIMIT) -> list[store.Job]:
    """Enqueue a files job for each registered entry of a shot whose events named files since the
    last scan: the watcher logs such shots in the order it stored them (`watcher.selectors.
    shots_with_files_logged`), read here by `_id` from a position kept in MongoDB, as the sheets'
    change logs are. An entry whose registration is still to come (due after the files were
    stored) is left to it: it lists them itself. Returns the jobs enqueued.

    A first scan starts at the log's end (files logged before were the registrations' to list);
    a log whose generation changed (a dropped or restored database) is read again from its start."""
    rules = rules if rules is not None else active_rules()
    if not rules or not apps.is_installed("watcher"):
        return []
    position, generation = store.file_log_position(), watcher_selectors.file_log_generation()
    if position is None:
        after = watcher_selectors.file_log_end()
    elif position["generation"] and generation and generation != position["generation"]:
        log.warning("the watcher's file log was reset; scanning it again from the start")
        after = 0
    else:
        after = position["number"]
    number, jobs = after, defaultdict(dict)
    while number - after < limit and (logged := watcher_selectors.shots_with_files_logged(number + 1)) is not None:
        number += 1
        for shot_key in logged.get("shots", []):
            for entry_id in shotsheet_selectors.entry_ids_of_shot(shot_key, list(rules)):
                entry = shotsheet_selectors.entry(entry_id)
                rule = rules[entry["sheet"]] if entry else None
                if rule is None or not rule.include_shot or not rule.selects(entry) or will_list(entry, logged["at"]):
                    continue  # its dataset does not list its shot's events, or will list them itself
                rev = entry.get("rev", 1)
                jobs[entry["sheet"]][store.files_job_id(entry_id, f"e{number}")] = (entry_id, rev, datetime.now(UTC))
    new = [job for slug, sheet_jobs in jobs.items() for job in store.enqueue_files(slug, sheet_jobs)]
    # before the position: a crash between them enqueues the same jobs again, ignored
    if position is None or number != position["number"] or generation != position["generation"]:
        store.save_file_log_position(number, generation or (position or {}).get("generation"))
    return new


def will_list(entry: dict, stored: datetime) -> bool:
    """Whether the entry's registration is still to come and will see files stored at `stored`:
    no dataset yet, and its job not due before then (a job due earlier may be running now, with
    its files read before these were stored)."""
    if store.dataset(entry["_id"]) is not None:
        return False
    registration = store.job(store.job_id(entry["_id"], entry.get("rev", 1)))
    if registration is None:
        return True  # not even enqueued yet: it reads the shot's events later
    return registration["status"] == store.PENDING and registration["next_try"] > stored + CLOCK_MARGIN


def lists_folder(entry: dict) -> bool:
    """Whether the entry's DAQ profile asks for its folder to be listed (`listed_files`)."""
    config = (entry.get("daq") or {}).get("config")
    return isinstance(config, dict) and bool(config.get("list_files")) and bool(config.get("data_folder"))


def reconcile(rules: dict[str, Rule] | None = None) -> list[store.Job]:
    """Every entry of the ruled sheets against the datasets recorded, not trusting the change log:
    a job for each selected entry without its dataset or with a newer revision than SciCat has (an
    entry stored by a process that died before logging its change, or whose log write failed).
    One read of each sheet's entries and one of the records; returns the jobs enqueued."""
    held = store.dataset_revisions()
    rules = rules if rules is not None else active_rules()
    new = []
    for slug, rule in rules.items():
        enqueue_behind(slug, rule, held, new.extend)
    new += enqueue_runs_behind(held)
    if new:
        log.warning("catalogue: %d entries were found by the reconciliation, not by the change log", len(new))
    return new


def enqueue_runs_behind(held: dict[str, int]) -> list[store.Job]:
    """A job for each simulation run without its dataset or behind it, when a server registers
    them: a run the scan missed (extracted on a machine whose clock is minutes behind) is found here."""
    if not apps.is_installed("simulations") or simulation_server() is None:
        return []
    from simulations import selectors as simulation_selectors

    behind = [(run["_id"], run.get("rev", 1)) for run in simulation_selectors.runs_changed_since(None)]
    return store.enqueue("", [job for job in behind if held.get(job[0], 0) < job[1]], kind=store.SIMULATION)


def enqueue_sheet(rule: Rule) -> int:
    """Every entry of the sheet again (the admin's "register now", so not waiting for shots to
    settle): jobs already done are no-ops. A running catalogue_sync is told."""
    store.save_scan_position(rule.sheet.slug, 0, None)
    new = scan({rule.sheet.slug: rule}, settle=False).new
    store.outbox_changed()
    return new


# --- the sync: one job, one dataset action -------------------------------------------------------
def listed_files(entry: dict, limit: int) -> list[dict]:
    """The files in the DAQ profile's `data_folder` when the profile asks for it (`list_files: true`)
    and the folder is on this machine."""
    if not lists_folder(entry):
        return []
    folder = Path(str(entry["daq"]["config"]["data_folder"]))
    found = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            found.append({"path": str(path), "size": stat.st_size, "mtime": stat.st_mtime_ns})
            if len(found) >= limit:
                log.warning("%s: more than %d files; the dataset lists the first ones", folder, limit)
                break
    return found


def plan_for(rule: Rule, entry: dict, fields: list[dict] | None = None) -> Plan:
    shot, events = None, []
    # the relay's record also dates an entry typed before the relay had its shot
    if entry.get("shot_key") and (rule.include_shot or not entry.get("laser_ts_ns")) and apps.is_installed("relay"):
        shot = relay_selectors.shot(entry["shot_key"])
    if rule.include_shot and entry.get("shot_key") and apps.is_installed("watcher"):
        events = watcher_selectors.events_for_shot(entry["shot_key"])
    if fields is None:
        fields = shotsheet_selectors.schema_fields(entry["sheet"], entry.get("schema_version", 0))
    if not fields and entry.get("values"):  # sent so, the dataset would hold none of its values
        version = f"{entry['sheet']} v{entry.get('schema_version')}"
        raise Refused(f"not sent: the fields of schema version {version} are not stored beside the entries")
    try:
        return build(
            entry,
            fields,
            target(rule.server),
            recipe(rule),
            entry_url=entry_url(rule.server, entry),
            shot=shot,
            events=events,
            listed_files=listed_files(entry, settings.CATALOGUE_MAX_LISTED_FILES),
        )
    except TemplateError as exc:  # fixed in the entry or the rule, then queued again: not retried for ever
        raise Refused(f"not sent: {exc}") from None


def checked(plan: Plan, api_version: str) -> Plan:
    try:  # as the HTTP client will write it: a value JSON cannot hold is refused here, not retried for ever
        json.dumps([plan.dataset, plan.patch, plan.blocks], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Refused(f"not sent, a value cannot be written as JSON: {exc}") from None
    errors = contract.dataset_errors(plan.dataset, api_version)
    for block in plan.blocks:
        errors += contract.block_errors(block)
    if errors:
        raise Refused("not sent, SciCat would refuse it: " + "; ".join(errors[:10]))
    return plan


def backoff(failures: int) -> float:
    """Seconds to wait after this many failed tries in a row: doubling from
    CATALOGUE_RETRY_BASE_SECONDS up to CATALOGUE_RETRY_MAX_SECONDS."""
    return min(settings.CATALOGUE_RETRY_BASE_SECONDS * 2 ** min(failures, 30), settings.CATALOGUE_RETRY_MAX_SECONDS)


def removal_due(done: int, outbox: int, batch_size: int) -> bool:
    """Whether to remove the jobs done (`done` of the `outbox`'s jobs) now, not with a later batch's:
    once they are half the outbox or 10 batches. On FerretDB a removal scans the outbox, so removing
    300 of 500 jobs at once costs about what removing 100 does (78 against 227 µs a job, measured).
    A job done and not yet removed at a crash is done again: SciCat answers 409, nothing is sent twice."""
    return 2 * done >= outbox or done >= 10 * batch_size


class Sync:
    """Empties the outbox: each job made true in SciCat, at most once, whatever failed before.

    A batch's bookkeeping (datasets created, jobs done) is written once at its end: on FerretDB a
    write costs ~2-6 ms, more than the POST it records. A crash before that write loses nothing:
    the jobs are still in the outbox, and their second try finds the datasets (409) instead of
    making new ones. A dataset with files is recorded at once, before its datablocks go out.

    A batch's jobs are worked by up to `CATALOGUE_CONCURRENCY` threads (`fit_width`), one entry's
    jobs on one thread in revision order (two jobs of an entry at once could both create or both
    patch its dataset); the batch's bookkeeping is written when all its workers have ended, before
    the next batch is read.
    Meanwhile the scan reads the next batch's worth of the change logs (`CATALOGUE_CONCURRENCY`
    reads at once on threads of its own), so FerretDB's round trips overlap SciCat's.

    Which jobs are due comes from the sync's `Schedule`, not from a query (on FerretDB one scans
    the outbox: ~1 s a batch with 20,000 jobs queued). It is read whole at the first pass, when
    another process said it changed the outbox (`store.outbox_changed`: a re-queue, "register
    now", a sync that stopped) and every CATALOGUE_OUTBOX_REFRESH_SECONDS; what this process
    enqueues, retries, refuses or finishes it keeps up to date itself.
    """

    def __init__(self, stop: StopFlag | None = None, batch_size: int | None = None):
        self.stop = stop or StopFlag()
        self.batch_size = batch_size or settings.CATALOGUE_BATCH_SIZE
        self.stats = SyncStats()
        self.pool = ThreadPoolExecutor(settings.CATALOGUE_CONCURRENCY, thread_name_prefix="catalogue-sync")
        self.readers = ThreadPoolExecutor(settings.CATALOGUE_CONCURRENCY, thread_name_prefix="catalogue-scan")
        self.scanner = ThreadPoolExecutor(1, thread_name_prefix="catalogue-scanner")
        self.lock = threading.Lock()  # the bookkeeping below, and the clients
        self.clients: dict[tuple, Client] = {}
        self.fields: dict[tuple[str, int], list[dict]] = {}  # schema versions never change once written
        self.created: dict[str, dict] = {}  # dataset records not yet written
        self.scanned: dict[str, dict] = {}  # entries the scan just read
        self.finished: list[str] = []  # ids of jobs done (and of their earlier revisions), not yet removed
        self.schedule = Schedule()
        self.outbox_read: float | None = None  # when (monotonic) the schedule was last read whole
        self.outbox_marker: str | None = None  # what `store.outbox_marker` said before that read
        self.unannounced = False  # jobs enqueued here that other processes were not told of
        self.simulations_seen: set[tuple[str, int]] = set()  # simulation runs (revisions) enqueued
        self.outages = 0  # passes in a row that found SciCat unreachable
        self.runs_lock = threading.Lock()  # the index of simulation runs by shot key
        self.shot_runs: dict[str, dict[str, int]] = {}  # shot key → run id → revision
        self.runs_read: float | None = None  # when (monotonic) the index was read
        self.reconciled: float | None = None  # when (monotonic) every entry was last compared
        self.arrived = threading.Event()  # the scan in the background handed jobs over, or ended
        self.width = settings.CATALOGUE_CONCURRENCY  # entries worked at once (`fit_width`)

    def flush(self, finish: bool = True) -> None:
        """Write the records and remove the jobs, then forget them (held meanwhile: a worker that
        finds its record in neither place would read it as not registered). Between a pass's
        batches (`finish` False) the jobs done stay until `removal_due`."""
        with self.lock:
            store.datasets_created(list(self.created.values()))
            self.created.clear()
            outbox = len(self.schedule) + len(self.finished)
            if finish or removal_due(len(self.finished), outbox, self.batch_size):
                store.jobs_done(list(self.finished), outbox_size=outbox)
                self.finished.clear()

    def read_outbox(self) -> None:
        """The schedule from one read of the whole outbox, at the first pass, at the pass after
        another process changed the outbox, and every CATALOGUE_OUTBOX_REFRESH_SECONDS (a change
        nobody announced: a second sync's jobs, a sync killed before it could say so). Otherwise
        one read by `_id`."""
        marker = store.outbox_marker()  # before the jobs: a change between the two is read again next pass
        age = time.monotonic() - self.outbox_read if self.outbox_read is not None else None
        if age is not None and age < settings.CATALOGUE_OUTBOX_REFRESH_SECONDS and marker == self.outbox_marker:
            return
        started = time.monotonic()
        pending, failed = store.outbox()
        self.schedule.load(pending, failed)
        self.outbox_read, self.outbox_marker = time.monotonic(), marker
        seconds = self.outbox_read - started
        log.info("catalogue: outbox read whole, %d pending, %d refused, %.2f s", len(pending), len(failed), seconds)

    def schedule_new(self, jobs: list[store.Job]) -> None:
        """Jobs this process enqueued: in its schedule at once (the outbox is not read again for them)."""
        self.schedule.add(jobs)
        self.unannounced = self.unannounced or bool(jobs)

    def retry(self, job: store.Job, error: str, delay: timedelta) -> None:
        self.schedule.add([store.retry_later(job, error, delay)])

    def fields_of(self, entry: dict) -> list[dict]:
        key = (entry["sheet"], entry.get("schema_version", 0))
        if key not in self.fields:
            fields = shotsheet_selectors.schema_fields(*key)
            if not fields:  # not stored (yet): looked for again, not cached as "no fields"
                return fields
            self.fields[key] = fields
        return self.fields[key]

    def client(self, server: Server) -> Client:
        key = (server.pk, server.base_url, server.api_version, server.timeout_seconds)
        with self.lock:
            if key not in self.clients:
                self.clients[key] = client_for(server)
            return self.clients[key]

    def close(self) -> None:
        """Stop the threads and clients; tell another catalogue_sync (the long-running one after a
        `--once`, or the admin's "register now") of the jobs this one enqueued and left."""
        for pool in (self.scanner, self.readers, self.pool):
            pool.shutdown()
        for client in self.clients.values():
            client.close()
        if self.unannounced:
            try:
                store.outbox_changed()
            except PyMongoError as exc:  # the other sync finds them at its next whole read anyway
                log.warning("catalogue: could not tell other processes of the jobs enqueued (%s)", exc)

    @staticmethod
    def configured() -> bool:
        """Whether anything is to be registered: an enabled rule on an enabled server, or simulations."""
        return bool(active_rules()) or simulation_server() is not None

    def reconcile(self) -> int:
        """`reconcile` now; the run loop calls it every CATALOGUE_RECONCILE_SECONDS."""
        self.reconciled = time.monotonic()
        jobs = reconcile()
        self.schedule_new(jobs)
        return len(jobs)

    def run(self) -> None:
        """Until stopped: scan, work off what is due, wait for the next due job or poll; now and
        then reconcile every entry with the datasets recorded."""
        while not self.stop.is_set():
            try:
                every = settings.CATALOGUE_RECONCILE_SECONDS
                if every and (self.reconciled is None or time.monotonic() - self.reconciled >= every):
                    self.reconcile()
                self.run_once()
                pause = settings.CATALOGUE_POLL_SECONDS
                upcoming = self.schedule.next_due()
                if upcoming is not None:
                    pause = min(pause, max(0.0, (upcoming - datetime.now(UTC)).total_seconds()))
                if self.outages:  # the whole sync backs off as a job does: not a request for every queued job
                    pause = max(pause, backoff(self.outages - 1))
            except PyMongoError as exc:
                log.warning("catalogue: MongoDB not reached (%s); trying again", exc)
                pause = settings.CATALOGUE_RETRY_BASE_SECONDS
            except DatabaseError as exc:  # the rules' database: SQLite busy, PostgreSQL restarting
                log.warning("catalogue: the configuration database not reached (%s); trying again", exc)
                close_old_connections()  # a broken connection is opened afresh
                pause = settings.CATALOGUE_RETRY_BASE_SECONDS
            self.stop.wait(pause)

    def run_once(self, max_jobs: int | None = None) -> int:
        """One scan and every job due now (the `--once` of cron), or the first `max_jobs` of them;
        stops early when SciCat is down."""
        rules = active_rules()
        simulations = simulation_server()  # read here: the workers touch no Django model
        self.scanned.clear()
        self.read_outbox()
        self.schedule_new(scan_simulations(self.simulations_seen))
        self.schedule_new(scan_file_log(rules))
        scanning: Future | None = self.scan_ahead(rules)
        done = 0
        try:
            while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
                self.arrived.clear()
                if scanning is not None and scanning.done():  # this part of the logs is in the outbox
                    scanned = scanning.result()
                    self.schedule_new(scanned.jobs)
                    scanning = self.scan_ahead(rules) if scanned.more else None  # the next read while this batch works
                limit = self.batch_size if max_jobs is None else min(self.batch_size, max_jobs - done)
                jobs = self.schedule.take(limit, datetime.now(UTC))
                if not jobs:
                    if scanning is None:
                        break
                    self.arrived.wait()  # the scan's next jobs, or its end
                    continue
                worked, reached = self.work_batch(jobs, rules, simulations)
                done += worked
                self.outages = 0 if reached else self.outages + 1
                if not reached:
                    break  # SciCat unavailable: the others wait for the backoff too
        finally:
            if scanning is not None:  # no scan outlives its pass (the next would read from the same position)
                self.schedule_new(scanning.result().jobs)
            self.flush()
        return done

    def scan_ahead(self, rules: dict[str, Rule]) -> Future:
        """The next batch's worth of each sheet's change log into the outbox, in the background; a
        whole sheet far behind it (`catch_up`) hands its jobs to the schedule a batch at a time as
        they are stored. `arrived` is set then, and when the scan ends."""
        scanning = self.scanner.submit(
            scan, rules, self.batch_size, self.scanned, self.readers, hand_over=self.hand_over
        )
        scanning.add_done_callback(lambda _: self.arrived.set())
        return scanning

    def hand_over(self, jobs: list[store.Job]) -> None:
        self.schedule_new(jobs)
        self.arrived.set()

    def work_batch(self, jobs: list[store.Job], rules: dict[str, Rule], simulations: Server | None) -> tuple[int, bool]:
        """The batch's jobs in the pool, `width` entries at once, each entry's in revision order on
        one thread; returns the jobs done and whether SciCat was reached. Once it was not (or a
        worker failed) no further job starts; those in flight end, each retried or recorded as it
        ended."""
        halt = threading.Event()

        def work_entry(entry_jobs: list[store.Job]) -> int:
            done = 0
            try:
                for job in entry_jobs:
                    if self.stop.is_set() or halt.is_set():
                        break
                    if not self.work(job, rules, simulations):
                        halt.set()
                        break
                    done += 1
            except BaseException:
                halt.set()
                raise
            return done

        def work_lane() -> int:
            done = 0
            while not (self.stop.is_set() or halt.is_set()):
                try:
                    entry_jobs = entries.popleft()
                except IndexError:
                    break
                started = time.thread_time()
                done += work_entry(entry_jobs)
                cpu.append((time.thread_time() - started) / len(entry_jobs))
            return done

        by_entry: dict[str, list[store.Job]] = defaultdict(list)
        for job in sorted(jobs, key=lambda job: job.rev):  # stable: otherwise in the order they fell due
            by_entry[job.entry].append(job)
        entries, cpu = deque(by_entry.values()), []  # cpu: seconds a job of this process's own work
        futures = [self.pool.submit(work_lane) for _ in range(min(self.width, len(entries)))]
        try:
            wait(futures)
        finally:
            self.schedule.give_back()  # the jobs no worker got to, due as they were
            self.flush(finish=False)
        done = sum(future.result() for future in futures)  # a worker's exception is raised here
        self.fit_width(statistics.median(cpu) if cpu else 0.0)  # not the mean: a first job loads modules once
        return done, not halt.is_set()

    def fit_width(self, cpu_per_job: float) -> None:
        """How many entries the next batch works at once: as many as keep this process busy while
        each waits for SciCat (1 + SciCat's answer time ÷ the CPU time a job costs here), at most
        CATALOGUE_CONCURRENCY. Threads beyond that only wait for one another (Python runs one at a
        time): in six runs against a local SciCat that answers at once, 4 threads registered
        0.44–0.80× the bare POST rate and 1 thread 0.54–0.85×; against one that takes 10 ms, 4
        threads are ~3× faster than 1 (the README, SciCat)."""
        clients = list(self.clients.values())
        waits = [waited for client in clients if (waited := client.take_shortest_wait()) is not None]
        if waits and cpu_per_job > 0:
            self.width = max(1, min(settings.CATALOGUE_CONCURRENCY, 1 + int(max(waits) / cpu_per_job)))

    def work(self, job: store.Job, rules: dict[str, Rule], simulations: Server | None = None) -> bool:
        """Run one job; False when SciCat could not be reached (the job waits, and so does the batch)."""
        try:
            if job.kind == store.SIMULATION:
                self.register_simulation(job, rules, simulations)
            elif (rule := rules.get(job.sheet)) is None:
                raise Refused(f"no enabled catalogue rule (or SciCat server) for sheet '{job.sheet}'")
            elif job.kind == store.FILES:
                self.send_late_files(job, rule)
            else:
                self.register(job, rule, simulations)
        except Waiting as exc:  # its inputs are not in SciCat yet: the job waits, the others go on
            self.retry(job, str(exc), timedelta(seconds=settings.CATALOGUE_RETRY_MAX_SECONDS / 10))
            self.stats.add(waiting=1)
            return True
        except Busy as exc:  # another process is on this dataset: this job waits, the others go on
            self.retry(job, str(exc), timedelta(seconds=settings.CATALOGUE_RETRY_BASE_SECONDS))
            self.stats.add(retries=1)
            return True
        except Refused as exc:
            log.warning("catalogue: %s refused: %s", job.id, exc)
            store.fail(job, str(exc))
            self.schedule.refused(job)
            self.stats.add(failed=1)
            return True
        except Unavailable as exc:
            delay = backoff(job.attempts)
            self.retry(job, str(exc), timedelta(seconds=delay * random.uniform(0.75, 1.0)))
            self.stats.add(retries=1)
            log.info("catalogue: %s not done, again in %.1f s: %s", job.id, delay, exc)
            return False
        except PyMongoError:
            raise  # the run loop waits for MongoDB
        except Exception as exc:  # a bug, or an answer no SciCat gives (a proxy's page): the others go on
            log.exception("catalogue: %s failed unexpectedly; tried again later", job.id)
            self.retry(job, f"{type(exc).__name__}: {exc}", timedelta(seconds=backoff(job.attempts)))
            self.stats.add(retries=1)
            return True
        older = self.schedule.done(job)  # the dataset holds a newer revision than these now
        with self.lock:
            self.finished += [job.id, *older]
        return True

    def register(self, job: store.Job, rule: Rule, simulations: Server | None = None) -> None:
        entry = self.scanned.pop(job.entry, None)
        if entry is None or entry.get("rev", 1) != job.rev:
            entry = shotsheet_selectors.entry(job.entry)
        self.deliver(
            job,
            entry,  # None: deleted since, nothing to register
            lambda entry: plan_for(rule, entry, self.fields_of(entry)),
            lambda: shotsheet_selectors.entry(job.entry),
            rule.server,
        )
        if simulations is not None and entry and entry.get("shot_key") and apps.is_installed("simulations"):
            # a run of this shot registered before its entry was (typed the next morning) lacks it as an input
            self.schedule_new(store.enqueue("", self.runs_modelling(entry["shot_key"]), kind=store.SIMULATION))

    def runs_modelling(self, shot_key: str) -> list[tuple[str, int]]:
        """The runs (id, revision) that model the shot, from an index of every run read again once
        RUNS_REREAD_SECONDS: FerretDB scans the runs for any filtered read (180 ms with 300 runs,
        measured), too much for each entry; a run this process registers is added at once."""
        from simulations import selectors as simulation_selectors

        with self.runs_lock:
            if self.runs_read is None or time.monotonic() - self.runs_read >= RUNS_REREAD_SECONDS:
                self.shot_runs.clear()
                for run in simulation_selectors.shot_keys_of_runs():
                    self.note_run(run)
                self.runs_read = time.monotonic()
            return sorted(self.shot_runs.get(shot_key, {}).items())

    def note_run(self, run: dict) -> None:
        for shot_key in run.get("shot_keys") or []:
            self.shot_runs.setdefault(shot_key, {})[run["_id"]] = run.get("rev", 1)

    def register_simulation(self, job: store.Job, rules: dict[str, Rule], server: Server | None) -> None:
        """A simulation run as a derived dataset whose inputs are the datasets of the shots it
        models; while one of those shots' entries is still to be registered, the run waits."""
        from simulations import selectors as simulation_selectors

        if server is None:
            raise Refused("no enabled SciCat server registers simulations (admin: Servers › register simulations)")

        def plan_of(run: dict) -> Plan:
            url = simulation_url(server, run["_id"])
            return build_derived(run, target(server), input_pids=input_datasets(run, rules), run_url=url)

        run = simulation_selectors.run(job.entry)
        record = run and (self.created.get(job.entry) or store.dataset(job.entry))
        if record and record["rev"] >= run.get("rev", 1) and record["blocks_sent"] >= record["blocks"]:
            self.update_inputs(job, server, rules, record["pid"])  # SciCat has this revision: its inputs may be new
            return
        self.deliver(job, run, plan_of, lambda: simulation_selectors.run(job.entry), server, read_record=True)
        if run:
            with self.runs_lock:
                self.note_run(run)

    def update_inputs(self, job: store.Job, server: Server, rules: dict[str, Rule], pid: str) -> None:
        """A registered run's inputDatasets as its shots' entries have them now: an entry registered
        after the run (its job was queued by that entry's) is added by one PATCH of that field."""
        from simulations import selectors as simulation_selectors

        client = self.client(server)
        with self.claimed(store.update_claim(job.entry), client) as hold:
            run = simulation_selectors.run(job.entry)
            held = client.get_dataset(pid)
            if run is None or held is None:
                return
            inputs = input_datasets(run, rules)
            if sorted(held.get("inputDatasets") or []) == inputs:
                self.stats.add(unchanged=1)
                return
            hold.check()
            client.patch_dataset(pid, {"inputDatasets": inputs})
            self.stats.add(patched=1)

    def deliver(self, job: store.Job, source: dict | None, plan_of, read_again, server: Server, read_record=False):
        """The dataset of `source` (an entry or a run; None: removed since) created, or updated.

        An update runs under the dataset's claim, with its source and record read again there:
        a process that read revision n and PATCHed it after another sent n+1 would leave SciCat
        at n for good. A first revision on its first try has no record to read (a read per job
        would cost more than its POST); if it was registered before after all, SciCat answers 409
        and it becomes an update."""
        if source is None:
            return
        rev, client = source.get("rev", 1), self.client(server)
        record = self.created.get(job.entry)
        if record is None and (rev > 1 or job.attempts or read_record):
            record = store.dataset(job.entry)
        if record is None:
            plan = checked(plan_of(source), server.api_version)
            existing = self.create(client, plan)
            self.follow_up(job, source)
            if existing is None:
                record = store.dataset_record(job.entry, job.sheet, plan.pid, rev, len(plan.blocks))
                if not plan.blocks:
                    with self.lock:
                        self.created[job.entry] = record  # written with the batch
                    return
                store.datasets_created([record])  # before its datablocks go out
                self.send_blocks(client, plan.blocks, record)
                return
            # Its files may not all be there (the first try died between the POST and them): with
            # blocks planned and none noted as sent, the update below asks SciCat which arrived.
            held = ((existing.get("scientificMetadata") or {}).get("labbook") or {}).get("entry_revision")
            store.datasets_created([store.dataset_record(job.entry, job.sheet, plan.pid, held or 0, len(plan.blocks))])
            record = store.dataset(job.entry)
        if record["rev"] >= rev and record["blocks_sent"] >= record["blocks"]:
            self.stats.add(unchanged=1)
            return
        self.flush()  # the records to update must be written first
        with self.claimed(store.update_claim(job.entry), client) as hold:
            source, record = read_again(), store.dataset(job.entry)
            if source is None or record is None:
                return
            rev = source.get("rev", 1)
            plan = checked(plan_of(source), server.api_version)
            # the files before the revision is recorded: a retry after a failure between the two
            # finds the dataset behind and sends what is missing, not "up to date" with files unsent
            if plan.blocks or record["blocks_sent"] < record["blocks"]:
                self.send_missing_files(client, plan, record, server.files_per_block, hold)
            if record["rev"] < rev:
                hold.check()  # still ours: a sync that took it over may have sent a newer revision
                client.patch_dataset(record["pid"], plan.patch)
                store.dataset_updated(job.entry, rev)
                self.stats.add(patched=1)

    def follow_up(self, job: store.Job, entry: dict) -> None:
        """A dataset whose DAQ folder is listed: files jobs CATALOGUE_FOLLOW_UP_SECONDS after its
        registration, for files written into the folder since (a folder announces nothing)."""
        if job.kind != store.ENTRY or not lists_folder(entry):
            return
        now, rev = datetime.now(UTC), entry.get("rev", 1)
        jobs = {
            store.files_job_id(job.entry, f"l{n}"): (job.entry, rev, now + timedelta(seconds=seconds))
            for n, seconds in enumerate(settings.CATALOGUE_FOLLOW_UP_SECONDS, start=1)
        }
        self.schedule_new(store.enqueue_files(job.sheet, jobs))

    def send_late_files(self, job: store.Job, rule: Rule) -> None:
        """The files of a registered entry's dataset that SciCat does not list yet: an event that
        named them came after the dataset was sent, or its folder filled since. Under the update's
        claim, as an edit's files are (`send_missing_files`: one listing, then only what is missing,
        each datablock claimed); never a PATCH (the entry's next revision is its update job's)."""
        if self.created.get(job.entry) is None and store.dataset(job.entry) is None:
            entry = shotsheet_selectors.entry(job.entry)
            registration = entry and store.job(store.job_id(job.entry, entry.get("rev", 1)))
            if registration and registration["status"] == store.PENDING:
                raise Waiting("the dataset is not registered yet; its files are sent after it")
            return  # not registered (refused, not selected, voided): registered later, it lists them itself
        client = self.client(rule.server)
        self.flush()  # the record to read must be written first
        with self.claimed(store.update_claim(job.entry), client) as hold:
            entry, record = shotsheet_selectors.entry(job.entry), store.dataset(job.entry)
            if entry is None or record is None:
                return
            plan = checked(plan_for(rule, entry, self.fields_of(entry)), rule.server.api_version)
            if plan.blocks or record["blocks_sent"] < record["blocks"]:
                self.send_missing_files(client, plan, record, rule.server.files_per_block, hold)

    @contextmanager
    def claimed(self, claim_id: str, client: Client):
        """Hold `claim_id` while the block runs; another process holding it makes the job wait (Busy)."""
        if store.claim(claim_id, self.lease(client)) == store.BUSY:
            raise Busy(f"another catalogue_sync holds {claim_id}")
        hold = Hold(claim_id, store.claimed_until(claim_id))
        try:
            yield hold
        finally:
            store.release(claim_id, hold.until)

    @staticmethod
    def lease(client: Client) -> timedelta:
        return timedelta(seconds=max(5.0, 3 * client.http.timeout.read))

    def create(self, client: Client, plan: Plan) -> dict | None:
        """None when created; SciCat's dataset when it had it already (409)."""
        try:
            client.create_dataset(plan.dataset)
            self.stats.add(created=1)
            return None
        except Conflict:
            existing = client.get_dataset(plan.pid)
            if existing is None:
                raise Unavailable(f"409 for {plan.pid}, yet no such dataset to read") from None
            self.stats.add(existed=1)
            return existing

    def send_missing_files(self, client: Client, plan: Plan, record: dict, per_block: int, hold: Hold) -> None:
        """The plan's files SciCat does not list yet (written after the dataset was created, or
        not sent before a crash), in datablocks numbered on from those sent; the update's claim
        extended to cover a request for each and the PATCH after them."""
        missing = blocks_not_in(plan, client.origdatablock_paths(plan.pid), per_block)
        hold.extend(self.lease(client) * (len(missing) + 1))
        if not missing:
            if record["blocks_sent"] < record["blocks"]:  # they arrived, their sender died before noting it
                store.blocks_sent(record["_id"], record["blocks"])
            return
        record = {**record, "blocks": record["blocks_sent"] + len(missing)}
        store.blocks_planned(record["_id"], record["blocks"])
        self.send_blocks(client, missing, record)

    def send_blocks(self, client: Client, blocks: list[dict], record: dict) -> None:
        """Datablocks numbered on from the record's `blocks_sent`, each claimed first (another
        process may be sending it)."""
        first = sent = record["blocks_sent"]
        while sent < first + len(blocks):
            block = blocks[sent - first]
            claim = store.claim(store.block_claim(record["_id"], sent), self.lease(client))
            if claim == store.BUSY:
                raise Busy("another catalogue_sync is sending this dataset's datablocks")
            if claim == store.TAKEN_OVER:  # its sender died or timed out: did the block arrive?
                arrived = client.origdatablock_paths(block["datasetId"])
                if all(item["path"] in arrived for item in block["dataFileList"]):
                    sent += 1
                    store.blocks_sent(record["_id"], sent)
                    continue
            client.create_origdatablock(block)
            sent += 1
            store.blocks_sent(record["_id"], sent)
            self.stats.add(blocks=1)
