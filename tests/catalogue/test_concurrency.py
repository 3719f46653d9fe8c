"""Several jobs in flight at once (CATALOGUE_CONCURRENCY): what that could break. The local SciCat
takes `delay` seconds to answer each dataset request, as a real one takes 10-50 ms, so that jobs
do overlap."""

import time

import pytest

from catalogue import store
from catalogue.services import Sync, scan

from .test_faults import assert_each_once, running, wait_for
from .test_sync import pid_of, sync_all


@pytest.fixture
def slow_scicat(scicat, settings):
    settings.CATALOGUE_CONCURRENCY = 4
    scicat.state.delay = 0.03
    return scicat


def test_jobs_go_out_several_at_once_and_never_more_than_the_setting(catalogued, slow_scicat):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(24)]
    sync = sync_all()
    assert 2 <= slow_scicat.state.most_in_flight <= 4
    assert sync.stats.created == 24 and set(slow_scicat.state.datasets) == {pid_of(entry) for entry in entries}
    assert slow_scicat.state.count("POST", "/api/v4/datasets") == 24  # no create raced another (a 409)
    assert store.counts() == {"registered": 24, "pending": 0, "failed": 0}


def test_a_scicat_that_answers_at_once_gets_one_request_at_a_time_a_slow_one_several(catalogued, scicat, settings):
    """Threads only help while SciCat keeps a request waiting: against one that answers at once
    they wait for one another (Python runs one at a time), so after a first batch at the setting
    the sync works one entry at a time; when SciCat slows down it uses the setting again."""
    settings.CATALOGUE_CONCURRENCY = 4
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(40)]
    sync = Sync(batch_size=10)
    assert sync.run_once(max_jobs=10) == 10  # the first batch: four at once
    assert sync.width == 1
    scicat.state.most_in_flight = 0
    assert sync.run_once(max_jobs=20) == 20
    assert scicat.state.most_in_flight == 1 and sync.width == 1
    scicat.state.delay = 0.03  # a real SciCat's answer time
    assert sync.run_once() == 10
    assert sync.width >= 2  # fitted after the first slow batch (which ran one at a time)
    more = [catalogued.entries.add(note=f"m{i}") for i in range(12)]
    scicat.state.most_in_flight = 0
    assert sync.run_once() == 12
    assert scicat.state.most_in_flight >= 2
    assert set(scicat.state.datasets) == {pid_of(entry) for entry in entries + more}
    assert store.counts() == {"registered": 52, "pending": 0, "failed": 0}


def test_a_login_or_a_refusal_answered_at_once_does_not_narrow_a_sync_on_a_slow_scicat(catalogued, slow_scicat):
    """SciCat answers a login, or a body it refuses, sooner than it stores a dataset: timed as its
    answer time, either made a sync against a 30 ms SciCat work its next batch one entry at a time.
    So did the first job's CPU time, when it was averaged in (a process's first job loads modules)."""
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(20)]
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    slow_scicat.state.refuse_names.add(f"Shots {entries[0]['_id']}")
    sync = Sync(batch_size=10)
    assert sync.run_once(max_jobs=10) == 10  # a login first, then one refusal among the creates
    assert sync.width >= 2  # 1 + 30 ms ÷ a job's CPU time (a few ms here), at most 4
    slow_scicat.state.most_in_flight = 0
    assert sync.run_once() == 10
    assert slow_scicat.state.most_in_flight >= 2
    assert store.counts() == {"registered": 19, "pending": 0, "failed": 1}


def edit_twice(catalogued, entries: list[dict]) -> list[dict]:
    """Each entry edited twice, the scan run after each edit: two jobs per entry in the outbox."""
    for number in range(2):
        entries = [catalogued.entries.edit(entry, energy=10.0 + number) for entry in entries]
        scan()
    return entries


def test_new_entries_edited_twice_in_one_batch_are_one_create_each_at_their_last_revision(catalogued, slow_scicat):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(8)]
    scan()
    entries = edit_twice(catalogued, entries)
    assert store.counts()["pending"] == 24  # revisions 1, 2 and 3 of each
    sync_all()
    assert slow_scicat.state.count("POST", "/api/v4/datasets") == 8  # one create each, none answered 409
    assert slow_scicat.state.patches == []  # each was created at its last revision
    for entry in entries:
        assert slow_scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["labbook"]["entry_revision"] == 3
        assert store.dataset(entry["_id"])["rev"] == 3
    assert store.counts() == {"registered": 8, "pending": 0, "failed": 0}


def test_registered_entries_edited_twice_in_one_batch_are_one_patch_each_at_their_last_revision(
    catalogued, slow_scicat
):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(8)]
    sync_all()
    entries = edit_twice(catalogued, entries)
    assert store.counts()["pending"] == 16  # revisions 2 and 3 of each
    sync = sync_all()
    assert sorted(slow_scicat.state.patches) == sorted((pid_of(entry), 3) for entry in entries)
    assert sync.stats.patched == 8 and sync.stats.unchanged == 8
    for entry in entries:
        dataset = slow_scicat.state.datasets[pid_of(entry)]
        assert dataset["scientificMetadata"]["energy"] == {"value": 11.0, "unit": "J"}
        assert store.dataset(entry["_id"])["rev"] == 3
    assert store.counts() == {"registered": 8, "pending": 0, "failed": 0}


def test_an_expired_token_met_by_several_jobs_at_once_is_one_login(catalogued, slow_scicat):
    catalogued.entries.add()
    sync = sync_all()
    logins = slow_scicat.state.count("POST", "/api/v3/auth/login")
    slow_scicat.state.expire_tokens()
    for i in range(12):
        catalogued.entries.add(note=f"n{i}")
    sync_all(sync)
    assert slow_scicat.state.count("POST", "/api/v3/auth/login") == logins + 1
    assert len(slow_scicat.state.datasets) == 13 and store.counts()["failed"] == 0


@pytest.mark.slow
def test_scicat_down_with_several_jobs_in_flight_loses_and_doubles_nothing(transactional_db, catalogued, slow_scicat):
    """The server stops while answers are on their way: a dataset SciCat made but whose answer was
    lost is found by its 409 on the retry, never made twice; every job waits out the outage."""
    for i in range(120):
        catalogued.entries.add(note=f"n{i}")
    sync = Sync(batch_size=20)
    with running(sync) as runner:
        wait_for(lambda: len(slow_scicat.state.datasets) >= 30, 60, "the first datasets")
        slow_scicat.stop()
        in_flight_when_stopped = slow_scicat.state.in_flight
        time.sleep(1.5)
        assert sync.stats.retries > 0
        slow_scicat.start()
        wait_for(lambda: store.counts()["registered"] == 120 and not store.counts()["pending"], 120, "all 120")
    assert not runner.is_alive()
    print(f"in flight when SciCat stopped: {in_flight_when_stopped}; found by their 409: {sync.stats.existed}")
    assert_each_once(slow_scicat, 120)
    assert sync.stats.created + sync.stats.existed == 120
