"""catalogue_sync against a small SciCat of the tests' own: every body it receives is checked
against SciCat's OpenAPI schemas, and the outbox must end with each dataset exactly once."""

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from pymongo.errors import AutoReconnect

from catalogue import store
from catalogue.builder import dataset_pid
from catalogue.models import Rule
from catalogue.services import Sync, enqueue_sheet
from core import mongo
from shotsheet import schema
from shotsheet import selectors as shotsheet_selectors
from shotsheet.entries import create_entry, set_voided

from .conftest import make_server, make_sheet


def sync_all(sync: Sync | None = None, seconds: float = 30) -> Sync:
    """Run the sync until no job is pending (failed ones stay), waiting out the backoffs."""
    sync = sync or Sync()
    deadline = time.monotonic() + seconds
    while sync.run_once() or store.counts()["pending"]:
        assert time.monotonic() < deadline, f"jobs still pending: {store.counts()}"
        time.sleep(0.02)
    return sync


def pid_of(entry: dict) -> str:
    return dataset_pid(entry["_id"], "20.500.12345")


def test_new_entry_becomes_one_dataset_with_its_files(catalogued, scicat):
    entry = catalogued.entries.add(shot_key="LWFA-20261202-000007", note="first light")
    sync = sync_all()
    dataset = scicat.state.datasets[pid_of(entry)]
    assert dataset["runNumber"] == "LWFA-20261202-000007"
    assert dataset["scientificMetadata"]["energy"] == {"value": 1.5, "unit": "J"}
    assert dataset["scientificMetadata"]["labbook"]["entry_url"].startswith("https://labbook.example.org/sheets/shots/")
    assert dataset["keywords"] == ["lwfa"] and dataset["accessGroups"] == ["lab", "guests"]
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    assert sorted(files) == sorted(str(catalogued.folder / name) for name in ("a.h5", "b.h5", "c.tiff"))
    assert [len(block["dataFileList"]) for block in scicat.state.blocks] == [2, 1]  # files_per_block
    assert scicat.state.invalid == []
    assert sync.stats.created == 1 and store.counts() == {"registered": 1, "pending": 0, "failed": 0}
    assert store.dataset(entry["_id"])["rev"] == 1
    sync_all()  # nothing new: nothing sent
    assert scicat.state.count("POST", "/api/v4/datasets") == 1


def test_edited_entry_is_one_patch_not_a_new_dataset(catalogued, scicat):
    entry = catalogued.entries.add()
    sync_all()
    edited = catalogued.entries.edit(entry, energy=2.5)
    sync = sync_all()
    assert sync.stats.patched == 1 and sync.stats.created == 0
    assert scicat.state.count("PATCH", "/api/v4/datasets/") == 1
    assert scicat.state.count("POST", "/api/v4/datasets") == 1
    dataset = scicat.state.datasets[pid_of(entry)]
    assert dataset["scientificMetadata"]["energy"] == {"value": 2.5, "unit": "J"}
    assert dataset["scientificMetadata"]["labbook"]["entry_revision"] == edited["rev"] == 2
    assert store.dataset(entry["_id"])["rev"] == 2
    assert len(scicat.state.blocks) == 2  # the files were sent once
    assert scicat.state.invalid == []


def test_voiding_an_entry_reaches_its_dataset_and_so_does_putting_it_back(catalogued, scicat):
    entry = catalogued.entries.add()
    sync_all()
    voided = set_voided(catalogued.sheet, entry, entry["rev"], author="ada", reason="wrong target")
    sync_all()
    dataset = scicat.state.datasets[pid_of(entry)]
    assert dataset["scientificMetadata"]["labbook"]["voided"]["reason"] == "wrong target"
    assert "voided" in dataset["keywords"] and scicat.state.invalid == []
    set_voided(catalogued.sheet, voided, voided["rev"], author="ada", reason=None)
    sync_all()
    dataset = scicat.state.datasets[pid_of(entry)]
    assert "voided" not in dataset["scientificMetadata"]["labbook"] and "voided" not in dataset["keywords"]
    assert scicat.state.count("PATCH", "/api/v4/datasets/") == 2 and store.dataset(entry["_id"])["rev"] == 3


def test_refused_dataset_does_not_block_the_others_and_is_requeued_from_the_page(catalogued, scicat):
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(5)]
    refused_name = f"Shots {entries[2]['_id']}"  # no shot key: the name template falls back to the entry id
    catalogued.rule.name_template = "Shots {entry_id}"
    catalogued.rule.save()
    scicat.state.refuse_names.add(refused_name)
    sync_all()
    assert len(scicat.state.datasets) == 4
    assert store.counts() == {"registered": 4, "pending": 0, "failed": 1}
    [failed] = store.failed_jobs()
    assert failed["entry"] == entries[2]["_id"] and "is refused" in failed["last_error"]
    assert failed["last_error"].startswith("400")
    sync_all()  # no retry of a refused job
    assert scicat.state.count("POST", "/api/v4/datasets", 400) == 1
    scicat.state.refuse_names.clear()  # fixed (in SciCat's rules or the catalogue rule)
    assert store.requeue(failed["_id"])
    sync_all()
    assert store.counts() == {"registered": 5, "pending": 0, "failed": 0}
    assert scicat.state.invalid == []


def test_expired_token_logs_in_again(catalogued, scicat):
    catalogued.entries.add()
    sync = sync_all()
    logins = scicat.state.count("POST", "/api/v3/auth/login")
    scicat.state.expire_tokens()
    catalogued.entries.add()
    sync_all(sync)
    assert scicat.state.count("POST", "/api/v3/auth/login") == logins + 1
    assert len(scicat.state.datasets) == 2 and store.counts()["failed"] == 0


def test_existing_pid_409_counts_as_registered(catalogued, scicat):
    entry = catalogued.entries.add()
    sync_all()
    # the dataset exists in SciCat but labbook has no record of it (another process registered it)
    mongo.database()[store.DATASETS].delete_many({})
    enqueue_sheet(catalogued.rule)
    sync = sync_all()
    assert sync.stats.existed == 1 and sync.stats.created == 0 and sync.stats.patched == 0
    assert scicat.state.count("POST", "/api/v4/datasets", 409) == 1
    assert len(scicat.state.datasets) == 1 and store.dataset(entry["_id"])["pid"] == pid_of(entry)


def test_server_errors_are_retried_with_backoff(catalogued, scicat):
    catalogued.entries.add()
    scicat.state.server_errors = 3
    sync = Sync()
    sync.run_once()
    [job], _ = store.outbox()
    assert job.attempts == 1 and store.counts()["pending"] == 1
    sync_all(sync)
    assert len(scicat.state.datasets) == 1 and sync.stats.retries == 3
    assert store.counts() == {"registered": 1, "pending": 0, "failed": 0}


def test_a_datablock_in_flight_at_a_crash_is_not_sent_twice(catalogued, scicat):
    entry = catalogued.entries.add()
    sync_all()
    record = store.dataset(entry["_id"])
    # as if the process died after SciCat took block 2 but before it was noted
    store.blocks_sent(entry["_id"], 1)
    claims = mongo.database()[store.CLAIMS]  # and its claim on block 2 ran out
    claims.update_one({"_id": f"{entry['_id']}|b1"}, {"$set": {"until": store.datetime.now(store.UTC) - timedelta(1)}})
    store.enqueue(catalogued.sheet.slug, [(entry["_id"], 1)])
    sync_all()
    assert len(scicat.state.blocks) == record["blocks"] == 2
    assert store.dataset(entry["_id"])["blocks_sent"] == 2


def test_api_v3_registers_raw_datasets(catalogued, scicat):
    scicat.state.version = "v3"
    catalogued.rule.server.api_version = "v3"
    catalogued.rule.server.save()
    entry = catalogued.entries.add()
    sync_all()
    dataset = scicat.state.datasets[pid_of(entry)]
    assert dataset["principalInvestigator"] == "Ada Lovelace" and dataset["creationLocation"] == "LWFA lab"
    catalogued.entries.edit(entry, energy=3.0)
    sync_all()
    assert scicat.state.count("PATCH", "/api/v3/datasets/") == 1
    assert scicat.state.invalid == []


def test_catalogue_sync_once_for_cron(catalogued, scicat):
    catalogued.entries.add()
    out = io.StringIO()
    call_command("catalogue_sync", "--once", stdout=out)
    assert "catalogue_sync: 1 created" in out.getvalue()
    assert len(scicat.state.datasets) == 1


def test_an_entry_whose_change_was_never_logged_is_found_by_the_reconciliation(catalogued, scicat):
    """The web process stored an entry and died before logging its change (or the log's write
    failed): the scan never sees it; the periodic reconciliation of every entry against the
    datasets recorded does, and sends only what is missing or behind."""
    logged = catalogued.entries.add(note="logged")
    sync_all()
    lost = catalogued.entries.add(note="its change never logged")
    changes = mongo.database()["entry_changes"]
    assert changes.delete_one({"entry": lost["_id"]}).deleted_count == 1
    sync = sync_all()
    assert pid_of(lost) not in scicat.state.datasets
    assert sync.reconcile() == 1
    sync_all(sync)
    assert set(scicat.state.datasets) == {pid_of(logged), pid_of(lost)}
    assert scicat.state.count("POST", "/api/v4/datasets") == 2  # the logged one was not sent again
    assert sync.reconcile() == 0


def test_a_sheet_far_behind_is_read_whole_not_change_by_change(catalogued, scicat, settings, monkeypatch):
    """The rule enabled on a sheet with a history (or "register now"): one read of the sheet and one
    of the records instead of two reads a change, and exactly the entries SciCat lacks, each once
    at its latest revision; the next change is read by itself again."""
    settings.CATALOGUE_CATCH_UP_CHANGES = 8
    registered = [catalogued.entries.add(note=f"old{i}") for i in range(3)]
    sync_all()
    edited = catalogued.entries.edit(registered[0], energy=9.0)  # SciCat has revision 1 of it
    fresh = [catalogued.entries.add(note=f"new{i}") for i in range(9)]
    fresh[0] = catalogued.entries.edit(catalogued.entries.edit(fresh[0], energy=2.0), energy=3.0)  # rev 3
    read = []
    original = shotsheet_selectors.changed_entry
    monkeypatch.setattr(shotsheet_selectors, "changed_entry", lambda *args: read.append(args) or original(*args))
    sync = sync_all()
    assert [number for _, number in read if number <= 15] == []  # 12 of 15 changes behind: read whole
    assert sync.stats.created == 9 and sync.stats.patched == 1 and sync.stats.unchanged == 0
    assert scicat.state.count("POST", "/api/v4/datasets") == 12
    assert scicat.state.datasets[pid_of(fresh[0])]["scientificMetadata"]["energy"]["value"] == 3.0
    assert store.dataset(edited["_id"])["rev"] == 2 and store.dataset(fresh[0]["_id"])["rev"] == 3
    catalogued.entries.add(note="live")
    sync_all()
    assert ("shots", 16) in read and len(scicat.state.datasets) == 13  # one change behind: read by itself


def test_a_sheet_caught_up_is_sent_a_batch_at_a_time_while_the_rest_is_read(catalogued, scicat, settings, monkeypatch):
    """A big sheet newly ruled: its first datasets go out while its later entries are still being
    read and enqueued (on FerretDB ~0.3 ms an entry with its job written, which SciCat would
    otherwise wait for). The read stops after the first batch's worth until SciCat holds a dataset; every entry
    is then registered once."""
    settings.CATALOGUE_BATCH_SIZE, settings.CATALOGUE_CATCH_UP_CHANGES = 4, 4
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(10)]
    original, first_arrived = shotsheet_selectors.sheet_entries, []

    def read_slowly(slug):
        for number, entry in enumerate(original(slug)):
            if number == 5:  # the first batch (4) is handed over by now: wait for one of its datasets
                deadline = time.monotonic() + 10
                while not scicat.state.datasets and time.monotonic() < deadline:
                    time.sleep(0.01)
                first_arrived.append(bool(scicat.state.datasets))
            yield entry

    monkeypatch.setattr(shotsheet_selectors, "sheet_entries", read_slowly)
    sync = sync_all()
    assert first_arrived == [True]  # a dataset reached SciCat before the read went past entry 5
    assert sync.stats.created == 10 and len(scicat.state.datasets) == 10
    assert {pid_of(entry) for entry in entries} == set(scicat.state.datasets)
    assert store.counts() == {"registered": 10, "pending": 0, "failed": 0}


def test_an_edit_that_takes_the_shot_key_away_takes_it_from_the_dataset_too(catalogued, scicat):
    """A PATCH sets only the fields it holds: without a runNumber the dataset went on naming the
    shot the physicist had just said the entry is not about."""
    entry = catalogued.entries.add(shot_key="LWFA-20261202-000007")
    sync_all()
    assert scicat.state.datasets[pid_of(entry)]["runNumber"] == "LWFA-20261202-000007"
    edited = catalogued.entries.edit(entry, note="not that shot")  # the fixture's edit clears the shot key
    assert edited["shot_key"] is None
    sync_all()
    dataset = scicat.state.datasets[pid_of(entry)]
    assert dataset["runNumber"] == "" and "shot" not in dataset["scientificMetadata"]
    assert scicat.state.invalid == []


def test_an_edit_that_takes_a_registered_entry_out_of_the_rules_filter_still_reaches_its_dataset(catalogued, scicat):
    """The rule takes aluminium shots; the physicist corrects an entry to copper. Its dataset is in
    SciCat already: left alone it went on saying "Al" for good. Found by the change log and by the
    reconciliation alike; an entry never registered and not selected still is not sent."""
    catalogued.rule.entry_filter = {"target": "Al"}
    catalogued.rule.save()
    entry = catalogued.entries.add(target="Al")
    other = catalogued.entries.add(target="Cu")
    sync_all()
    assert list(scicat.state.datasets) == [pid_of(entry)]
    catalogued.entries.edit(entry, target="Cu")
    sync_all()
    assert scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["target"] == "Cu"
    assert store.dataset(entry["_id"])["rev"] == 2
    edited = shotsheet_selectors.entry(entry["_id"])
    catalogued.entries.edit(edited, note="copper, really")
    changes = mongo.database()["entry_changes"]  # its change never logged: the log's last one
    changes.delete_one({"_id": changes.find_one({"entry": entry["_id"]}, sort=[("_id", -1)])["_id"]})
    sync = sync_all()
    assert "note" not in scicat.state.datasets[pid_of(entry)]["scientificMetadata"]
    assert sync.reconcile() == 1
    sync_all(sync)
    assert scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["note"] == "copper, really"
    assert pid_of(other) not in scicat.state.datasets


def test_an_entry_whose_schema_version_is_missing_beside_the_entries_is_refused_not_sent_without_values(
    catalogued, scicat
):
    """The fields of a schema version are read from MongoDB's copy; a database restored without it
    (or written before the copy existed) sent every dataset with no field value at all. Refused
    with the reason, it goes with its values and units once the copy is back."""
    entry = catalogued.entries.add(note="with units")
    schemas = mongo.database()["schema_versions"]
    saved = list(schemas.find({"sheet": catalogued.sheet.slug}))
    schemas.delete_many({"sheet": catalogued.sheet.slug})
    sync = sync_all()
    assert scicat.state.datasets == {}
    [job] = store.failed_jobs()
    assert "fields of schema version shots v1 are not stored" in job["last_error"]
    schemas.insert_many(saved)
    assert store.requeue(job["_id"])
    sync_all(sync)
    metadata = scicat.state.datasets[pid_of(entry)]["scientificMetadata"]
    assert metadata["energy"] == {"value": 1.5, "unit": "J"} and metadata["note"] == "with units"


def test_a_batchs_bookkeeping_mongodb_fails_to_write_is_written_later_each_dataset_once(
    db, mongo_db, scicat, credentials, fast_retries, monkeypatch, settings
):
    """A batch's records and job removals are written once at its end: a write that fails (FerretDB
    restarting) keeps them for the next, and the pass that meets the error is tried again without
    sending anything twice or leaving a job behind."""
    settings.CATALOGUE_BATCH_SIZE = 10
    sheet = make_sheet("plain")
    Rule.objects.create(sheet=sheet, server=make_server(scicat.url))
    version = schema.save_version(sheet)
    for i in range(25):
        create_entry(sheet, version, {"energy": float(i), "target": "Al"}, author="ada", shot_key=None)
    written, calls = store.datasets_created, []

    def restarting(records: list[dict]) -> None:
        calls.append(len(records))
        if len(calls) == 2:
            raise AutoReconnect("FerretDB restarting")
        written(records)

    monkeypatch.setattr(store, "datasets_created", restarting)
    sync = Sync()
    with pytest.raises(AutoReconnect):
        sync.run_once()
    sync_all(sync)
    assert store.counts() == {"registered": 25, "pending": 0, "failed": 0}
    assert scicat.state.count("POST", "/api/v4/datasets") == 25 and sync.stats.created == 25
