"""Files the DAQ writes after the dataset was sent: an event naming them ingested late, a listed
folder filled later. They reach SciCat without an edit of the entry, each once, in new
OrigDatablocks of the same dataset (never a second dataset, never a PATCH)."""

import collections
import signal
import threading
from datetime import UTC, datetime

import orjson
import pytest

from catalogue import selectors, store
from catalogue.services import Sync
from core import mongo
from core.envelope import make_envelope
from tests.watcher.conftest import add_route_in, make_topic, producer, routes, run_watcher  # noqa: F401
from watcher import selectors as watcher_selectors

from .test_faults import running, start_sync, sync_env, wait_for  # noqa: F401
from .test_sync import pid_of, sync_all

LASER_NS = 1_764_680_400_000_000_000  # 2025-12-02 13:00 UTC


def camera_event(*paths: str, shot_number: int = 7) -> dict:
    """The camera's event of the shot, naming the frames it wrote."""
    files = [{"path": path, "size": 2 * 1024**3, "mtime": LASER_NS + 60 * 10**9} for path in paths]
    return make_envelope(
        experiment="LWFA",
        source="camera",
        kind="shot",
        shot_number=shot_number,
        laser_ts_ns=LASER_NS,
        tz="UTC",
        values={"exposure": 0.01, "files": files},
        metadata={"units": {"exposure": "s"}},
    )


def sent_files(scicat, entry: dict) -> collections.Counter:
    blocks = [block for block in scicat.state.blocks if block["datasetId"] == pid_of(entry)]
    return collections.Counter(item["path"] for block in blocks for item in block["dataFileList"])


def listings(scicat) -> int:
    return scicat.state.count("GET", "/api/v4/origdatablocks")


@pytest.fixture
def camera(routes, run_watcher, make_topic, producer):  # noqa: F811
    """A watcher storing the camera topic's events; `send(event)` and wait until the watcher had it."""
    topic = make_topic()
    routes(topic, "camera_events")
    watcher = run_watcher()

    def send(event: dict) -> None:
        seen = watcher.stored + watcher.duplicates
        producer.send(topic, orjson.dumps(event))
        producer.flush(30)
        wait_for(lambda: watcher.stored + watcher.duplicates > seen, 30, "the watcher to store the event")

    return type("Camera", (), {"send": staticmethod(send), "topic": topic})


def test_files_of_an_event_ingested_after_registration_reach_scicat_without_an_edit(catalogued, scicat, camera):
    """The camera's event comes a minute after the dataset went out: its frames go in one new
    OrigDatablock of that dataset while two syncs run; the same event ingested again sends nothing."""
    late = camera_event("/data/LWFA/20251202/7/frame.h5", "/data/LWFA/20251202/7/frame2.h5")
    entry = catalogued.entries.add(shot_key=late["shot_key"])
    sync_all()
    assert len(scicat.state.blocks) == 2  # the folder's three files
    first, second = Sync(), Sync()
    with running(first), running(second):
        camera.send(late)
        wait_for(lambda: len(scicat.state.blocks) == 3 and not store.counts()["pending"], 30, "the frames")
        before = listings(scicat)
        camera.send(late)  # the same event again (a replay)
        wait_for(lambda: listings(scicat) > before and not store.counts()["pending"], 30, "the second look")
    new_block = scicat.state.blocks[2]
    assert new_block["datasetId"] == pid_of(entry)
    assert sorted(item["path"] for item in new_block["dataFileList"]) == [
        "/data/LWFA/20251202/7/frame.h5",
        "/data/LWFA/20251202/7/frame2.h5",
    ]
    assert len(scicat.state.blocks) == 3 and set(sent_files(scicat, entry).values()) == {1}
    assert scicat.state.count("POST", "/api/v4/datasets") == 1 and scicat.state.count("PATCH", "/api/v4/") == 0
    record = store.dataset(entry["_id"])
    assert record["blocks"] == record["blocks_sent"] == 3 and record["rev"] == 1
    assert scicat.state.invalid == []


def test_files_of_an_event_ingested_before_registration_go_with_it_and_cost_no_second_look(
    catalogued, scicat, camera, settings
):
    """An event in before its entry's dataset is due is the registration's to list: no files job,
    no listing."""
    settings.CATALOGUE_SETTLE_SECONDS = 3600  # the shot settles in an hour (the laser time: now)
    event = camera_event("/data/LWFA/20251202/8/frame.h5", shot_number=8)
    entry = catalogued.entries.add(shot_key=event["shot_key"])
    Sync().run_once()  # enqueued, not due
    logged = watcher_selectors.file_log_end()
    camera.send(event)
    wait_for(lambda: watcher_selectors.file_log_end() > logged, 30, "the watcher to log the event's files")
    Sync().run_once()
    assert store.counts()["pending"] == 1  # the registration only
    registration = store.job_id(entry["_id"], 1)
    mongo.database()[store.JOBS].update_one({"_id": registration}, {"$set": {"next_try": datetime.now(UTC)}})
    sync_all()
    assert sent_files(scicat, entry)["/data/LWFA/20251202/8/frame.h5"] == 1
    assert listings(scicat) == 0 and len(scicat.state.blocks) == 2  # the frame and the folder's three


def test_a_file_written_into_a_listed_folder_after_registration_is_sent_by_the_follow_up(catalogued, scicat, settings):
    settings.CATALOGUE_FOLLOW_UP_SECONDS = [0.5, 1.0]
    entry = catalogued.entries.add()
    Sync().run_once()
    assert len(scicat.state.blocks) == 2 and store.counts()["pending"] == 2  # the two follow-ups
    assert selectors.entry_status(entry["_id"]).state == "registered"  # not "waiting for SciCat" for ten minutes
    (catalogued.folder / "late.h5").write_bytes(b"z" * 3)  # the camera's frame, after the dataset went out
    before = listings(scicat)
    sync_all()
    assert sent_files(scicat, entry)[str(catalogued.folder / "late.h5")] == 1
    assert len(scicat.state.blocks) == 3 and set(sent_files(scicat, entry).values()) == {1}
    assert listings(scicat) == before + 2  # each follow-up one listing; the second found nothing to send
    assert scicat.state.count("POST", "/api/v4/datasets") == 1 and scicat.state.count("PATCH", "/api/v4/") == 0
    assert store.counts() == {"registered": 1, "pending": 0, "failed": 0}


@pytest.mark.slow
@pytest.mark.parametrize("arrived", [False, True], ids=["block-lost", "block-arrived"])
def test_sync_killed_between_the_listing_and_the_datablock_sends_the_late_file_once_after_restart(
    sync_env,  # noqa: F811
    catalogued,
    scicat,
    camera,
    arrived,
):
    late = camera_event("/data/LWFA/20251202/9/frame.h5", shot_number=9)
    entry = catalogued.entries.add(shot_key=late["shot_key"])
    sync_all()  # registered, and the file log's position taken
    add_route_in(sync_env, camera.topic, "camera_events")
    camera.send(late)
    scicat.state.hold_blocks, scicat.state.drop_held = threading.Event(), not arrived
    first = start_sync(sync_env)
    try:
        wait_for(lambda: scicat.state.held, 60, "the late file's datablock on its way")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    scicat.state.hold_blocks.set()
    wait_for(lambda: len(scicat.state.blocks) == 2 + arrived, 10, "the held request answered")
    scicat.state.hold_blocks = None
    second = start_sync(sync_env)
    try:
        wait_for(lambda: len(scicat.state.blocks) == 3 and not store.counts()["pending"], 60, "the file, after restart")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            output, _ = second.communicate(timeout=30)
        finally:
            if second.poll() is None:
                second.kill()
    assert second.returncode == 0, output
    assert sent_files(scicat, entry)["/data/LWFA/20251202/9/frame.h5"] == 1
    assert set(sent_files(scicat, entry).values()) == {1}
    assert scicat.state.count("POST", "/api/v4/datasets") == 1 and scicat.state.count("PATCH", "/api/v4/") == 0
