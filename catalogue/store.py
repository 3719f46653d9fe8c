"""All MongoDB access of the catalogue: the outbox of dataset jobs, the datasets registered, and
how far the scan of each sheet's change log got.

FerretDB answers only `_id` look-ups from an index (README, Design), so every write and read on
the hot path is by `_id`: a job is `<entry id>|r<revision>` (enqueueing twice is a duplicate key,
ignored), a dataset record is the entry id. A job leaves the outbox when it is done, so the one
filtered read (the jobs due) scans only outstanding work, not history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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

    @classmethod
    def of(cls, document: dict) -> Job:
        return cls(
            document["_id"],
            document["entry"],
            document["sheet"],
            document["rev"],
            document.get("attempts", 0),
            document.get("kind", ENTRY),
        )


def enqueue(
    sheet_slug: str,
    entries: list[tuple[str, int]],
    now: datetime | None = None,
    kind: str = ENTRY,
    not_before: dict[tuple[str, int], datetime] | None = None,
) -> int:
    """One job per (entry id, revision), first tried at once or at its `not_before`; a job already
    there stays as it is. Returns how many are new."""
    now = now or datetime.now(UTC)
    not_before = not_before or {}
    documents = [
        {
            "_id": job_id(entry_id, rev),
            "entry": entry_id,
            "sheet": sheet_slug,
            "rev": rev,
            "status": PENDING,
            "attempts": 0,
            "next_try": max(now, not_before.get((entry_id, rev), now)),
            "created": now,
            "last_error": "",
            "kind": kind,
        }
        for entry_id, rev in entries
    ]
    return mongo.insert_by_id(mongo.database()[JOBS], documents).count


def files_job_id(entry_id: str, cause: str) -> str:
    """A files job of an entry: `cause` is the watcher's file log entry (`e<n>`) or a follow-up of
    a listed folder (`l<n>`), so the same cause seen twice is one job."""
    return f"{entry_id}|files|{cause}"


def enqueue_files(sheet_slug: str, jobs: dict[str, tuple[str, int, datetime]]) -> int:
    """Files jobs, by id: (entry id, its revision, first tried at); one already there stays as it
    is. The same outbox as `enqueue`'s: retried, shown when refused, gone when done."""
    now = datetime.now(UTC)
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
            "kind": FILES,
        }
        for job_id_, (entry_id, rev, not_before) in jobs.items()
    ]
    return mongo.insert_by_id(mongo.database()[JOBS], documents).count


def job(job_id_: str) -> dict | None:
    return mongo.database()[JOBS].find_one({"_id": job_id_})


def due_jobs(limit: int, now: datetime | None = None) -> list[Job]:
    now = now or datetime.now(UTC)
    documents = mongo.database()[JOBS].find({"status": PENDING, "next_try": {"$lte": now}}).sort("next_try", 1)
    return [Job.of(document) for document in documents.limit(limit)]


def next_due() -> datetime | None:
    document = mongo.database()[JOBS].find_one({"status": PENDING}, sort=[("next_try", 1)], projection={"next_try": 1})
    return document["next_try"] if document else None


def jobs_done(jobs: list[Job]) -> None:
    """Remove finished jobs, one write for a batch (FerretDB: each write costs milliseconds)."""
    if len(jobs) == 1:
        mongo.database()[JOBS].delete_one({"_id": jobs[0].id})
    elif jobs:
        mongo.database()[JOBS].delete_many({"_id": {"$in": [job.id for job in jobs]}})


def retry_later(job: Job, error: str, delay: timedelta) -> None:
    now = datetime.now(UTC)
    mongo.database()[JOBS].update_one(
        {"_id": job.id},
        {"$set": {"next_try": now + delay, "last_error": error, "tried": now}, "$inc": {"attempts": 1}},
    )


def fail(job: Job, error: str) -> None:
    """SciCat refused the content: no retry until somebody re-queues it."""
    now = datetime.now(UTC)
    mongo.database()[JOBS].update_one(
        {"_id": job.id}, {"$set": {"status": FAILED, "last_error": error, "tried": now}, "$inc": {"attempts": 1}}
    )


def requeue(job_id_: str) -> bool:
    result = mongo.database()[JOBS].update_one(
        {"_id": job_id_, "status": FAILED}, {"$set": {"status": PENDING, "next_try": datetime.now(UTC), "attempts": 0}}
    )
    return result.modified_count == 1


def drop_older_jobs(entry_id: str, rev: int) -> None:
    """Failed jobs of earlier revisions: the dataset now holds a newer one."""
    mongo.database()[JOBS].delete_many({"_id": {"$in": [job_id(entry_id, n) for n in range(1, rev)]}})


def failed_jobs(limit: int = 200) -> list[dict]:
    """The refused jobs, newest first, each with its `_id` also as `id` (templates read no `_`)."""
    jobs = mongo.database()[JOBS].find({"status": FAILED}).sort("tried", -1).limit(limit)
    return [{**job, "id": job["_id"]} for job in jobs]


def retried_jobs(limit: int = 200) -> list[dict]:
    """Pending jobs that failed at least once (SciCat down, an answer no SciCat gives), the latest
    tried first, each with `id`: what "pending" is waiting for."""
    jobs = mongo.database()[JOBS].find({"status": PENDING, "attempts": {"$gt": 0}}).sort("tried", -1).limit(limit)
    return [{**job, "id": job["_id"]} for job in jobs]


def jobs_of_entry(entry_id: str) -> list[dict]:
    return list(mongo.database()[JOBS].find({"entry": entry_id}))


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


def dataset_revisions() -> dict[str, int]:
    """Every dataset recorded: entry (or run) id → the revision SciCat has; one read."""
    return {record["_id"]: record["rev"] for record in mongo.database()[DATASETS].find({}, {"rev": 1})}


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
