"""MongoDB killed under the shot sheet: nothing typed is lost, the table stays readable."""

import pytest

from core import mongo

pytestmark = pytest.mark.slow


def test_mongodb_gone_keeps_the_typed_entry_and_the_table_as_it_was(admin_client, sheet, private_mongodb):
    first = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1.5", "save": "1"})
    assert first.status_code == 302
    assert "Al" in admin_client.get("/sheets/test/").content.decode()

    private_mongodb.kill()
    typed = {
        "target": "Cu",
        "energy": "7.25",
        "shots_on_target": "3",
        "note": "after the realignment",
        "comment": "fired at 03:12",
        "save": "1",
    }
    refused = admin_client.post("/sheets/test/new/", typed)
    page = refused.content.decode()
    assert refused.status_code == 503 and "Not saved: the database cannot be reached" in page
    assert 'value="7.25"' in page and 'value="after the realignment"' in page and "fired at 03:12" in page
    assert '<option value="Cu" selected>' in page

    stale = admin_client.get("/sheets/test/")
    assert stale.status_code == 200 and "this is the table as it was at" in stale.content.decode()
    assert "1.5" in stale.content.decode()
    assert admin_client.get("/sheets/test/export.csv").status_code == 503  # never an export missing entries

    private_mongodb.start()
    assert admin_client.post("/sheets/test/new/", typed).status_code == 302
    stored = sorted(e["values"]["energy"] for e in mongo.database()["entries"].find({"sheet": "test"}))
    assert stored == [1.5, 7.25]
    fresh = admin_client.get("/sheets/test/").content.decode()
    assert "7.25" in fresh and "table as it was" not in fresh


def test_mongodb_lost_midway_through_an_import_leaves_nothing_of_it_in_the_sheet(
    admin_client, sheet, private_mongodb, monkeypatch
):
    from pymongo.errors import PyMongoError

    from shotsheet import importer, store, table

    rows = [[str(n % 100), "Al"] for n in range(1, 201)]

    def import_rows(rows):
        stored, checked = importer.import_grid(
            sheet, importer.Grid("log.csv", [["Energy [J]", "target"], *rows]), author="t"
        )
        return stored, checked.problems

    real_finish = store.finish_import

    def server_lost_before_the_import_is_done(import_id):
        private_mongodb.kill()  # every entry is written; the marker that makes them count is not
        real_finish(import_id)

    monkeypatch.setattr(store, "finish_import", server_lost_before_the_import_is_done)
    with pytest.raises(PyMongoError):
        import_rows(rows)
    monkeypatch.undo()
    private_mongodb.start()
    table.forget("test")  # as a restarted web process: everything read afresh

    assert mongo.database()["entries"].count_documents({"sheet": "test"}) == 200  # in MongoDB …
    assert table.table("test").find({}, []) == []  # … but not part of the sheet
    assert admin_client.get("/sheets/test/export.json").json() == []

    assert import_rows(rows[:3]) == (3, [])
    newest_first = [e["values"]["energy"] for e in table.table("test").find({}, table.DEFAULT_ORDER)]
    assert newest_first == [3.0, 2.0, 1.0]  # the log's row order kept
