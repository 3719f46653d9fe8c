"""The outbox's pending jobs as `catalogue_sync` holds them in memory, by when each is due.

FerretDB answers only `_id` look-ups from an index (README, Design), so the query "the jobs due,
earliest first" scans the whole outbox: with 20,000 jobs queued (a rule newly enabled on a big
sheet) each batch's read took ~1 s and its `$in` removal another, 11 ms a job. The sync reads the
outbox whole once, at its start, and keeps this schedule: the jobs it enqueues itself are added as
it writes them, a retried one moves, a refused one is noted, a done one goes (`store.jobs_done`).
What other processes change (a re-queue on the web page, "register now") is read again whole when
they say so, and every CATALOGUE_OUTBOX_REFRESH_SECONDS (`Sync.read_outbox`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from datetime import datetime

from . import store


class Schedule:
    """Pending jobs by due time; those handed to a batch are `taken` until it says what became of
    them (done, retried, refused), and go back as they were otherwise. Thread-safe: the workers of
    a batch report into it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[str, tuple[int, store.Job]] = {}  # job id → (its entry in the heap, the job)
        self.heap: list[tuple[datetime, int, str]] = []  # (next try, entry, job id); stale entries skipped
        self.taken: dict[str, store.Job] = {}
        self.failed: set[str] = set()  # refused jobs' ids: a newer revision done removes them
        self.order = itertools.count()

    def load(self, pending: list[store.Job], failed: list[str]) -> None:
        """Forget everything and hold what one read of the outbox found."""
        with self.lock:
            self.waiting, self.heap, self.taken, self.failed = {}, [], {}, set(failed)
            for job in pending:
                self._add(job)

    def add(self, jobs: list[store.Job]) -> None:
        """Jobs enqueued (or retried: the job with its new next try) by this process."""
        with self.lock:
            for job in jobs:
                self._add(job)

    def _add(self, job: store.Job) -> None:
        self.taken.pop(job.id, None)
        self.failed.discard(job.id)
        number = next(self.order)
        self.waiting[job.id] = (number, job)
        heapq.heappush(self.heap, (job.next_try, number, job.id))

    def take(self, limit: int, now: datetime) -> list[store.Job]:
        """Up to `limit` jobs due by `now`, the earliest first."""
        jobs = []
        with self.lock:
            while self.heap and len(jobs) < limit and self.heap[0][0] <= now:
                _, number, job_id = heapq.heappop(self.heap)
                if self.waiting.get(job_id, (None,))[0] != number:
                    continue  # moved or removed since
                _, job = self.waiting.pop(job_id)
                self.taken[job_id] = job
                jobs.append(job)
        return jobs

    def give_back(self) -> None:
        """Jobs taken that nothing became of (the batch stopped first, or MongoDB failed): due as before."""
        with self.lock:
            for job in list(self.taken.values()):
                self._add(job)

    def done(self, job: store.Job) -> list[str]:
        """A job done: it, and its entry's jobs of earlier revisions this process knows (pending or
        refused), leave the schedule; returns the ids of those earlier ones, to remove from MongoDB
        too (the dataset holds a newer revision now)."""
        older = []
        with self.lock:
            self.taken.pop(job.id, None)
            if job.kind == store.FILES:  # a files job is not a revision
                return older
            for rev in range(1, job.rev):
                job_id = store.job_id(job.entry, rev)
                if self.waiting.pop(job_id, None) or self.taken.pop(job_id, None) or job_id in self.failed:
                    self.failed.discard(job_id)
                    older.append(job_id)
        return older

    def refused(self, job: store.Job) -> None:
        with self.lock:
            self.taken.pop(job.id, None)
            self.failed.add(job.id)

    def __len__(self) -> int:
        """The jobs in the outbox as far as this process knows: pending (waiting or taken) and refused."""
        with self.lock:
            return len(self.waiting) + len(self.taken) + len(self.failed)

    def next_due(self) -> datetime | None:
        with self.lock:
            while self.heap and self.waiting.get(self.heap[0][2], (None,))[0] != self.heap[0][1]:
                heapq.heappop(self.heap)  # stale
            return self.heap[0][0] if self.heap else None
