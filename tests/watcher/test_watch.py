"""The watcher against real Kafka and real MongoDB: routing, exactly-once storage, dead letters."""

import re
import uuid

import orjson
import pytest
from django.conf import settings

from labbook import mongo
from watcher import store

from .conftest import envelopes, wait_for


def produce(producer, topic: str, payloads, key=None) -> None:
    for payload in payloads:
        value = payload if isinstance(payload, bytes) or payload is None else orjson.dumps(payload)
        producer.send(topic, value, key=key)
    producer.flush(30)


def test_routes_send_topics_to_their_collections_and_leave_unrouted_topics_alone(
        routes, run_watcher, make_topic, producer, mongo_db):
    family = f"test.rx{uuid.uuid4().hex[:6]}"
    exact, by_regex, unrouted = make_topic(), make_topic(prefix=family), make_topic()
    routes(exact, "exact_events")
    routes(re.escape(family) + r"\..+", "regex_events", topic_is_regex=True, name="regex-route")
    produce(producer, exact, envelopes(20, "EXA"))
    produce(producer, by_regex, envelopes(15, "REG"))
    produce(producer, unrouted, envelopes(5, "UNR"))
    watcher = run_watcher()
    wait_for(lambda: store.count("exact_events") == 20 and store.count("regex_events") == 15,
             message="routed events stored")

    stored = mongo_db["exact_events"].find_one({"shot_number": 3})
    assert stored["_ingest"]["topic"] == exact
    assert {"partition", "offset", "at"} <= set(stored["_ingest"])
    assert stored["_ts"].timestamp() == pytest.approx(stored["relay_ts_ns"] / 1e9, abs=0.002)
    assert stored["_id"] == stored["event_id"]
    assert isinstance(stored["values"]["energy"], float)
    assert all(doc["experiment"] == "REG" for doc in mongo_db["regex_events"].find())
    assert {tp.topic for tp in watcher.assigned} == {exact, by_regex}
    assert watcher.stored == 35 and store.dead_letter_count() == 0


def test_same_events_produced_twice_are_stored_once(routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic()
    routes(topic, "shots_twice")
    events = envelopes(50)
    produce(producer, topic, events, key=b"a")
    produce(producer, topic, events, key=b"b")  # a retrying producer: same events, new offsets
    watcher = run_watcher()
    wait_for(lambda: watcher.stored + watcher.duplicates == 100, message="100 records handled")
    assert store.count("shots_twice") == 50
    assert sorted(store.all_ids("shots_twice")) == sorted(e["event_id"] for e in events)
    assert watcher.duplicates == 50


def test_each_kind_of_bad_message_goes_to_dead_letters_and_the_partition_keeps_flowing(
        routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic(partitions=1)
    routes(topic, "checked", max_message_bytes=2000)
    good_first, good_last = envelopes(2)
    bad_envelope = dict(envelopes(1, start=7)[0], shot_number="seven")
    payloads = [good_first, b"{not json", b"[1, 2, 3]", bad_envelope,
                orjson.dumps(dict(envelopes(1, start=8)[0], values={"blob": "x" * 5000})), None, good_last]
    produce(producer, topic, payloads, key=b"tombstone-needs-a-key")
    run_watcher()
    wait_for(lambda: store.count("checked") == 2 and store.dead_letter_count() == 5, message="2 stored, 5 dead")

    letters = {letter["offset"]: letter for letter in store.dead_letters()}
    assert sorted(letters) == [1, 2, 3, 4, 5]
    assert "not valid JSON" in letters[1]["error"] and letters[1]["raw"] == b"{not json"
    assert "expected a JSON object, got list" in letters[2]["error"]
    assert "not a valid shot envelope" in letters[3]["error"] and "shot_number" in letters[3]["error"]
    assert "exceeds the route's limit of 2000 bytes" in letters[4]["error"]
    assert "empty message" in letters[5]["error"]
    assert all(letter["topic"] == topic and letter["partition"] == 0 for letter in letters.values())
    assert orjson.loads(letters[3]["raw"])["event_id"] == bad_envelope["event_id"]  # raw bytes kept


def test_route_added_while_running_takes_effect_without_restart(
        routes, run_watcher, make_topic, producer, mongo_db):
    first, second = make_topic(), make_topic()
    routes(first, "first_events")
    watcher = run_watcher()
    produce(producer, first, envelopes(5))
    wait_for(lambda: store.count("first_events") == 5, message="first route stored")

    routes(second, "second_events", id_strategy="position", require_envelope=False,
           renames={"E": "energy"}, timestamp_field="t")
    produce(producer, second, [{"E": n, "t": "2026-11-24T10:00:00+00:00"} for n in range(7)])
    wait_for(lambda: store.count("second_events") == 7, timeout=30, message="new route picked up")
    doc = mongo_db["second_events"].find_one({"energy": 3})
    assert doc["_id"] == f"{second}|{doc['_ingest']['partition']}|{doc['_ingest']['offset']}"
    assert "E" not in doc and doc["_ts"].year == 2026
    assert watcher.stored == 12


def test_two_watchers_in_one_group_share_the_partitions_and_store_each_event_once(
        routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic(partitions=4)
    routes(topic, "shared_events")
    first = run_watcher(group_id="test-shared-" + topic[-6:], name="one")
    second = run_watcher(group_id=first.group_id, name="two")
    seen = {"one": set(), "two": set()}

    def both_assigned():
        seen["one"] |= first.assigned
        seen["two"] |= second.assigned
        return seen["one"] and seen["two"]

    wait_for(both_assigned, timeout=45, message="both watchers assigned partitions")
    events = envelopes(800)
    for n, event in enumerate(events):
        producer.send(topic, orjson.dumps(event), key=str(n).encode())
    producer.flush(30)
    wait_for(lambda: both_assigned() and store.count("shared_events") == 800, timeout=60,
             message="800 events stored")
    assert {tp.partition for tp in seen["one"] | seen["two"]} == {0, 1, 2, 3}
    assert first.stored > 0 and second.stored > 0
    assert sorted(store.all_ids("shared_events")) == sorted(e["event_id"] for e in events)


def test_shot_join_and_search_use_plain_values_only(routes, mongo_db):
    routes("t.a", "diag_a")
    routes("t.b", "diag_b")
    shot = envelopes(1, "JOIN", start=12)[0]
    for name in ("diag_a", "diag_b"):
        store.insert_idempotent(name, [dict(shot, _id=f"{name}-1", _ts=None, source=name)])
    store.insert_idempotent("diag_a", [dict(envelopes(1, "JOIN", start=13)[0], _id="other", _ts=None)])

    joined = store.events_for_shot(shot["shot_key"])
    assert sorted((e["_collection"], e["source"]) for e in joined) == [("diag_a", "diag_a"), ("diag_b", "diag_b")]

    found = store.search(store.EventQuery(collection="diag_a", field="values.energy", value="1.2"))
    assert [doc["_id"] for doc in found] == ["diag_a-1"]
    with pytest.raises(ValueError, match="is not a field name"):
        store.search(store.EventQuery(collection="diag_a", field="$where", value="1"))
    with pytest.raises(ValueError, match="not a routed collection"):
        store.search(store.EventQuery(collection="auth_user"))


def test_search_page_refuses_operator_field_names(admin_client, routes, mongo_db):
    routes("t.c", "diag_c")
    page = admin_client.get("/watcher/search/", {"collection": "diag_c", "field": "$gt", "value": "1"})
    assert page.status_code == 200
    assert b"A field name: letters, digits, _ and dots." in page.content
    assert settings.MONGODB_DB.startswith("labbook_test_")
    assert mongo.database().name == settings.MONGODB_DB


def test_search_page_lists_matching_events(admin_client, routes, mongo_db):
    routes("t.d", "diag_d")
    shot = envelopes(1, "PAGE", start=5)[0]
    store.insert_idempotent("diag_d", [dict(shot, _id="d-1", _ts=None, _ingest={"topic": "t.d"}),
                                       dict(envelopes(1, "PAGE", start=6)[0], _id="d-2", _ts=None)])
    page = admin_client.get("/watcher/search/", {"collection": "diag_d", "shot_key": shot["shot_key"]})
    assert page.status_code == 200
    assert shot["shot_key"].encode() in page.content
    assert b"1 event " in page.content
