"""What other apps may read of the catalogue: an entry's SciCat status, for the entry page.

A caller that must not fail on a database outage catches `pymongo.errors.PyMongoError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from shotsheet import selectors as shotsheet_selectors

from . import store
from .models import Server

REVISIONS_LOOKED_UP = 10  # an entry's newest revisions SciCat lacks whose jobs the status reads, at most


@dataclass(frozen=True)
class EntryStatus:
    state: str  # "registered", "pending", "failed"
    pid: str = ""
    url: str = ""  # the dataset in SciCat
    revision: int | None = None  # the entry revision SciCat has
    error: str = ""  # SciCat's message of a refused job, or the last failure of one being retried
    attempts: int = 0  # tries of a pending job so far

    @property
    def label(self) -> str:
        if self.state == "registered":
            return f"in SciCat (revision {self.revision})"
        if self.state == "pending" and self.attempts:
            return f"waiting for SciCat (tried {self.attempts} time{'s' if self.attempts > 1 else ''})"
        return {"pending": "waiting for SciCat", "failed": "refused by SciCat"}[self.state]


def entry_status(entry_id: str, entry: dict | None = None) -> EntryStatus | None:
    """None when the entry is not (yet) part of the catalogue. A registered entry with a newer
    revision waiting reads "pending" (with the last failure, if it was tried; files still to send
    do not count); a refused job reads "failed", with SciCat's message.

    The jobs are read by `_id` (a query by entry would scan the outbox): those of the revisions
    after the one SciCat has, and the listed folder's follow-ups (a job of an older revision leaves
    the outbox when a newer one is done). `entry`: the entry, when the caller has read it already."""
    record = store.dataset(entry_id)
    entry = entry or shotsheet_selectors.entry(entry_id)
    held = record["rev"] if record else 0
    latest = entry.get("rev", 1) if entry else held + 1
    revisions = range(max(held + 1, latest - REVISIONS_LOOKED_UP + 1), latest + 1)
    follow_ups = len(settings.CATALOGUE_FOLLOW_UP_SECONDS) if record else 0
    jobs = store.jobs_of_entry(entry_id, revisions, follow_ups)
    failed = [job for job in jobs if job["status"] == store.FAILED]
    # a files job (late files, a listed folder's follow-up minutes later) leaves a dataset registered
    pending = [job for job in jobs if job["status"] == store.PENDING and job.get("kind") != store.FILES]
    url, pid, revision = "", "", None
    if record:
        pid, revision = record["pid"], record["rev"]
        server = Server.objects.filter(rules__sheet__slug=record["sheet"]).first()
        url = server.dataset_url(pid) if server else ""
    if failed:
        return EntryStatus("failed", pid, url, revision, failed[-1].get("last_error", ""))
    if pending:
        latest = pending[-1]
        return EntryStatus("pending", pid, url, revision, latest.get("last_error", ""), latest.get("attempts", 0))
    if record:
        return EntryStatus("registered", pid, url, revision)
    return None
