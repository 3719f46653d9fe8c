"""Datasets that change after they were registered: an edit racing another sync's edit, and files
the DAQ wrote after the dataset was created. Neither may leave SciCat holding less than labbook."""

import time
from datetime import datetime, timedelta

from catalogue import scicat as scicat_client
from catalogue import store
from catalogue.scicat import Client
from catalogue.services import Sync
from core import mongo

from .test_sync import pid_of, sync_all


def held_revision(scicat, entry: dict) -> int:
    return scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["labbook"]["entry_revision"]


def test_a_stale_patch_never_lands_after_a_newer_one(catalogued, scicat, monkeypatch):
    """Sync B has read revision 2 and is about to PATCH it when the entry is edited again and
    sync A sends revision 3. B's PATCH must not leave SciCat at revision 2 for good."""
    entry = catalogued.entries.add(energy=1.0)
    sync_all()
    second = catalogued.entries.edit(entry, energy=2.0)
    patch = Client.patch_dataset
    raced = []

    def patch_after_a_newer_edit(client, pid, body):
        if not raced:
            raced.append(True)
            catalogued.entries.edit(second, energy=3.0)
            Sync().run_once()  # sync A, while B is between its read and its PATCH
        return patch(client, pid, body)

    monkeypatch.setattr(Client, "patch_dataset", patch_after_a_newer_edit)
    Sync().run_once()  # sync B
    assert raced
    sync_all()
    assert held_revision(scicat, entry) == 3
    assert scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["energy"] == {"value": 3.0, "unit": "J"}
    assert store.dataset(entry["_id"])["rev"] == 3
    assert scicat.state.count("POST", "/api/v4/datasets") == 1


def test_files_written_after_registration_are_sent_with_the_next_edit(catalogued, scicat):
    entry = catalogued.entries.add()
    sync_all()
    assert len(scicat.state.blocks) == 2  # a.h5 b.h5 | c.tiff (two files per block)
    for name in ("d.h5", "e.h5", "f.h5"):
        (catalogued.folder / name).write_bytes(b"y" * 7)
    edited = catalogued.entries.edit(entry, note="the camera's files are in")
    sync_all()
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    expected = [str(catalogued.folder / name) for name in ("a.h5", "b.h5", "c.tiff", "d.h5", "e.h5", "f.h5")]
    assert sorted(files) == sorted(expected)  # each once
    assert [len(block["dataFileList"]) for block in scicat.state.blocks] == [2, 1, 2, 1]
    record = store.dataset(entry["_id"])
    assert record["blocks"] == record["blocks_sent"] == 4 and record["rev"] == 2
    assert scicat.state.invalid == []
    catalogued.entries.edit(edited, note="again")
    sync_all()  # nothing new on disk: no block
    assert len(scicat.state.blocks) == 4


def test_a_dataset_waits_for_the_files_of_its_shot_to_settle(catalogued, scicat, settings):
    """An entry saved at the shot (the form prefilled from the relay) is not registered before the
    DAQ's files of that shot had CATALOGUE_SETTLE_SECONDS to arrive; an old shot goes at once."""
    settings.CATALOGUE_SETTLE_SECONDS = 1.5
    old = catalogued.entries.add(note="logged an hour after the shot")
    mongo.database()["entries"].update_one(
        {"_id": old["_id"]}, {"$set": {"laser_ts_ns": time.time_ns() - 3600 * 10**9}}
    )
    fresh = catalogued.entries.add(note="saved at the shot")
    Sync().run_once()
    assert pid_of(old) in scicat.state.datasets and pid_of(fresh) not in scicat.state.datasets
    (catalogued.folder / "late.h5").write_bytes(b"z" * 3)  # the camera's file, 0.1 s later
    sync_all()
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    assert files.count(str(catalogued.folder / "late.h5")) == 1
    assert [b["datasetId"] for b in scicat.state.blocks].count(pid_of(fresh)) == 2  # a.h5 b.h5 | c.tiff late.h5


def test_files_of_an_edit_are_sent_even_if_listing_them_failed_after_the_patch(catalogued, scicat):
    """The edit's PATCH goes through, then SciCat fails the request that lists the dataset's
    datablocks: the retry must still send the new file, not find the dataset up to date."""
    entry = catalogued.entries.add()
    sync_all()
    (catalogued.folder / "d.h5").write_bytes(b"y" * 7)
    catalogued.entries.edit(entry, note="the camera's file is in")
    scicat.state.listing_errors = 1
    sync = sync_all()
    assert sync.stats.retries == 1 and scicat.state.listing_errors == 0
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    assert files.count(str(catalogued.folder / "d.h5")) == 1
    assert held_revision(scicat, entry) == 2
    record = store.dataset(entry["_id"])
    assert record["blocks"] == record["blocks_sent"] == 3 and record["rev"] == 2


def test_an_edit_sends_no_file_twice_when_the_datablocks_fill_more_than_a_listing_page(catalogued, scicat, monkeypatch):
    """SciCat lists a dataset's datablocks a page at a time (1,000 here, 2 in this test): a file in
    a block past the first page has arrived too, and must not go out again with the next edit."""
    monkeypatch.setattr(scicat_client, "PAGE", 2)
    catalogued.rule.server.files_per_block = 1
    catalogued.rule.server.save()
    entry = catalogued.entries.add()
    sync_all()
    assert len(scicat.state.blocks) == 3
    catalogued.entries.edit(entry, note="edited")
    sync_all()
    assert held_revision(scicat, entry) == 2
    files = [item["path"] for block in scicat.state.blocks for item in block["dataFileList"]]
    assert sorted(files) == sorted(str(catalogued.folder / name) for name in ("a.h5", "b.h5", "c.tiff"))


def test_an_update_longer_than_the_claims_lease_is_not_taken_over(transactional_db, catalogued, scicat, monkeypatch):
    """An edit brings 12 new files, one a block, to a slow SciCat: the update runs longer than one
    lease. Meanwhile the entry is edited again and a second sync meets it: that sync must wait, not
    take the dataset over — or the first, sending its files before its PATCH, would PATCH the older
    revision over the newer one. (The second sync runs after the first noted its last block, with
    the catalogue's clock moved on by one lease.)"""
    catalogued.rule.server.files_per_block = 1
    catalogued.rule.server.save()
    entry = catalogued.entries.add(energy=1.0)
    sync_all()
    for n in range(12):
        (catalogued.folder / f"late{n:02d}.h5").write_bytes(b"l" * (n + 1))
    second_revision = catalogued.entries.edit(entry, energy=2.0)
    noted, blocks_sent = [], store.blocks_sent
    lease = Sync.lease(Sync().client(catalogued.rule.server))

    class Clock(datetime):
        shift = timedelta(0)

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + cls.shift

    def a_long_time_later(entry_id, count):
        blocks_sent(entry_id, count)
        noted.append(count)
        if len(noted) == 12:  # its last block: next comes its PATCH
            Clock.shift = lease + timedelta(seconds=1)
            catalogued.entries.edit(second_revision, energy=3.0)
            Sync().run_once()  # the second sync

    monkeypatch.setattr(store, "datetime", Clock)
    monkeypatch.setattr(store, "blocks_sent", a_long_time_later)
    Sync().run_once()
    monkeypatch.setattr(store, "blocks_sent", blocks_sent)
    sync_all()
    assert len(noted) >= 12
    assert held_revision(scicat, entry) == 3
    assert scicat.state.datasets[pid_of(entry)]["scientificMetadata"]["energy"] == {"value": 3.0, "unit": "J"}
    files = [(block["datasetId"], item["path"]) for block in scicat.state.blocks for item in block["dataFileList"]]
    assert len(files) == len(set(files)) == 15, sorted(files)  # a.h5 b.h5 c.tiff and the 12, each once
    assert scicat.state.invalid == []
