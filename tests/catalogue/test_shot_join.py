"""The whole path: a DAQ event on Kafka, stored by the real watcher, joined to a sheet entry by its
shot key → the dataset's scientificMetadata (values with the event's units) and its files."""

import orjson

from catalogue.builder import dataset_pid
from core.envelope import make_envelope
from tests.watcher.conftest import make_topic, producer, routes, run_watcher, wait_for  # noqa: F401
from watcher import selectors as watcher_selectors

from .test_sync import sync_all

LASER_NS = 1_764_680_400_000_000_000  # 2025-12-02 13:00 UTC


def test_event_values_and_files_reach_the_dataset(
    routes,  # noqa: F811
    run_watcher,  # noqa: F811
    make_topic,  # noqa: F811
    producer,  # noqa: F811
    catalogued,
    scicat,
):
    topic = make_topic()
    routes(topic, "diag_events")
    event = make_envelope(
        experiment="LWFA",
        source="spectrometer",
        kind="shot",
        shot_number=7,
        laser_ts_ns=LASER_NS,
        tz="UTC",
        values={"peak": 230.5, "files": [{"path": "/data/LWFA/20251202/7/spec.h5", "size": 2048, "mtime": LASER_NS}]},
        metadata={"units": {"peak": "MeV"}},
    )
    producer.send(topic, orjson.dumps(event))
    producer.flush(30)
    run_watcher()
    wait_for(lambda: watcher_selectors.events_for_shot(event["shot_key"]), message="the event joined to its shot")
    entry = catalogued.entries.add(shot_key=event["shot_key"])
    sync_all()
    dataset = scicat.state.datasets[dataset_pid(entry["_id"], "20.500.12345")]
    assert dataset["runNumber"] == "LWFA-20251202-000007"
    metadata = dataset["scientificMetadata"]["events"]["diag_events"]["spectrometer"]
    assert metadata["peak"] == {"value": 230.5, "unit": "MeV"} and "files" not in metadata
    assert metadata["laser_time"] == "2025-12-02T13:00:00.000000Z"
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    assert "/data/LWFA/20251202/7/spec.h5" in files and len(files) == 4  # the event's file and the DAQ folder's three
    assert scicat.state.invalid == []
