"""Fault tests: SciCat down mid-stream, catalogue_sync killed -9 mid-batch. Each ends with every
dataset registered exactly once, its files sent once, and nothing left in the outbox."""

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from catalogue import store
from catalogue.services import Sync

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {store.counts()}"
        time.sleep(0.1)


@contextmanager
def running(sync: Sync):
    """`sync.run()` in a thread of its own while the block runs (the thread: yielded), then
    stopped, waited for and closed."""
    runner = threading.Thread(target=sync.run, name="catalogue-sync")
    runner.start()
    try:
        yield runner
    finally:
        sync.stop.set()
        runner.join(30)
        sync.close()


def assert_each_once(scicat, count: int) -> None:
    assert scicat.state.invalid == []
    assert len(scicat.state.datasets) == count
    assert scicat.state.count("POST", "/api/v4/datasets", 201) == count  # never a second create
    per_dataset = collections.Counter(
        (block["datasetId"], item["path"]) for block in scicat.state.blocks for item in block["dataFileList"]
    )
    assert set(per_dataset.values()) == {1}  # no file listed twice
    assert {pid for pid, _ in per_dataset} == set(scicat.state.datasets)
    assert store.counts() == {"registered": count, "pending": 0, "failed": 0}


def test_scicat_down_for_ten_seconds_mid_stream_of_1000_entries(transactional_db, catalogued, scicat):
    sync = Sync()
    with running(sync) as runner:
        for i in range(300):
            catalogued.entries.add(note=f"before {i}")
        wait_for(lambda: len(scicat.state.datasets) >= 100, 60, "the first datasets")
        scicat.stop()
        down_at = time.monotonic()
        for i in range(700):
            catalogued.entries.add(note=f"during {i}")
        time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        assert sync.stats.retries > 0  # it did meet the outage
        scicat.start()  # the same port
        wait_for(lambda: store.counts()["registered"] == 1000 and not store.counts()["pending"], 240, "all 1000")
    assert not runner.is_alive()
    assert_each_once(scicat, 1000)


@pytest.fixture
def sync_env(tmp_path, catalogued, scicat):
    """`manage.py catalogue_sync` subprocesses: their own migrated SQLite with the same rule."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.sqlite3'}",
        "MONGODB_DB": settings.MONGODB_DB,
        "SCICAT_USERNAME": "ingestor",
        "SCICAT_PASSWORD": "secret",
        "CATALOGUE_RETRY_BASE_SECONDS": "0.05",
        "CATALOGUE_RETRY_MAX_SECONDS": "0.4",
        "CATALOGUE_POLL_SECONDS": "0.05",
        "CATALOGUE_SETTLE_SECONDS": "0",
        "CATALOGUE_FOLLOW_UP_SECONDS": "",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)
    code = (
        "from tests.catalogue.conftest import make_sheet, make_server; from catalogue.models import Rule; "
        f"Rule.objects.create(sheet=make_sheet('{catalogued.sheet.slug}'), server=make_server('{scicat.url}'))"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    return env


def start_sync(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "catalogue_sync", "--batch-size", "20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_catalogue_sync_killed_mid_batch_and_restarted_registers_each_once(sync_env, catalogued, scicat):
    for i in range(200):
        catalogued.entries.add(note=f"entry {i}")
    first = start_sync(sync_env)
    try:
        wait_for(lambda: len(scicat.state.datasets) >= 60, 120, "the first datasets")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(scicat.state.datasets) < 200  # it died mid-stream
    second = start_sync(sync_env)
    try:
        wait_for(lambda: store.counts()["registered"] == 200 and not store.counts()["pending"], 240, "all 200")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            output, _ = second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
        print(output)
    assert second.returncode == 0, output
    assert "catalogue_sync:" in output
    assert_each_once(scicat, 200)


def test_two_syncs_racing_make_each_dataset_once(transactional_db, catalogued, scicat):
    """Two catalogue_sync processes on one outbox (a second started by mistake, or cron's --once
    beside the long-running one): the deterministic pid makes the slower one's create a 409."""
    for i in range(100):
        catalogued.entries.add(note=f"race {i}")
    syncs = [Sync(batch_size=10) for _ in range(2)]
    with running(syncs[0]), running(syncs[1]):
        wait_for(lambda: store.counts()["registered"] == 100 and not store.counts()["pending"], 120, "all 100")
    assert_each_once(scicat, 100)
    assert sum(sync.stats.created for sync in syncs) == 100


def test_scicat_down_the_sync_backs_off_as_a_whole_not_one_request_per_job(transactional_db, catalogued, scicat):
    """While SciCat is unreachable each pass tries a few jobs (those in flight) and the next pass
    waits twice as long, up to CATALOGUE_RETRY_MAX_SECONDS (0.4 s here): not every queued job once."""
    for i in range(200):
        catalogued.entries.add(note=f"n{i}")
    scicat.stop()
    sync = Sync()
    with running(sync):
        time.sleep(3)  # passes after 0, 0.05, 0.15, 0.35, 0.75, 1.15 … s: about ten
    assert 1 <= sync.stats.retries <= 15 * settings.CATALOGUE_CONCURRENCY
    assert store.counts() == {"registered": 0, "pending": 200, "failed": 0}


def test_a_job_failing_unexpectedly_is_retried_and_the_sync_goes_on(transactional_db, catalogued, scicat):
    """A proxy answers one request with its HTML page instead of SciCat's JSON: that job is tried
    again later, the others go on, and catalogue_sync keeps running (scripts/processes stops every
    process of the lab when one ends)."""
    for i in range(3):
        catalogued.entries.add(note=f"n{i}")
    scicat.state.proxy_pages = 1
    sync = Sync()
    with running(sync) as runner:
        wait_for(lambda: store.counts()["registered"] == 3 or not runner.is_alive(), 30, "all 3")
        assert runner.is_alive()
    assert scicat.state.proxy_pages == 0 and sync.stats.retries == 1
    assert_each_once(scicat, 3)


def test_a_claim_left_by_a_dead_sync_is_taken_over_by_one_of_two_racing(mongo_db):
    """Two syncs meet the same expired claim at once (both work the same due jobs in the same
    order): one takes it over, the other waits; both going on would send a datablock twice."""
    both = 0
    for trial in range(30):
        claim_id = store.block_claim(f"entry-{trial}", 1)
        mongo_db[store.CLAIMS].insert_one({"_id": claim_id, "until": store.datetime.now(store.UTC) - timedelta(1)})
        start, outcomes = threading.Barrier(2), []

        def take(claim_id=claim_id, start=start, outcomes=outcomes):
            start.wait()
            outcomes.append(store.claim(claim_id, timedelta(seconds=30)))

        racers = [threading.Thread(target=take) for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        both += store.BUSY not in outcomes
    assert both == 0, f"both took the claim over in {both} of 30 races"


def test_the_configuration_database_unreachable_for_a_moment_does_not_end_the_sync(
    transactional_db, catalogued, scicat, monkeypatch
):
    """SQLite busy or PostgreSQL restarting while the sync reads its rules: it tries again, it
    does not end (scripts/processes would stop every process of the lab with it)."""
    from django.db import OperationalError

    from catalogue import services

    catalogued.entries.add(note="after the hiccup")
    rules, failures = services.active_rules, [OperationalError("database is locked")]

    def flaky_rules():
        if failures:
            raise failures.pop()
        return rules()

    monkeypatch.setattr(services, "active_rules", flaky_rules)
    sync = Sync()
    with running(sync) as runner:
        wait_for(lambda: store.counts()["registered"] == 1 or not runner.is_alive(), 30, "the entry")
        assert runner.is_alive() and not failures
    assert_each_once(scicat, 1)


def test_a_request_cut_off_by_a_killed_sync_is_dropped_by_the_local_scicat_not_judged(scicat):
    """A sync killed -9 between a request's headers and its body: the tests' SciCat read the
    missing body as `null` and recorded it as an invalid body the sync had sent, failing
    test_catalogue_sync_killed_mid_batch_and_restarted_registers_each_once now and then."""
    address = urlsplit(scicat.url)
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(
            b"POST /api/v3/auth/login HTTP/1.1\r\nHost: scicat\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n"
        )  # and no body
    time.sleep(0.5)  # the server reads to the closed connection's end at once
    assert scicat.state.invalid == [] and scicat.state.requests == []
