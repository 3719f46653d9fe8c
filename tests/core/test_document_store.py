"""The shared document-store layer against the real MongoDB-wire server: slots, matching, companions."""

import threading
from datetime import UTC, datetime

import pytest
from pymongo.errors import BulkWriteError

from core import mongo
from core.matching import equals, lookup
from core.slots import insert_slots, read_slots


def test_two_writers_racing_for_slots_store_every_body_once_without_gaps(mongo_db):
    collection = mongo_db["raced_slots"]
    written: dict[str, list] = {}

    def writer(name: str) -> None:
        next_free: dict[str, int] = {}
        for n in range(15):  # each call starts at the slot it believes free: the other took some
            next_free = insert_slots(collection, {"k": [{"w": name, "n": n}], name: [{"n": n}]}, next_free)
        written[name] = next_free

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    shared = sorted(doc["_id"] for doc in collection.find() if doc["_id"].startswith("k|"))
    assert shared == sorted(f"k|{n}" for n in range(30))  # 30 bodies, slots 0-29: none lost, no gap
    assert sorted((doc["w"], doc["n"]) for doc in collection.find({"_id": {"$in": shared}})) == sorted(
        (w, n) for w in "ab" for n in range(15)
    )
    assert written["a"]["a"] == written["b"]["b"] == 15


def test_an_ordered_run_keeps_its_order_after_a_taken_slot(mongo_db):
    collection = mongo_db["ordered_slots"]
    collection.insert_one({"_id": "s|2", "by": "someone else"})
    next_free = insert_slots(collection, {"s": [{"n": n} for n in range(4)]}, {}, ordered=True)
    assert next_free == {"s": 5}
    assert [doc.get("n") for doc in collection.find().sort("_id", 1)] == [0, 1, None, 2, 3]


def test_a_refused_body_is_raised_or_keeps_its_slot(mongo_db):
    collection = mongo_db["refused_slots"]
    refused = {"$bad": 1}  # a field name the server refuses
    with pytest.raises(Exception, match=r"\$bad"):
        insert_slots(collection, {"r": [refused]}, {})
    assert insert_slots(collection, {"r": [refused], "ok": [{"n": 1}]}, {}, keep_refused=True) == {"r": 1, "ok": 1}
    assert "refused" in collection.find_one({"_id": "r|0"}) and collection.find_one({"_id": "ok|0"})["n"] == 1


DOCUMENTS = [
    {"_id": "flat", "v": 1, "sub": {"x": "a"}},
    {"_id": "float", "v": 1.0},
    {"_id": "true", "v": True},
    {"_id": "array", "v": [3, 1], "sub": [{"x": "b"}, {"x": "a"}]},
    {"_id": "nested", "sub": {"x": ["a", "c"]}},
    {"_id": "none", "v": None, "at": datetime(2026, 1, 1, tzinfo=UTC)},
]


@pytest.mark.parametrize(
    ("path", "wanted"), [("v", 1), ("v", True), ("v", 3), ("sub.x", "a"), ("sub.x", "c"), ("missing.deep", "a")]
)
def test_equality_in_python_answers_as_the_server_does(mongo_db, path, wanted):
    mongo_db["matched"].insert_many(DOCUMENTS)
    server = sorted(doc["_id"] for doc in mongo_db["matched"].find({path: wanted}))
    ours = sorted(doc["_id"] for doc in DOCUMENTS if equals(doc, path, wanted))
    assert ours == server


def test_lookup_follows_subdocuments_only():
    assert lookup({"a": {"b": {"c": 3}}}, "a.b.c") == 3
    assert lookup({"a": [{"b": 1}]}, "a.b") is None and lookup({"a": 1}, "a.b") is None


def test_a_companion_database_must_be_declared_and_is_dropped_with_the_main_one(settings):
    with pytest.raises(ValueError, match="'nowhere' was not declared"):
        mongo.database("nowhere")
    with pytest.raises(ValueError, match="lower-case letters"):
        mongo.declare_companion("Bad_name")
    assert mongo.database("shots").name == f"{settings.MONGODB_DB}_shots"  # declared by the watcher app
    assert [db.name for db in mongo.databases()][0] == settings.MONGODB_DB


def test_insert_by_id_counts_duplicates_in_the_list_and_already_stored_and_raises_a_refused_document(mongo_db):
    collection = mongo_db["by_id"]
    collection.insert_one({"_id": "stored", "n": 0})
    inserted = mongo.insert_by_id(collection, [{"_id": "stored"}, {"_id": "a"}, {"_id": "a", "n": 2}, {"_id": "b"}])
    assert (inserted.count, inserted.duplicates, inserted.refused) == (2, [0, 2], {})
    assert sorted(doc["_id"] for doc in collection.find()) == ["a", "b", "stored"]
    assert collection.find_one({"_id": "stored"})["n"] == 0  # a duplicate changes nothing

    refused = [{"_id": "c"}, {"_id": "bad", "$bad": 1}, {"_id": "a"}]  # a field name the server refuses
    with pytest.raises(BulkWriteError, match=r"\$bad"):
        mongo.insert_by_id(collection, refused)
    kept = mongo.insert_by_id(collection, [{"_id": "d"}, *refused[1:]], keep_refused=True)
    assert (kept.count, kept.duplicates, list(kept.refused)) == (1, [2], [1])
    assert "$bad" in kept.refused[1]

    ordered = mongo.insert_by_id(collection, [{"_id": "e"}, {"_id": "a"}, {"_id": "f"}], ordered=True)
    assert (ordered.count, ordered.duplicates, ordered.not_tried) == (1, [1], [2])
    assert mongo.insert_by_id(collection, []) == mongo.Inserted()


def test_read_slots_walks_from_zero_to_the_first_missing_slot(mongo_db):
    collection = mongo_db["read_slots"]
    collection.insert_many([{"_id": "k|0", "n": 0}, {"_id": "k|1", "n": 1}, {"_id": "k|3", "n": 3}])
    assert [doc["n"] for doc in read_slots(collection, "k")] == [0, 1]
    assert list(read_slots(collection, "other")) == []
    assert [doc["n"] for doc in read_slots(collection, "k", max_slots=1)] == [0]


def test_of_two_takers_of_one_stale_claim_exactly_one_takes_it_over(mongo_db):
    collection = mongo_db["take_over"]
    won = []
    for trial in range(30):
        stale = {"_id": f"claim-{trial}", "at": datetime(2026, 12, 2, 3, 0, tzinfo=UTC)}
        collection.insert_one(stale)
        start, outcomes = threading.Barrier(2), []

        def take(n: int, start=start, outcomes=outcomes, stale=stale) -> None:
            start.wait()
            outcomes.append(
                mongo.take_over(collection, stale, {"_id": stale["_id"], "at": datetime.now(UTC), "by": n}, "at")
            )

        racers = [threading.Thread(target=take, args=(n,)) for n in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        won.append(sorted(outcomes))
        assert collection.find_one({"_id": stale["_id"]})["by"] in (0, 1)
    assert won == [[False, True]] * 30
