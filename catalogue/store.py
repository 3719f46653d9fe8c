"""All MongoDB access of the catalogue: the outbox of dataset jobs, the datasets registered, and
how far the scan of each sheet's change log got.

FerretDB answers only `_id` look-ups from an index (README, Design), so every write and read on
the hot path is by `_id`: a job is `<entry id>|r<revision>` (enqueueing twice is a duplicate key,
ignored), a dataset record is the entry id. A job leaves the outbox when it is done. Which jobs are
due is not a query (it would scan the outbox each batch): `catalogue_sync` reads the outbox whole
once (`outbox`) and keeps its schedule in memory (catalogue/schedule.py); a process that changes
the outbox otherwise says so (`outbox_changed`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from pymongo import DeleteOne
from pymongo.errors import DuplicateKeyError

from core import mongo

JOBS = "catalogue_jobs"
DATASETS = "catalogue_datasets"
SCANS = "catalogue_scans"
CLAIMS = "catalogue_block_claims"
CLAIMED, BUSY, TAKEN_OVER = "claimed", "busy", "taken over"
PENDING, FAILED = "pending", "failed"


def job_id(entry_id: str, rev: int) -> str:
    return f"{entry_id}|r{rev}"


ENTRY, SIMULATION = "entry", "simulation"  # what a job registers: a sheet entry (raw) or a run (derived)
FILES = "files"  # a job that sends the files of a registered entry's dataset that SciCat does not list yet


@dataclass(frozen=True)
class Job:
    id: str
    entry: str  # the entry's id, or the simulation run's
    sheet: str  # "" for a simulation run
    rev: int
    attempts: int = 0
    kind: str = ENTRY
    next_try: datetime | None = None

    @classmethod
    def of(cls, document: dict) -> Job:
        return cls(
            document["_id"],
            document["entry"],
            document["sheet"],
            document["rev"],
            document.get("attempts", 0),
            document.get("kind", ENTRY),
            document.get("next_try"),
        )


def insert_jobs(sheet_slug: str, kind: str, jobs: dict[str, tuple[str, int, datetime]], now: datetime) -> list[Job]:
    """Jobs by id: (entry id, its revision, first tried at, no earlier than `now`). Those stored now
    are returned; one already there (the same `_id`) stays as it is and is left out."""
    documents = [
        {
            "_id": job_id_,
            "entry": entry_id,
            "sheet": sheet_slug,
            "rev": rev,
            "status": PENDING,
            "attempts": 0,
            "next_try": max(now, not_before),
            "created": now,
            "last_error": "",
            "kind": kind,
        }
        for job_id_, (entry_id, rev, not_before) in jobs.items()
    ]
    duplicates = set(mongo.insert_by_id(mongo.database()[JOBS], documents).duplicates)
    return [Job.of(document) for number, document in enumerate(documents) if number not in duplicates]


def enqueue(
    sheet_slug: str,
    entries: list[tuple[str, int]],
    now: datetime | None = None,
    kind: str = ENTRY,
    not_before: dict[tuple[str, int], datetime] | None = None,
) -> list[Job]:
    """One job per (entry id, revision), first tried at once or at its `not_before`; a job already
    there stays as it is. Returns the new ones."""
    now = now or datetime.now(UTC)
    not_before = not_before or {}
    jobs = {job_id(entry_id, rev): (entry_id, rev, not_before.get((entry_id, rev), now)) for entry_id, rev in entries}
    return insert_jobs(sheet_slug, kind, jobs, now)


def files_job_id(entry_id: str, cause: str) -> str:
    """A files job of an entry: `cause` is the watcher's file log entry (`e<n>`) or a follow-up of
    a listed folder (`l<n>`), so the same cause seen twice is one job."""
    return f"{entry_id}|files|{cause}"


def enqueue_files(sheet_slug: str, jobs: dict[str, tuple[str, int, datetime]]) -> list[Job]:
    """Files jobs, by id: (entry id, its revision, first tried at); one already there stays as it
    is. The same outbox as `enqueue`'s: retried, shown when refused, gone when done. Returns the new ones."""
    return insert_jobs(sheet_slug, FILES, jobs, datetime.now(UTC))


def job(job_id_: str) -> dict | None:
    return mongo.database()[JOBS].find_one({"_id": job_id_})


def outbox() -> tuple[list[Job], list[str]]:
    """The whole outbox in one read (a scan: 2-3 s for 20,000 jobs on FerretDB): the pending jobs,
    and the ids of the refused ones."""
    pending, failed = [], []
    fields = {"entry": 1, "sheet": 1, "rev": 1, "attempts": 1, "kind": 1, "next_try": 1, "status": 1}
    for document in mongo.database()[JOBS].find({}, fields):
        if document["status"] == PENDING:
            pending.append(Job.of(document))
        else:
            failed.append(document["_id"])
    return pending, failed


def jobs_done(job_ids: list[str], outbox_size: int) -> None:
    """Remove jobs in one request. FerretDB answers a `$in` by scanning the outbox (~0.07 ms a job
    in it: 0.94 s to remove 100 of 20,000) and a `DeleteOne` by `_id` from its index, but each as a
    write of its own (~0.7 ms): so `$in` only while the outbox (`outbox_size` jobs, as far as this
    process knows) holds fewer than ten jobs for each one removed."""
    if len(job_ids) > 1 and outbox_size < 10 * len(job_ids):
        mongo.database()[JOBS].delete_many({"_id": {"$in": job_ids}})
    elif job_ids:
        mongo.database()[JOBS].bulk_write([DeleteOne({"_id": job_id_}) for job_id_ in job_ids], ordered=False)


OUTBOX = "~outbox"  # the marker in SCANS a process moves when it changed the outbox (no sheet has this slug)


def outbox_marker() -> str | None:
    """What the last process that changed the outbox behind catalogue_sync's back wrote."""
    document = mongo.database()[SCANS].find_one({"_id": OUTBOX})
    return document["change"] if document else None


def outbox_changed() -> None:
    """Say that the outbox changed (a job re-queued, a sheet enqueued by hand): a running
    catalogue_sync reads it whole again on its next pass. A new random value each time, not a
    counter: FerretDB v1 loses concurrent `$inc`s (800 at once from 4 threads: 230)."""
    change = {"$set": {"change": uuid.uuid4().hex, "at": datetime.now(UTC)}}
    try:
        mongo.database()[SCANS].update_one({"_id": OUTBOX}, change, upsert=True)
    except DuplicateKeyError:  # another process made the marker at the same moment
        mongo.database()[SCANS].update_one({"_id": OUTBOX}, change)


def retry_later(job: Job, error: str, delay: timedelta) -> Job:
    """The job tried again after `delay`; returns it as it is now."""
    now = datetime.now(UTC)
    mongo.database()[JOBS].update_one(
        {"_id": job.id},
        {"$set": {"next_try": now + delay, "last_error": error, "tried": now}, "$inc": {"attempts": 1}},
    )
    return replace(job, attempts=job.attempts + 1, next_try=now + delay)


def fail(job: Job, error: str) -> None:
    """SciCat refused the content: no retry until somebody re-queues it."""
    now = datetime.now(UTC)
    mongo.database()[JOBS].update_one(
        {"_id": job.id}, {"$set": {"status": FAILED, "last_error": error, "tried": now}, "$inc": {"attempts": 1}}
    )


def requeue(job_id_: str) -> bool:
    """A refused job pending again (the web page's "Queue again"); catalogue_sync is told."""
    result = mongo.database()[JOBS].update_one(
        {"_id": job_id_, "status": FAILED}, {"$set": {"status": PENDING, "next_try": datetime.now(UTC), "attempts": 0}}
    )
    if result.modified_count != 1:
        return False
    outbox_changed()
    return True


def failed_jobs(limit: int = 200) -> list[dict]:
    """The refused jobs, newest first, each with its `_id` also as `id` (templates read no `_`)."""
    jobs = mongo.database()[JOBS].find({"status": FAILED}).sort("tried", -1).limit(limit)
    return [{**job, "id": job["_id"]} for job in jobs]


def retried_jobs(limit: int = 200) -> list[dict]:
    """Pending jobs that failed at least once (SciCat down, an answer no SciCat gives), the latest
    tried first, each with `id`: what "pending" is waiting for."""
    jobs = mongo.database()[JOBS].find({"status": PENDING, "attempts": {"$gt": 0}}).sort("tried", -1).limit(limit)
    return [{**job, "id": job["_id"]} for job in jobs]


def jobs_of_entry(entry_id: str, revisions: range, follow_ups: int = 0) -> list[dict]:
    """The entry's jobs of these revisions and its listed folder's first `follow_ups` files jobs
    that are still in the outbox, each read by `_id` (a query by entry would scan the outbox);
    a files job of the watcher's file log (`e<n>`) is not found this way."""
    ids = [job_id(entry_id, rev) for rev in revisions]
    ids += [files_job_id(entry_id, f"l{n}") for n in range(1, follow_ups + 1)]
    return [found for found in map(job, ids) if found is not None]


def counts() -> dict[str, int]:
    jobs = mongo.database()[JOBS]
    return {
        "registered": mongo.database()[DATASETS].count_documents({}),
        "pending": jobs.count_documents({"status": PENDING}),
        "failed": jobs.count_documents({"status": FAILED}),
    }


def file_checks() -> int:
    """Pending files jobs (a listed folder looked at again minutes after registration, a late
    event's files): part of "pending", though nothing is wrong."""
    return mongo.database()[JOBS].count_documents({"status": PENDING, "kind": FILES})


# --- datasets registered: entry id → pid, the entry revision SciCat has, datablocks sent -------------
def dataset(entry_id: str) -> dict | None:
    return mongo.database()[DATASETS].find_one({"_id": entry_id})


def dataset_record(entry_id: str, sheet_slug: str, pid: str, rev: int, blocks: int) -> dict:
    now = datetime.now(UTC)
    return {
        "_id": entry_id,
        "sheet": sheet_slug,
        "pid": pid,
        "rev": rev,
        "blocks": blocks,
        "blocks_sent": 0,
        "registered": now,
        "updated": now,
    }


def datasets_created(records: list[dict]) -> None:
    """Record datasets SciCat created; one a racing process recorded first (the same pid) stays."""
    mongo.insert_by_id(mongo.database()[DATASETS], records)


def dataset_revisions(sheet_slug: str | None = None) -> dict[str, int]:
    """Every dataset recorded (or the sheet's): entry (or run) id → the revision SciCat has; one read.
    FerretDB scans all records either way (~45 µs each), but sends and decodes only the sheet's."""
    only = {} if sheet_slug is None else {"sheet": sheet_slug}
    return {record["_id"]: record["rev"] for record in mongo.database()[DATASETS].find(only, {"rev": 1})}


def dataset_updated(entry_id: str, rev: int) -> None:
    """SciCat holds revision `rev` now. Called under the dataset's update claim (the `rev` filter
    is not atomic on FerretDB, the claim is)."""
    mongo.database()[DATASETS].update_one(
        {"_id": entry_id, "rev": {"$lt": rev}}, {"$set": {"rev": rev, "updated": datetime.now(UTC)}}
    )


def claim(claim_id: str, lease: timedelta) -> str:
    """Take `claim_id` for `lease`, so that of two processes racing only one goes on. An insert
    with a deterministic `_id`: FerretDB v1 does a conditional update as read-then-write (two
    racing `update_one`s on the same condition both won 24 times in 30 here), a duplicate key it
    refuses atomically. CLAIMED, BUSY, or TAKEN_OVER (a claim whose lease ran out: its holder died
    or timed out mid-way; what it did may have arrived)."""
    claims = mongo.database()[CLAIMS]
    now = in_ms(datetime.now(UTC))
    try:
        claims.insert_one({"_id": claim_id, "until": now + lease})
        return CLAIMED
    except DuplicateKeyError:
        held = claims.find_one({"_id": claim_id})
    if held and held["until"] > now:
        return BUSY
    claim = {"_id": claim_id, "until": now + lease}
    if held:  # one taker per expired claim
        return TAKEN_OVER if mongo.take_over(claims, held, claim, "until") else BUSY
    try:  # released meanwhile
        claims.insert_one(claim)
        return TAKEN_OVER
    except DuplicateKeyError:
        return BUSY


def claimed_until(claim_id: str) -> datetime | None:
    held = mongo.database()[CLAIMS].find_one({"_id": claim_id})
    return held["until"] if held else None


def extend(claim_id: str, until: datetime, lease: timedelta) -> datetime | None:
    """Move a claim this process holds (until `until`) to now + `lease`, for work longer than the
    lease it was taken with; None when it is not held so any more (it ran out and was taken over)."""
    if claimed_until(claim_id) != until:
        return None
    later = in_ms(datetime.now(UTC) + lease)
    mongo.database()[CLAIMS].update_one({"_id": claim_id, "until": until}, {"$set": {"until": later}})
    return later


def release(claim_id: str, until: datetime | None = None) -> None:
    """Give a claim up (only the one taken until `until`, when given: not another's that took it over)."""
    mongo.database()[CLAIMS].delete_one({"_id": claim_id, **({"until": until} if until else {})})


def in_ms(when: datetime) -> datetime:
    """A time as MongoDB stores it (milliseconds), so that what was written compares equal when read."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def block_claim(entry_id: str, number: int) -> str:
    """Datablock `number` of a dataset: of two processes racing on it, only one sends it."""
    return f"{entry_id}|b{number}"


def update_claim(entry_id: str) -> str:
    """A dataset being updated (its entry read, PATCHed, recorded): one process at a time, or a
    slower one could PATCH an older revision over a newer one."""
    return f"{entry_id}|update"


def blocks_sent(entry_id: str, count: int) -> None:
    mongo.database()[DATASETS].update_one({"_id": entry_id}, {"$set": {"blocks_sent": count}})


def blocks_planned(entry_id: str, count: int) -> None:
    """More datablocks to send (files written after the dataset was created)."""
    mongo.database()[DATASETS].update_one({"_id": entry_id}, {"$set": {"blocks": count}})


# --- the scan of each sheet's change log -------------------------------------------------------
def scan_position(sheet_slug: str) -> dict:
    return mongo.database()[SCANS].find_one({"_id": sheet_slug}) or {"_id": sheet_slug, "change": 0, "generation": None}


def save_scan_position(sheet_slug: str, change: int, generation: str | None) -> None:
    mongo.database()[SCANS].replace_one(
        {"_id": sheet_slug}, {"_id": sheet_slug, "change": change, "generation": generation}, upsert=True
    )


SIMULATIONS_SCAN = "~simulations"  # the scan position of simulation runs (no sheet has this slug)


def simulation_scan_position() -> datetime | None:
    document = mongo.database()[SCANS].find_one({"_id": SIMULATIONS_SCAN})
    return document.get("updated") if document else None


def save_simulation_scan_position(updated: datetime) -> None:
    mongo.database()[SCANS].update_one({"_id": SIMULATIONS_SCAN}, {"$set": {"updated": updated}}, upsert=True)


FILE_LOG_SCAN = "~files"  # how far the watcher's file log was read (no sheet has this slug)


def file_log_position() -> dict | None:
    """`{"number", "generation"}`, or None before the first scan of the log."""
    return mongo.database()[SCANS].find_one({"_id": FILE_LOG_SCAN})


def save_file_log_position(number: int, generation: str | None) -> None:
    mongo.database()[SCANS].replace_one(
        {"_id": FILE_LOG_SCAN}, {"_id": FILE_LOG_SCAN, "number": number, "generation": generation}, upsert=True
    )
