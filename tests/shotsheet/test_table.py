"""The table's read model: answers as MongoDB does, follows other writers, survives a reset database."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict

from shotsheet import importer, schema, store, table
from shotsheet.entries import create_entry, update_entry
from shotsheet.models import Field, Sheet
from shotsheet.query import table_query


@pytest.fixture
def filled_sheet(sheet, make_entry):
    Field.objects.create(
        sheet=sheet, key="tags", label="Tags", type=Field.Type.MULTI_CHOICE, choices="a\nb", position=8
    )
    Field.objects.create(sheet=sheet, key="aligned", label="Aligned", type=Field.Type.DATETIME, position=9)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    for n in range(40):
        values = {
            "target": ("Al", "Cu", "Ti")[n % 3],
            "energy": (n * 37 % 50) / 2,
            "ok": n % 4 == 0,
            "note": f"shot {n} {'jitter' if n % 5 == 0 else 'fine'}",
            "tags": [["a"], ["a", "b"], []][n % 3],
            "aligned": start + timedelta(hours=n),
        }
        if n % 7 == 0:
            values.pop("energy")  # missing values sort and filter as MongoDB does
        if n % 11 == 0:
            values["shots_on_target"] = n
        make_entry(sheet, shot_key=f"TST-20261124-{n:06d}", **values)
    return sheet


@pytest.mark.parametrize(
    "params",
    [
        "",
        "sort=energy",
        "sort=-energy",
        "sort=target",
        "sort=-shots_on_target",
        "sort=shot_key",
        "sort=-ok",
        "f_target=Cu",
        "f_tags=b",
        "f_ok=true",
        "f_note=JITTER",
        "f_energy_min=5&f_energy_max=15&sort=-energy",
        "f_aligned_from=2026-11-21T02:00&f_aligned_to=2026-11-21T12:00",
        "shot=0000&f_target=Ti&sort=aligned",
        "f_shots_on_target_min=0",
    ],
)
def test_the_table_answers_every_filter_and_sort_as_mongodb_does(filled_sheet, params):
    query, sort, problems = table_query(schema.schema_for(filled_sheet), QueryDict(params))
    assert problems == []
    expected = [e["_id"] for e in store.find_entries(query, sort, 0, 1000)]
    assert expected, f"{params}: the case should select something"
    assert [e["_id"] for e in table.table("test").find(query, sort)] == expected


def test_a_table_follows_entries_written_by_another_process(sheet, make_entry):
    other = table.SheetTable("test").sync()  # as a second web process would hold it
    first = make_entry(sheet, energy=1.5)
    assert [e["_id"] for e in other.sync().find({}, [])] == [first["_id"]]
    update_entry(sheet, first, 1, {"energy": 2.5}, author="bob", comment="", shot_key=None)
    second = make_entry(sheet, energy=3.0)
    found = {e["_id"]: e["values"]["energy"] for e in other.sync().find({}, [])}
    assert found == {first["_id"]: 2.5, second["_id"]: 3.0}
    assert other.changes == store.last_change("test") == 3
    third = make_entry(sheet, energy=4.0)
    update_entry(sheet, second, 1, {"energy": 3.5}, author="bob", comment="", shot_key=None)
    newest_first = [third["_id"], second["_id"], first["_id"]]
    assert [e["_id"] for e in other.sync().find({}, table.DEFAULT_ORDER)] == newest_first
    assert [e["_id"] for e in store.find_entries({"sheet": "test"}, table.DEFAULT_ORDER, 0, 10)] == newest_first
    assert other.find({}, [])[1]["values"]["energy"] == 3.5


def test_a_reset_database_is_noticed_not_shown_stale(sheet, make_entry, mongo_db):
    old = make_entry(sheet)
    assert [e["_id"] for e in table.table("test").find({}, [])] == [old["_id"]]
    for name in mongo_db.list_collection_names():
        mongo_db.drop_collection(name)  # a restore, or the next test
    assert table.table("test").find({}, []) == []
    new = make_entry(sheet)
    assert [e["_id"] for e in table.table("test").find({}, [])] == [new["_id"]]


def test_concurrent_writers_keep_the_change_log_gap_free(mongo_db):
    def write(writer: int):
        for n in range(15):
            store.append_changes("race", [f"w{writer}-{n}"])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logged = [store.change("race", n)["entry"] for n in range(1, 61)]
    assert sorted(logged) == sorted(f"w{w}-{n}" for w in range(4) for n in range(15))
    assert store.change("race", 61) is None and store.last_change("race") == 60


def test_the_table_catches_up_after_an_import_bigger_than_its_catch_up(sheet, mongo_db, monkeypatch):
    monkeypatch.setattr(table, "MAX_CATCH_UP", 5)
    loaded = table.SheetTable("test").sync()
    grid = importer.Grid("log.csv", [["Energy [J]", "target"], *([str(n), "Al"] for n in range(12))])
    stored, checked = importer.import_grid(sheet, grid, author="t")
    assert (stored, checked.problems) == (12, [])
    assert sorted(e["values"]["energy"] for e in loaded.sync().find({}, [])) == [float(n) for n in range(12)]


def test_the_web_process_reads_active_sheets_ahead_of_their_first_page_view(transactional_db, mongo_db):
    active = Sheet.objects.create(name="Active", slug="warm-active", experiment="TST")
    Field.objects.create(sheet=active, key="energy", label="Energy", type=Field.Type.FLOAT, position=0)
    Sheet.objects.create(name="Old", slug="warm-old", experiment="TST", active=False)
    version = schema.save_version(active)
    made = [create_entry(active, version, {"energy": n}, author="ada", shot_key=None) for n in range(3)]
    table.forget("warm-active")  # as in a freshly started process

    table.warm_in_background().join(30)

    with table._tables_lock:
        warmed = dict(table._tables)
    assert "warm-old" not in warmed
    assert sorted(warmed["warm-active"].entries) == sorted(e["_id"] for e in made)
    assert warmed["warm-active"].changes == store.last_change("warm-active")


def test_the_entries_of_a_shot_key_follow_saves_and_key_changes_as_a_find_would(filled_sheet, make_entry):
    sheet_table = table.table(filled_sheet.slug)
    key = "TST-20261124-000003"

    def by_find(shot_key: str) -> list[str]:
        return [entry["_id"] for entry in table.table(filled_sheet.slug).find({"shot_key": shot_key}, [])]

    def of_shot(shot_key: str) -> list[str]:
        return [entry["_id"] for entry in table.table(filled_sheet.slug).of_shot(shot_key)]

    assert of_shot(key) == by_find(key) and len(of_shot(key)) == 1
    second = make_entry(filled_sheet, shot_key=key, energy=9.0)  # a second entry of the shot, after the index was made
    assert of_shot(key) == by_find(key) == [second["_id"], of_shot(key)[1]]
    moved = update_entry(
        filled_sheet,
        second,
        second["rev"],
        {**second["values"]},
        author="bob",
        comment="",
        shot_key="TST-20261124-000099",
    )
    assert of_shot(key) == by_find(key) and len(of_shot(key)) == 1
    assert of_shot("TST-20261124-000099") == [moved["_id"]]
    assert of_shot("nothing") == [] and sheet_table.by_shot is not None


NULL_SHAPES = [
    {},
    {"voided": None, "values": None},
    {"voided": {"reason": "r", "who": "ada"}, "values": {}},
    {"voided": [None], "values": {"x": None}},
    {"voided": [1, None], "values": {"x": [None, 2]}},
    {"voided": [], "values": {"x": []}},
    {"voided": 0, "values": {"x": 0}},
    {"voided": "", "values": {"x": ""}},
    {"voided": False, "values": {"x": False}},
    {"values": {"x": {"y": None}}},
    {"values": {"x": {"y": 1}}},
    {"values": {"x": 5}},
    {"voided": {}, "values": {"x": "K1"}},
    {"values": {"x": ["K1", None]}},
]


@pytest.mark.parametrize(
    "query",
    [
        {"voided": None},
        {"values.x": None},
        {"values.x.y": None},
        {"voided": {"$ne": None}},
        {"voided": None, "values.x": None},
        {"voided": None, "values.x": "K1"},
        {"values.x": None, "voided": None, "values.x.y": None},
    ],
    ids=repr,
)
def test_a_null_test_and_tests_chained_answer_as_mongodb_does(mongo_db, query):
    """`{path: None}` holds for a missing path, a null and an array holding a null (not an empty array
    FerretDB stores no nested one), on a top-level, two-part and longer path; several tests hold all together."""
    scratch = mongo_db[f"nulls_{uuid.uuid4().hex[:8]}"]
    scratch.insert_many([{"_id": n, **shape} for n, shape in enumerate(NULL_SHAPES)])
    expected = sorted(d["_id"] for d in scratch.find(query))
    test = table.all_of([table.compile_condition(path, condition) for path, condition in query.items()])
    assert sorted(n for n, shape in enumerate(NULL_SHAPES) if test({"_id": n, **shape})) == expected
