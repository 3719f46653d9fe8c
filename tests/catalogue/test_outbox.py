"""The outbox as catalogue_sync reads it: whole once, then by `_id` only. On FerretDB any other
filter scans the collection, so with a backlog of 20,000 jobs a batch that asked MongoDB which jobs
are due (and removed them by `$in`) spent ~2 s on it. What the sync sends to `catalogue_jobs` is
counted here with a pymongo CommandListener on the real server."""

from datetime import UTC, datetime, timedelta

import pymongo
import pytest
from pymongo import monitoring

from catalogue import selectors, store
from catalogue.services import Sync, enqueue_sheet
from core import mongo

from .test_sync import pid_of, sync_all


def filters_of(name: str, command: dict) -> list[dict]:
    """The filters a command to a collection selects documents by (none for an insert)."""
    if name == "find":
        return [command.get("filter", {})]
    if name == "delete":
        return [delete["q"] for delete in command["deletes"]]
    if name == "update":
        return [update["q"] for update in command["updates"]]
    if name in ("findAndModify", "count", "distinct"):
        return [command.get("query", {})]
    if name == "aggregate":
        return [stage["$match"] for stage in command["pipeline"] if "$match" in stage] or [{}]
    return []


def by_id(filter_: dict) -> bool:
    """Served by FerretDB from its `_id` index: `_id` equal to one value (`$in` scans)."""
    return isinstance(filter_.get("_id"), str)


class OutboxCommands(monitoring.CommandListener):
    """Every command sent to the outbox's collection, as (command, filter)."""

    def __init__(self):
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        name = event.command_name
        if event.command.get(name) == store.JOBS:
            self.commands += [(name, filter_) for filter_ in filters_of(name, event.command) or [{}]]

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def scans(self) -> list[tuple[str, dict]]:
        """The commands whose filter is not by `_id`: each reads the whole outbox on FerretDB."""
        return [(name, filter_) for name, filter_ in self.commands if name != "insert" and not by_id(filter_)]

    def finds(self) -> list[tuple[str, dict]]:
        """The reads that scan the outbox (a small one's jobs done are removed by one `$in`)."""
        return [(name, filter_) for name, filter_ in self.scans() if name == "find"]


@pytest.fixture
def outbox_commands(mongo_db, settings):
    """The commands every labbook client in this process sends to `catalogue_jobs` meanwhile."""
    listener = OutboxCommands()
    client = pymongo.MongoClient(settings.MONGODB_URI, tz_aware=True, event_listeners=[listener])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mongo, "client_for", lambda uri: client)
        yield listener
    client.close()


@pytest.fixture
def backlog(catalogued):
    """200 jobs queued, due in an hour: an outbox big enough that jobs done are removed by `_id`."""
    later = datetime.now(UTC) + timedelta(hours=1)
    queued = {(f"later-{i}", 1): later for i in range(200)}
    return store.enqueue(catalogued.sheet.slug, list(queued), not_before=queued)


def abandon(sync: Sync) -> None:
    """As if its process were killed: its threads end, nothing more is written or said."""
    for pool in (sync.scanner, sync.readers, sync.pool):
        pool.shutdown()


def test_a_pass_reads_the_outbox_whole_once_then_batches_go_by_id(catalogued, scicat, backlog, outbox_commands):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(30)]
    sync = Sync(batch_size=10)
    assert sync.run_once() == 30  # three batches
    assert set(scicat.state.datasets) == {pid_of(entry) for entry in entries}
    assert outbox_commands.finds() == [("find", {})]  # the whole read, at the start
    deletes = [filter_ for name, filter_ in outbox_commands.commands if name == "delete"]
    assert [len(filter_["_id"]["$in"]) for filter_ in deletes] == [30]  # one removal a pass, not one a batch
    outbox_commands.commands.clear()
    assert sync.run_once() == 0
    assert outbox_commands.commands == []  # an idle pass does not touch the outbox
    assert store.counts() == {"registered": 30, "pending": 200, "failed": 0}


def test_jobs_the_scan_enqueues_are_sent_in_the_same_pass_without_reading_the_outbox(
    catalogued, scicat, backlog, outbox_commands, settings
):
    settings.CATALOGUE_CATCH_UP_CHANGES = 8
    sync = Sync(batch_size=10)
    sync.run_once()  # the outbox read (empty)
    few = [catalogued.entries.add(note=f"few{i}") for i in range(3)]  # read change by change
    outbox_commands.commands.clear()
    assert sync.run_once() == 3
    backlog = [catalogued.entries.add(note=f"backlog{i}") for i in range(25)]  # a sheet far behind: caught up
    assert sync.run_once() == 25
    assert set(scicat.state.datasets) == {pid_of(entry) for entry in few + backlog}
    assert outbox_commands.finds() == []
    assert store.counts() == {"registered": 28, "pending": 200, "failed": 0}


def test_a_job_requeued_on_the_web_page_is_sent_on_the_next_pass(catalogued, scicat):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(3)]
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    scicat.state.refuse_names.add(f"Shots {entries[1]['_id']}")
    sync = Sync()
    sync.run_once()
    assert store.counts() == {"registered": 2, "pending": 0, "failed": 1}
    scicat.state.refuse_names.clear()
    [failed] = store.failed_jobs()
    assert store.requeue(failed["_id"])  # the web process
    assert sync.run_once() == 1
    assert store.counts() == {"registered": 3, "pending": 0, "failed": 0}


def test_register_now_in_the_admin_is_sent_by_the_running_sync(catalogued, scicat):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(4)]
    sync = sync_all()
    mongo.database()[store.DATASETS].delete_many({})  # as if labbook had lost its records
    assert enqueue_sheet(catalogued.rule) == 4  # the admin's request, another process
    assert sync.run_once() == 4
    assert sync.stats.existed == 4 and store.counts() == {"registered": 4, "pending": 0, "failed": 0}
    assert {store.dataset(entry["_id"])["pid"] for entry in entries} == set(scicat.state.datasets)


def test_a_sync_that_stops_tells_the_running_one_of_the_jobs_it_left(catalogued, scicat):
    """`catalogue_sync --once` from cron beside the long-running one: it scanned entries that were
    not due yet (the change log's position moved past them); the running sync sends them."""
    running = Sync()
    running.run_once()
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(3)]
    once = Sync()
    once.run_once(max_jobs=0)  # scanned and enqueued, none sent
    once.close()
    assert store.counts()["pending"] == 3
    assert running.run_once() == 3
    assert set(scicat.state.datasets) == {pid_of(entry) for entry in entries}


def test_jobs_nobody_announced_are_found_by_the_periodic_whole_read(catalogued, scicat, settings):
    """A second sync killed after its scan (it could not say so): its jobs wait for the next whole
    read of the outbox, every CATALOGUE_OUTBOX_REFRESH_SECONDS."""
    settings.CATALOGUE_OUTBOX_REFRESH_SECONDS = 30
    running = Sync()
    running.run_once()
    catalogued.entries.add(note="scanned by the other")
    killed = Sync()
    killed.run_once(max_jobs=0)
    abandon(killed)
    assert running.run_once() == 0  # not read again yet: the schedule is in memory
    running.outbox_read -= 30  # half a minute later
    assert running.run_once() == 1
    assert store.counts() == {"registered": 1, "pending": 0, "failed": 0}


def test_a_sync_killed_and_restarted_keeps_every_job(catalogued, scicat, outbox_commands):
    """The schedule is only memory: a new sync reads it back from MongoDB, with each job's tries
    and due time, and the refused ones (whose newer revision done removes them by `_id`)."""
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(12)]
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    scicat.state.refuse_names.add(f"Shots {entries[0]['_id']}")
    first = Sync(batch_size=5)
    first.run_once(max_jobs=5)
    scicat.state.server_errors = 1  # the next job meets a 500: tried again later
    first.run_once(max_jobs=5)
    abandon(first)
    pending, failed = store.outbox()
    assert failed == [store.job_id(entries[0]["_id"], 1)] and any(job.attempts == 1 for job in pending)
    second = Sync()
    second.read_outbox()
    every = second.schedule.take(100, store.datetime.max.replace(tzinfo=store.UTC))
    assert {(job.id, job.attempts, job.next_try) for job in every} == {(j.id, j.attempts, j.next_try) for j in pending}
    second.schedule.give_back()
    scicat.state.refuse_names.clear()
    catalogued.entries.edit(entries[0], note="renamed")  # revision 2: the refused revision 1 goes
    outbox_commands.commands.clear()
    sync_all(second)
    assert set(scicat.state.datasets) == {pid_of(entry) for entry in entries}
    assert store.counts() == {"registered": 12, "pending": 0, "failed": 0}
    assert store.job(store.job_id(entries[0]["_id"], 1)) is None
    assert outbox_commands.finds() == []


def test_a_refused_revision_leaves_the_outbox_when_a_newer_one_is_registered(catalogued, scicat):
    entry = catalogued.entries.add(note="refused")
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    scicat.state.refuse_names.add(f"Shots {entry['_id']}")
    sync = Sync()
    sync.run_once()
    assert store.counts()["failed"] == 1
    scicat.state.refuse_names.clear()
    catalogued.entries.edit(entry, note="fixed")
    sync.run_once()
    assert store.counts() == {"registered": 1, "pending": 0, "failed": 0}
    assert store.dataset(entry["_id"])["rev"] == 2


def test_an_entrys_status_reads_its_jobs_by_id(catalogued, scicat, outbox_commands, settings):
    settings.CATALOGUE_FOLLOW_UP_SECONDS = [600]
    registered, refused, retried = (catalogued.entries.add(note=f"n{i}") for i in range(3))
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    scicat.state.refuse_names.add(f"Shots {refused['_id']}")
    sync = Sync()
    sync.run_once(max_jobs=2)  # registered (its follow-up waits ten minutes) and refused
    scicat.state.server_errors = 1
    sync.run_once()  # retried
    edited = catalogued.entries.edit(registered, energy=4.0)  # revision 2 waits for the next pass
    store.enqueue(catalogued.sheet.slug, [(edited["_id"], 2)])
    store.retry_later(store.Job.of(store.job(store.job_id(edited["_id"], 2))), "503", timedelta(minutes=5))
    outbox_commands.commands.clear()
    states = {entry["_id"]: selectors.entry_status(entry["_id"]) for entry in (registered, refused, retried)}
    assert outbox_commands.scans() == []
    assert states[registered["_id"]].state == "pending" and states[registered["_id"]].revision == 1
    assert states[registered["_id"]].error == "503" and states[registered["_id"]].attempts == 1
    assert states[refused["_id"]].state == "failed" and "is refused" in states[refused["_id"]].error
    assert states[retried["_id"]].state == "pending" and states[retried["_id"]].error.startswith("500")
    assert selectors.entry_status("no-such-entry") is None


def test_a_sheets_catch_up_reads_only_its_own_dataset_records(mongo_db):
    """A catch-up compares one sheet with the datasets recorded: it decoded every record of the lab
    (4,000 records: 255 ms, the sheet's 500 of them: 176 ms on FerretDB)."""
    store.datasets_created(
        [store.dataset_record("a-1", "a", "p/1", 2, 0), store.dataset_record("b-1", "b", "p/2", 1, 0)]
    )
    assert store.dataset_revisions("a") == {"a-1": 2}
    assert store.dataset_revisions() == {"a-1": 2, "b-1": 1}
