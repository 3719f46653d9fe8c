"""The watcher against real Kafka and real MongoDB: routing, exactly-once storage, dead letters."""

import io
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pymongo.collection import Collection

from core import mongo
from core.envelope import make_envelope
from core.runloop import StopFlag
from core.slots import insert_slots
from watcher import store
from watcher.indexes import handmade, strategy
from watcher.services.loop import Watcher

from .conftest import envelopes, wait_for


def produce(producer, topic: str, payloads, key=None) -> None:
    for payload in payloads:
        value = payload if isinstance(payload, bytes) or payload is None else orjson.dumps(payload)
        producer.send(topic, value, key=key)
    producer.flush(30)


def test_routes_send_topics_to_their_collections_and_leave_unrouted_topics_alone(
    routes, run_watcher, make_topic, producer, mongo_db
):
    family = f"test.rx{uuid.uuid4().hex[:6]}"
    exact, by_regex, unrouted = make_topic(), make_topic(prefix=family), make_topic()
    routes(exact, "exact_events")
    routes(re.escape(family) + r"\..+", "regex_events", topic_is_regex=True, name="regex-route")
    produce(producer, exact, envelopes(20, "EXA"))
    produce(producer, by_regex, envelopes(15, "REG"))
    produce(producer, unrouted, envelopes(5, "UNR"))
    watcher = run_watcher()
    wait_for(
        lambda: store.count("exact_events") == 20 and store.count("regex_events") == 15, message="routed events stored"
    )

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
    routes, run_watcher, make_topic, producer, mongo_db
):
    topic = make_topic(partitions=1)
    routes(topic, "checked", max_message_bytes=2000)
    good_first, good_last = envelopes(2)
    bad_envelope = dict(envelopes(1, start=7)[0], shot_number="seven")
    payloads = [
        good_first,
        b"{not json",
        b"[1, 2, 3]",
        bad_envelope,
        orjson.dumps(dict(envelopes(1, start=8)[0], values={"blob": "x" * 5000})),
        None,
        good_last,
    ]
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


def test_route_added_while_running_takes_effect_without_restart(routes, run_watcher, make_topic, producer, mongo_db):
    first, second = make_topic(), make_topic()
    routes(first, "first_events")
    watcher = run_watcher()
    produce(producer, first, envelopes(5))
    wait_for(lambda: store.count("first_events") == 5, message="first route stored")

    routes(
        second,
        "second_events",
        id_strategy="position",
        require_envelope=False,
        renames={"E": "energy"},
        timestamp_field="t",
    )
    produce(producer, second, [{"E": n, "t": "2026-11-24T10:00:00+00:00"} for n in range(7)])
    wait_for(lambda: store.count("second_events") == 7, timeout=30, message="new route picked up")
    doc = mongo_db["second_events"].find_one({"energy": 3})
    assert doc["_id"] == f"{second}|{doc['_ingest']['partition']}|{doc['_ingest']['offset']}"
    assert "E" not in doc and doc["_ts"].year == 2026
    assert watcher.stored == 12


def test_two_watchers_in_one_group_share_the_partitions_and_store_each_event_once(
    routes, run_watcher, make_topic, producer, mongo_db
):
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
    wait_for(lambda: both_assigned() and store.count("shared_events") == 800, timeout=60, message="800 events stored")
    assert {tp.partition for tp in seen["one"] | seen["two"]} == {0, 1, 2, 3}
    assert first.stored > 0 and second.stored > 0
    assert sorted(store.all_ids("shared_events")) == sorted(e["event_id"] for e in events)


def test_shot_join_finds_every_collections_events_once_newest_first_with_provenance(
    routes, run_watcher, make_topic, producer, mongo_db, admin_client, index_strategy
):
    laser_topic, camera_topic = make_topic(), make_topic()
    routes(laser_topic, "join_laser")
    routes(camera_topic, "join_camera")
    shot, other = envelopes(2, "JOIN", start=12)
    camera = dict(shot, source="camera", kind="image", values={"counts": 7})
    camera["event_id"] = "c" * 32
    camera["relay_ts_ns"] = shot["relay_ts_ns"] + 5_000_000  # 5 ms after the laser event
    produce(producer, laser_topic, [shot, other])
    produce(producer, camera_topic, [camera])
    watcher = run_watcher()
    wait_for(lambda: len(store.events_for_shot(shot["shot_key"])) == 2, message="the shot index written")
    if index_strategy == "handmade":
        index_name, bucket = handmade.shot_bucket(shot["shot_key"])
        assert (index_name, bucket) == ("shots_20251124", "JOIN-20251124-1x")  # shots 10-19 of that date
        index = handmade.index_database()[index_name]  # a database of its own
        assert index_name not in mongo_db.list_collection_names()
        slots = index.count_documents({})
    produce(producer, camera_topic, [camera])  # re-sent: indexed again, must not show up twice
    wait_for(lambda: watcher.duplicates == 1, message="the re-sent event recognised")
    if index_strategy == "handmade":
        wait_for(lambda: index.count_documents({}) == slots + 1, message="the re-sent event indexed again")
    else:  # the server's own indexes: the watcher writes none of its own
        assert handmade.index_database().list_collection_names() == []
        assert {"shot_key_1", "_ts_1"} <= set(mongo_db["join_laser"].index_information())

    joined = store.events_for_shot(shot["shot_key"])
    assert [(e["_collection"], e["source"]) for e in joined] == [("join_camera", "camera"), ("join_laser", "laser")]
    assert joined[0]["_ingest"]["topic"] == camera_topic and joined[1]["_ingest"]["topic"] == laser_topic
    assert {"partition", "offset", "at"} <= set(joined[1]["_ingest"])
    assert store.events_for_shot(shot["shot_key"], limit=1)[0]["source"] == "camera"
    assert [e["_id"] for e in store.events_for_shot(other["shot_key"])] == [other["event_id"]]  # same bucket
    assert store.events_for_shot("JOIN-20251124-999999") == []

    page = admin_client.get(f"/watcher/shot/{shot['shot_key']}/")
    assert page.status_code == 200
    assert b"2 ingested events" in page.content and b"join_camera" in page.content


def test_shot_index_keeps_ten_shots_a_document_and_joins_each_shot_exactly(
    routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    topic = make_topic()
    routes(topic, "many_shots", require_envelope=False)  # an agent with shot keys of its own
    events = envelopes(300, "BULK", start=55)  # shots 55-354: 31 buckets of ten
    odd = dict(envelopes(1, "ODD")[0], shot_key="run 7 / shot a")  # not <experiment>-<date>-<number>
    produce(producer, topic, events + [odd])
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 301, message="301 events stored")
    wait_for(lambda: store.events_for_shot(events[-1]["shot_key"]), message="the shot index written")

    for event in events[::37] + [events[-1], odd]:
        assert [e["_id"] for e in store.events_for_shot(event["shot_key"])] == [event["event_id"]]
    assert store.events_for_shot("BULK-20251124-000356") == []  # an unused shot of a used bucket
    if index_strategy == "native":
        return
    index = handmade.index_database()
    slots = sum(index[name].count_documents({}) for name in index.list_collection_names() if name.startswith("shots_"))
    assert 32 <= slots <= 32 * 3  # the 31 buckets and the odd key, one slot each per second of writing


def test_a_starting_watcher_moves_an_old_shot_index_into_the_buckets_and_loses_no_reference(
    routes, run_watcher, make_topic, mongo_db, handmade_indexes
):
    routes(make_topic(), "moved_events")
    oldest, old, other = envelopes(3, "MOVE", start=3)
    old["shot_key"] = oldest["shot_key"]  # two events of one shot, indexed by two older versions
    at = {"c": "moved_events", "ts": datetime.now(UTC)}
    mongo_db["moved_events"].insert_many([{"_id": e["event_id"], **e} for e in (oldest, old, other)])
    old_index = f"shot_index_{oldest['shot_key'].split('-')[1]}"  # one document per shot key and slot
    mongo_db[old_index].insert_one(
        {"_id": f"{oldest['shot_key']}|0", "shot_key": oldest["shot_key"], "refs": [{**at, "id": oldest["event_id"]}]}
    )
    handmade.index_database()[old_index].insert_many(
        [
            {"_id": f"{old['shot_key']}|0", "shot_key": old["shot_key"], "refs": [{**at, "id": old["event_id"]}]},
            {"_id": f"{other['shot_key']}|0", "shot_key": other["shot_key"], "refs": [{**at, "id": other["event_id"]}]},
            {"_id": f"{other['shot_key']}|1", "refused": "a slot kept empty for an entry the server refused"},
        ]
    )

    run_watcher()
    wait_for(
        lambda: old_index not in mongo_db.list_collection_names() + handmade.index_database().list_collection_names(),
        message="the old indexes moved",
    )
    assert sorted(e["_id"] for e in store.events_for_shot(old["shot_key"])) == sorted(
        [oldest["event_id"], old["event_id"]]
    )
    assert [e["_id"] for e in store.events_for_shot(other["shot_key"])] == [other["event_id"]]
    assert store.move_old_shot_index() == 0  # nothing left to move


def test_search_by_shot_key_and_field_uses_plain_values_only(
    routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    topic = make_topic()
    routes(topic, "diag_a", timestamp_field="laser_ts_ns")  # 1 ms apart (BSON times have ms resolution)
    events = envelopes(5, "SRCH")
    produce(producer, topic, events)
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 5, message="5 events stored")

    by_shot_query = store.EventQuery(collection="diag_a", shot_key=events[2]["shot_key"])
    wait_for(lambda: store.search(by_shot_query).events, message="the shot index written (once a second)")
    by_shot = store.search(by_shot_query).events
    assert [doc["_id"] for doc in by_shot] == [events[2]["event_id"]]
    assert (
        store.search(store.EventQuery(collection="diag_a", shot_key=events[2]["shot_key"], kind="image")).events == []
    )
    by_field_query = store.EventQuery(collection="diag_a", field="values.energy", value="0.4")
    wait_for(lambda: store.search(by_field_query).events, message="the time index written (once a second)")
    by_field = store.search(by_field_query).events
    assert [doc["_id"] for doc in by_field] == [events[3]["event_id"]]
    by_shot_and_field = store.search(
        store.EventQuery(collection="diag_a", shot_key=events[3]["shot_key"], field="values.energy", value="0.4")
    ).events
    assert [doc["_id"] for doc in by_shot_and_field] == [events[3]["event_id"]]
    newest_two = store.search(store.EventQuery(collection="diag_a", source="laser", limit=2)).events
    assert [doc["shot_number"] for doc in newest_two] == [5, 4]
    with pytest.raises(ValueError, match="is not a field name"):
        store.search(store.EventQuery(collection="diag_a", field="$where", value="1"))
    with pytest.raises(ValueError, match="not a routed collection"):
        store.search(store.EventQuery(collection="auth_user"))


def spread_events() -> list[dict]:
    """Events of three sources and two kinds over 74 minutes of two hours (in most minutes two,
    in every minute of an hour's end), sent out of order; one is a day older."""
    base = 1_764_000_000_000_000_000  # 2025-11-24 16:00 UTC
    events = []
    for n in range(1, 121):
        at = base + (n * 97 % 120) * 37 * 1_000_000_000 + n * 1_000_000  # every 37 s, shuffled
        if n == 7:
            at -= 86_400 * 1_000_000_000
        events.append(
            make_envelope(
                experiment="TIME",
                source=("laser", "camera", "probe")[n % 3],
                kind="image" if n % 5 == 0 else "shot",
                shot_number=n,
                laser_ts_ns=at,
                tz="UTC",
                seq=n,
                values={"energy": n % 4, "channels": [{"name": f"c{n % 3}"}]},
            )
        )
    return events


def scan(query: store.EventQuery) -> list[str]:
    """The same search answered by MongoDB from the collection itself."""
    cursor = mongo.database()[query.collection].find(query.mongo_filter()).sort("_ts", -1).limit(query.limit)
    return [doc["_id"] for doc in cursor]


def test_search_by_time_source_kind_and_field_reads_the_time_index_and_answers_as_a_scan(
    routes, run_watcher, make_topic, producer, mongo_db, monkeypatch, index_strategy
):
    topic = make_topic(partitions=3)
    routes(topic, "timed", timestamp_field="laser_ts_ns")
    events = spread_events()
    produce(producer, topic, events)
    watcher = run_watcher(batch_size=16)  # many batches: minutes spread over many index slots
    wait_for(lambda: watcher.stored == 120, message="120 events stored")
    everything = store.EventQuery(collection="timed", limit=500)
    wait_for(lambda: len(store.search(everything).events) == 120, message="the time index written (once a second)")
    at = datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    queries = [
        store.EventQuery(collection="timed"),
        store.EventQuery(collection="timed", limit=7),
        store.EventQuery(collection="timed", source="camera", limit=500),
        store.EventQuery(collection="timed", kind="image", source="laser"),
        store.EventQuery(collection="timed", since=at + timedelta(minutes=30), until=at + timedelta(minutes=95)),
        store.EventQuery(collection="timed", until=at + timedelta(minutes=1)),  # reaches the day-old event
        store.EventQuery(collection="timed", since=at + timedelta(minutes=61, seconds=30), limit=3),
        store.EventQuery(collection="timed", field="values.energy", value="2", source="probe"),
        store.EventQuery(collection="timed", field="values.channels.name", value="c1"),  # through an array
        store.EventQuery(collection="timed", since=at + timedelta(hours=5)),  # nothing there
    ]
    for query in queries:
        result = store.search(query)
        assert result.indexed and result.complete
        assert [doc["_id"] for doc in result.events] == scan(query), query
    assert events[6]["event_id"] in [doc["_id"] for doc in store.search(queries[5]).events]  # the day-old one
    if index_strategy == "native":
        return  # the server's find has no limits of its own
    monkeypatch.setattr(handmade, "MAX_FETCHED", 5)  # a field filter that has to read far back
    capped = store.search(store.EventQuery(collection="timed", field="values.energy", value="99"))
    assert capped.events == [] and not capped.complete
    monkeypatch.setattr(handmade, "MAX_EXAMINED", 10)  # a source that is not there at all
    capped = store.search(store.EventQuery(collection="timed", source="nowhere"))
    assert capped.events == [] and not capped.complete
    assert store.search(store.EventQuery(collection="timed", source="camera", limit=1)).complete


def test_event_times_in_any_unit_or_offset_are_indexed_in_utc_and_bad_ones_fall_back_to_ingest_time(
    routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    topic = make_topic()
    routes(topic, "clocks", timestamp_field="t", require_envelope=False)
    times = {
        "s": 1_764_000_000,
        "ms": 1_764_000_060_500,
        "us": 1_764_000_120_000_001,
        "ns": 1_764_000_180_000_000_002,
        "iso": "2025-11-24T18:04:00+02:00",
        "huge": 1e30,
        "text": "soon",
    }
    produce(producer, topic, [{"event_id": name, "t": t, "source": "clock"} for name, t in times.items()])
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == len(times), message="every message stored, none crashed the watcher")
    stored = {doc["_id"]: doc["_ts"] for doc in mongo_db["clocks"].find()}
    base = datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    assert [stored[name] for name in ("s", "ms", "us", "ns", "iso")] == [
        base,
        base + timedelta(seconds=60.5),
        base + timedelta(minutes=2),
        base + timedelta(minutes=3),
        base + timedelta(minutes=4),
    ]
    assert stored["huge"] > datetime.now(UTC) - timedelta(minutes=5)  # unusable: the ingest time
    window = store.EventQuery(
        collection="clocks",
        since=base + timedelta(minutes=3, seconds=30),
        until=base + timedelta(minutes=4, seconds=30),
    )
    wait_for(lambda: [doc["_id"] for doc in store.search(window).events] == ["iso"], message="found in UTC")


def test_a_replayed_batch_with_ingest_times_is_found_once_at_its_stored_time(
    routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    topic = make_topic()
    routes(topic, "replayed", timestamp_field="")  # `_ts` is the ingest time
    first, second = envelopes(2, "REPLAY")
    produce(producer, topic, [first])
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 1, message="the first stored")
    produce(producer, topic, [second])
    wait_for(lambda: watcher.stored == 2, message="the second stored")
    time.sleep(0.01)
    produce(producer, topic, [first])  # the first again, as a replay would: a later "now"
    wait_for(lambda: watcher.duplicates == 1, message="the replay recognised")
    query = store.EventQuery(collection="replayed")
    wait_for(lambda: len(store.search(query).events) == 2, message="both in the time index")
    assert [doc["_id"] for doc in store.search(query).events] == scan(query) == [second["event_id"], first["event_id"]]


def test_a_collection_that_held_events_before_its_time_index_is_searched_whole(
    routes, run_watcher, make_topic, producer, mongo_db, admin_client, handmade_indexes
):
    old, new = envelopes(2, "BEFORE")
    mongo_db["older"].insert_one({**old, "_id": old["event_id"], "_ts": datetime(2025, 1, 1, tzinfo=UTC)})
    topic = make_topic()
    routes(topic, "older")
    produce(producer, topic, [new])
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 1, message="1 event stored")
    result = store.search(store.EventQuery(collection="older"))
    assert not result.indexed
    assert [doc["_id"] for doc in result.events] == [new["event_id"], old["event_id"]]
    page = admin_client.get("/watcher/search/", {"collection": "older"})
    assert b"read whole" in page.content and b"2 events" in page.content


def test_disabled_route_is_not_consumed_until_enabled_again(routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic()
    route = routes(topic, "toggled", enabled=False)
    watcher = run_watcher()
    produce(producer, topic, envelopes(10))
    time.sleep(2)  # four route refreshes
    assert watcher.batches == 0 and not watcher.assigned
    assert "toggled" not in mongo_db.list_collection_names()

    route.enabled = True
    route.save()
    wait_for(lambda: store.count("toggled") == 10, timeout=30, message="enabled route consumed")
    route.enabled = False
    route.save()
    wait_for(lambda: not watcher.assigned, timeout=30, message="disabled route unsubscribed")
    produce(producer, topic, envelopes(5, start=100))
    route.enabled = True
    route.save()
    wait_for(lambda: store.count("toggled") == 15, timeout=30, message="events sent while disabled stored")


def test_time_series_route_falls_back_to_a_normal_collection_where_unsupported(
    routes, run_watcher, make_topic, producer, mongo_db
):
    topic = make_topic()
    routes(topic, "series", timeseries=True)
    produce(producer, topic, envelopes(10))
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 10, message="10 stored")
    kind = watcher.collection_kind["series"]
    info = next(mongo_db.list_collections(filter={"name": "series"}))
    if info.get("type") == "timeseries":  # a real MongoDB
        assert kind == store.TIMESERIES
    else:  # FerretDB: a normal collection, and the watcher says so
        assert kind == store.NO_TIMESERIES
    produce(producer, topic, envelopes(10))  # the same events again
    wait_for(lambda: watcher.duplicates == 10, message="replayed events recognised")
    assert store.count("series") == 10


def test_search_page_refuses_operator_field_names(admin_client, routes, mongo_db):
    routes("t.c", "diag_c")
    page = admin_client.get("/watcher/search/", {"collection": "diag_c", "field": "$gt", "value": "1"})
    assert page.status_code == 200
    assert b"A field name: letters, digits, _ and dots." in page.content
    assert settings.MONGODB_DB.startswith("labbook_test_")
    assert mongo.database().name == settings.MONGODB_DB


def test_search_page_lists_matching_events_with_their_provenance(
    admin_client, routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    topic = make_topic()
    routes(topic, "diag_d")
    events = envelopes(3, "PAGE", start=5)
    produce(producer, topic, events)
    watcher = run_watcher()
    wait_for(
        lambda: watcher.stored == 3 and store.events_for_shot(events[1]["shot_key"]), message="3 stored and indexed"
    )
    page = admin_client.get("/watcher/search/", {"collection": "diag_d", "shot_key": events[1]["shot_key"]})
    assert page.status_code == 200
    assert events[1]["shot_key"].encode() in page.content and events[0]["shot_key"].encode() not in page.content
    assert b"1 event " in page.content and f"{topic}/".encode() in page.content


def test_watcher_pages_require_login(client, mongo_db):
    for url in ("/watcher/", "/watcher/search/", "/watcher/dead-letters/", "/watcher/shot/X-20251124-000001/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_failing_time_index_stops_the_watcher_with_nothing_committed(
    routes, make_topic, producer, mongo_db, kafka_admin, monkeypatch, handmade_indexes
):
    topic = make_topic()
    routes(topic, "unindexed")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "index_times", broken)
    produce(producer, topic, envelopes(20, "BROKEN"))
    watcher = Watcher(
        stop=StopFlag(), group_id=f"test-broken-{uuid.uuid4().hex[:6]}", live=False, route_refresh_seconds=0.5
    )
    raised = []

    def run():
        try:
            watcher.run()
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    watcher.stop.set()
    assert not thread.is_alive(), "the watcher did not stop by itself"
    assert raised and "disk full" in str(raised[0].__cause__)  # `manage.py watch` exits non-zero
    assert store.count("unindexed") == 20  # the events were written...
    offsets = kafka_admin.list_group_offsets(watcher.group_id).get(watcher.group_id, {})
    assert not any(meta.offset > 0 for tp, meta in offsets.items() if tp.topic == topic)  # ...and will be re-read


def test_documents_the_driver_refuses_go_to_dead_letters_and_the_rest_of_the_batch_is_stored(
    routes, run_watcher, make_topic, producer, mongo_db
):
    """Poison pills (an int over 8 bytes, a NUL in a key) in one batch with 10 valid neighbours."""
    topic, other = make_topic(partitions=1), make_topic(partitions=1)
    routes(topic, "pills")
    routes(other, "pills_other")
    valid = envelopes(10, "PILL")
    too_big, nul_key = envelopes(2, "PILL", start=50)
    too_big["values"] = {"big": 9223372036854775808}
    nul_key["values"] = {"a\u0000b": 1}
    produce(producer, topic, valid[:5] + [too_big] + valid[5:] + [nul_key])
    produce(producer, other, envelopes(5, "FLOW"))
    watcher = run_watcher()
    wait_for(
        lambda: store.count("pills") == 10 and store.dead_letter_count() == 2,
        timeout=60,
        message="10 stored, 2 dead letters",
    )
    wait_for(lambda: store.count("pills_other") == 5, message="the other route stored")

    letters = {letter["offset"]: letter for letter in store.dead_letters()}
    assert sorted(letters) == [5, 11]
    assert "8-byte ints" in letters[5]["error"] and "NULL" in letters[11]["error"]
    assert orjson.loads(letters[5]["raw"])["event_id"] == too_big["event_id"]
    assert sorted(store.all_ids("pills")) == sorted(e["event_id"] for e in valid)
    produce(producer, other, envelopes(5, "FLOW", start=10))  # still running
    wait_for(lambda: store.count("pills_other") == 10, message="the other route flowing on")
    assert watcher.writer_error is None and watcher.writer.is_alive()


def test_field_ids_of_different_json_types_stay_distinct_and_string_ids_keep_their_form(
    routes, run_watcher, make_topic, producer, mongo_db
):
    topic = make_topic(partitions=1)
    routes(topic, "typed_ids", id_strategy="field", id_field="id", require_envelope=False, timestamp_field="")
    ids = [1, "1", True, "True", "#1", 1.5, "plain"]
    produce(producer, topic, [{"id": i, "n": n} for n, i in enumerate(ids)])
    watcher = run_watcher()
    wait_for(lambda: watcher.stored + watcher.duplicates == len(ids), message="every message handled")
    assert watcher.duplicates == 0 and store.count("typed_ids") == len(ids)
    by_n = {doc["n"]: doc["_id"] for doc in mongo_db["typed_ids"].find()}
    assert by_n[1] == "1" and by_n[6] == "plain"  # string ids as before: a restart stores nothing twice
    assert len(set(by_n.values())) == len(ids)
    produce(producer, topic, [{"id": i, "n": n} for n, i in enumerate(ids)])  # re-sent: each one a duplicate
    wait_for(lambda: watcher.duplicates == len(ids), message="the re-sends recognised")
    assert store.count("typed_ids") == len(ids)


def test_kafka_headers_are_kept_in_ingest_and_in_dead_letters(routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic(partitions=1)
    routes(topic, "with_headers")
    headers = [("trace", b"run-7/abc"), ("raw", b"\xff\x00")]
    event = envelopes(1)[0]
    producer.send(topic, orjson.dumps(event), headers=headers)
    producer.send(topic, b"{not json", headers=headers)
    producer.flush(30)
    run_watcher()
    wait_for(lambda: store.count("with_headers") == 1 and store.dead_letter_count() == 1, message="stored, dead")
    stored = mongo_db["with_headers"].find_one({"_id": event["event_id"]})
    assert stored["_ingest"]["headers"] == [
        {"key": "trace", "value": "run-7/abc"},
        {"key": "raw", "value": b"\xff\x00"},
    ]
    assert store.dead_letters()[0]["headers"] == [
        {"key": "trace", "value": b"run-7/abc"},
        {"key": "raw", "value": b"\xff\x00"},
    ]


def test_dead_letters_replay_stores_what_now_passes_once_and_leaves_the_rest(
    routes, run_watcher, make_topic, producer, mongo_db, index_strategy
):
    from django.core.management import call_command

    topic = make_topic(partitions=1)
    route = routes(topic, "replayed")  # requires the envelope
    agent = [
        {"shot_key": f"AGENT-20261124-{n:06d}", "source": "agent", "kind": "scan", "at": "2026-11-24T10:00:00Z"}
        for n in range(3)
    ]
    produce(producer, topic, agent + [b"{not json"], key=b"k")
    watcher = run_watcher()
    wait_for(lambda: store.dead_letter_count() == 4, message="4 dead letters")
    watcher.stop.set()

    route.require_envelope, route.id_strategy, route.timestamp_field = False, "position", "at"  # the route fixed
    route.save()
    out = io.StringIO()
    call_command("dead_letters", "replay", "--route", route.name, "--reason", "envelope", stdout=out)
    assert "3 stored" in out.getvalue()
    assert store.count("replayed") == 3 and store.dead_letter_count() == 1
    doc = mongo_db["replayed"].find_one({"shot_key": agent[1]["shot_key"]})
    assert doc["_id"] == f"{topic}|0|1" and doc["_ingest"]["offset"] == 1 and doc["_ts"].year == 2026
    assert [e["_id"] for e in store.events_for_shot(agent[1]["shot_key"])] == [doc["_id"]]  # indexed
    assert store.search(store.EventQuery("replayed", source="agent")).events  # time index too

    out = io.StringIO()
    call_command("dead_letters", "replay", stdout=out)  # again, everything: nothing twice
    assert "0 stored" in out.getvalue() and "1 left" in out.getvalue() and "not valid JSON" in out.getvalue()
    assert store.count("replayed") == 3 and store.dead_letter_count() == 1
    call_command("dead_letters", "replay", "--ids", f"{topic}|0|3", stdout=io.StringIO())
    assert store.dead_letter_count() == 1


def test_replace_with_newer_routes_keep_the_newest_version_and_keep_first_routes_the_first(
    routes, run_watcher, make_topic, producer, mongo_db
):
    by_offset, by_version, keep, two_partitions = (
        make_topic(partitions=1),
        make_topic(partitions=1),
        make_topic(partitions=1),
        make_topic(partitions=2),
    )
    common = {"id_strategy": "field", "id_field": "id", "require_envelope": False, "timestamp_field": ""}
    routes(by_offset, "newest_by_offset", on_duplicate="replace_newer", **common)
    routes(by_version, "newest_by_version", on_duplicate="replace_newer", version_field="version", **common)
    routes(keep, "first_kept", **common)
    routes(two_partitions, "unordered", on_duplicate="replace_newer", **common)
    produce(producer, by_offset, [{"id": "a", "energy": 1.0}, {"id": "a", "energy": 1.5}])
    produce(producer, by_version, [{"id": "b", "version": 2, "x": "new"}, {"id": "b", "version": 1, "x": "old"}])
    produce(producer, keep, [{"id": "c", "x": 1}, {"id": "c", "x": 2}])
    producer.send(two_partitions, orjson.dumps({"id": "d", "x": 1}), partition=0)
    producer.send(two_partitions, orjson.dumps({"id": "d", "x": 2}), partition=1)
    producer.flush(30)
    watcher = run_watcher()
    wait_for(lambda: watcher.stored + watcher.duplicates + watcher.replaced + watcher.dead == 8, message="all handled")

    assert mongo_db["newest_by_offset"].find_one({"_id": "a"})["energy"] == 1.5
    assert mongo_db["newest_by_offset"].find_one({"_id": "a"})["_ingest"]["offset"] == 1
    assert mongo_db["newest_by_version"].find_one({"_id": "b"})["x"] == "new"
    assert mongo_db["first_kept"].find_one({"_id": "c"})["x"] == 1
    assert store.count("unordered") == 1
    (letter,) = store.dead_letters()
    assert letter["topic"] == two_partitions and "cannot be ordered" in letter["error"]
    assert watcher.replaced == 1

    produce(producer, by_offset, [{"id": "a", "energy": 1.5}])  # the same content again: a duplicate
    wait_for(lambda: watcher.duplicates == 3, message="the identical re-send recognised")
    assert watcher.replaced == 1


def test_dead_letters_re_read_by_another_group_are_not_counted_again(
    routes, run_watcher, make_topic, producer, mongo_db
):
    topic = make_topic(partitions=1)
    routes(topic, "recounted")
    produce(producer, topic, envelopes(5) + [b"{not json", b'{"a": "\xff"}'])
    first = run_watcher()
    wait_for(lambda: first.stored == 5 and first.dead == 2, message="5 stored, 2 dead letters")
    second = run_watcher()  # a new group: reads the topic from the start again
    wait_for(lambda: second.duplicates == 5, message="the re-read events recognised")
    wait_for(lambda: second.batches >= 1, message="the batch counted")
    assert second.dead == 0 and second.live.stats["recounted"].dead == 0 and store.dead_letter_count() == 2
    letters = {letter["offset"]: letter for letter in store.dead_letters()}
    assert letters[6]["error"] == "not valid UTF-8 at byte 7"


def test_a_new_group_started_from_latest_skips_what_the_topic_already_holds(
    routes, run_watcher, make_topic, producer, mongo_db
):
    topic = make_topic(partitions=1)
    routes(topic, "from_latest")
    old = envelopes(5, "OLD")
    produce(producer, topic, old)
    watcher = run_watcher(start_from="latest")
    new = iter(envelopes(200, "NEW"))

    def one_more_stored() -> bool:
        produce(producer, topic, [next(new)])  # until the watcher's position is set, a new one may be skipped too
        return store.count("from_latest") > 0

    wait_for(one_more_stored, timeout=60, interval=0.5, message="new events stored")
    assert not set(store.all_ids("from_latest")) & {e["event_id"] for e in old}
    assert watcher.duplicates == 0


@pytest.mark.parametrize(
    "bounds",
    [
        {"since": "0001-01-01T00:00"},
        {"until": "0001-01-01T00:30"},
        {"since": "0999-06-01T00:00"},
        {"until": "1000-01-01T00:30"},
    ],
)
def test_search_times_out_of_range_are_form_errors(admin_client, routes, mongo_db, bounds):
    routes("t.shots", "shots")
    store.prepare_collection("shots", timeseries=False)  # searched through its time index
    page = admin_client.get("/watcher/search/", {"collection": "shots", **bounds})
    assert page.status_code == 200
    assert b"out of the range the watcher can search" in page.content


def test_the_admin_offers_keep_first_or_replace_with_newer_per_route(admin_client, routes, mongo_db):
    from django.core.exceptions import ValidationError

    routes("t.kept", "kept_events")
    form = admin_client.get("/admin/watcher/route/add/").content.decode()
    assert 'name="on_duplicate"' in form and "Replace with a newer version" in form and 'name="version_field"' in form
    assert "Keep the first" in admin_client.get("/admin/watcher/route/").content.decode()
    with pytest.raises(ValidationError, match="Time-series collections cannot replace"):
        routes("t.ts", "ts_events", timeseries=True, on_duplicate="replace_newer")


def test_the_index_strategy_follows_the_server_unless_the_setting_names_one(settings):
    settings.LABBOOK_INDEX_STRATEGY = "auto"
    assert strategy().name == ("native" if mongo.queries_use_secondary_indexes() else "handmade")
    for name in ("native", "handmade"):
        settings.LABBOOK_INDEX_STRATEGY = name
        assert strategy().name == name
    settings.LABBOOK_INDEX_STRATEGY = "fast"
    with pytest.raises(ImproperlyConfigured, match="LABBOOK_INDEX_STRATEGY is 'fast'; it must be one of auto, "):
        strategy()


def test_replace_with_newer_orders_digit_versions_as_numbers_and_dead_letters_what_it_cannot_order(
    routes, run_watcher, make_topic, producer, mongo_db
):
    """No distinct version dropped silently: "10" is newer than "9"; an equal version with other
    content, or text versions that are neither digits nor ISO times, go to the dead letters."""
    topic = make_topic(partitions=1)
    common = {"id_strategy": "field", "id_field": "id", "require_envelope": False, "timestamp_field": ""}
    routes(topic, "versioned", on_duplicate="replace_newer", version_field="version", **common)
    produce(
        producer,
        topic,
        [
            {"id": "higher", "version": 1, "x": "old"},
            {"id": "higher", "version": 2, "x": "new"},
            {"id": "digits", "version": "9", "x": "old"},
            {"id": "digits", "version": "10", "x": "new"},
            {"id": "times", "version": "2026-12-02T09:00:00+00:00", "x": "old"},
            {"id": "times", "version": "2026-12-02T10:00:00+01:00", "x": "older"},
            {"id": "equal", "version": 3, "x": "a"},
            {"id": "equal", "version": 3, "x": "b"},
            {"id": "words", "version": "beta", "x": "a"},
            {"id": "words", "version": "alpha", "x": "b"},
        ],
    )
    watcher = run_watcher()
    wait_for(lambda: watcher.stored + watcher.duplicates + watcher.replaced + watcher.dead == 10, message="all handled")
    assert mongo_db["versioned"].find_one({"_id": "higher"})["x"] == "new"
    assert mongo_db["versioned"].find_one({"_id": "digits"})["x"] == "new"
    assert mongo_db["versioned"].find_one({"_id": "times"})["x"] == "old"  # 09:00 UTC both: not newer, same version
    assert watcher.replaced == 2
    errors = sorted(letter["error"] for letter in store.dead_letters())
    assert len(errors) == 3, errors
    assert all("cannot be ordered" in error or "same version" in error for error in errors), errors


@pytest.mark.parametrize("server_uses_indexes", [True, False])
def test_a_routed_collection_gets_the_server_indexes_it_needs_once(
    mongo_db, index_strategy, server_uses_indexes, monkeypatch
):
    """`shot_key` and `_ts` are indexed once per preparation: by the native strategy (which queries
    through them), or on a server whose queries use indexes for other programs; on FerretDB the
    hand-made strategy creates none (there an index only costs inserts)."""
    monkeypatch.setattr(mongo, "queries_use_secondary_indexes", lambda: server_uses_indexes)
    created = []
    create_index = Collection.create_index
    monkeypatch.setattr(
        Collection, "create_index", lambda self, keys, **kw: created.append(keys) or create_index(self, keys, **kw)
    )
    store.prepare_collection("indexed_once", timeseries=False)
    wanted = [] if index_strategy == "handmade" and not server_uses_indexes else ["shot_key", "_ts"]
    assert created == wanted
    assert {f"{key}_1" for key in wanted} <= set(mongo_db["indexed_once"].index_information())


def test_shot_keys_the_envelope_refuses_keep_their_older_index_entries_in_the_shot_join(
    routes, make_topic, mongo_db, handmade_indexes
):
    """The shot index buckets keys by `core.envelope.parse_shot_key`; an older version bucketed them
    with a regex of its own that also took keys the envelope refuses (a number of fewer than six
    digits, no experiment). Their events, indexed the old way, stay in the shot join beside the
    events indexed since (the read fallback in `handmade.shot_refs`)."""
    routes(make_topic(), "legacy_keys")
    short, no_experiment, canonical = envelopes(3, "LEG", start=123)
    short["shot_key"], no_experiment["shot_key"] = "LEG-20251124-123", "-20251124-000124"
    again = dict(short, event_id="d" * 32)  # the same shot, ingested after the upgrade
    events = [short, no_experiment, canonical, again]
    mongo_db["legacy_keys"].insert_many([{"_id": e["event_id"], **e, "_ts": datetime.now(UTC)} for e in events])

    def old_bucket(key: str) -> tuple[str, str]:  # the older version's bucketing
        match = re.match(r"^(?P<prefix>.*-(?P<date>\d{8}))-(?P<number>\d+)$", key)
        return f"shots_{match['date']}", f"{match['prefix']}-{int(match['number']) // 10}x"

    for event in (short, no_experiment, canonical):
        name, bucket = old_bucket(event["shot_key"])
        body = {
            "keys": [event["shot_key"]],
            "c": ["legacy_keys"],
            "ids": [event["event_id"]],
            "ts": [datetime.now(UTC)],
        }
        insert_slots(handmade.index_database()[name], {bucket: [body]}, {})
    assert handmade.shot_bucket(short["shot_key"]) == ("shots_other", "LEG-20251124-123")
    assert handmade.shot_bucket(no_experiment["shot_key"]) == ("shots_other", "-20251124-000124")
    assert handmade.shot_bucket(canonical["shot_key"]) == old_bucket(canonical["shot_key"])  # canonical keys stay
    handmade.index_shots({"legacy_keys": [{**again, "_id": again["event_id"], "_ts": datetime.now(UTC)}]}, {})
    handmade.index_shots({"legacy_keys": [{**short, "_id": short["event_id"], "_ts": datetime.now(UTC)}]}, {})  # again

    assert sorted(e["_id"] for e in store.events_for_shot(short["shot_key"])) == sorted(
        [short["event_id"], again["event_id"]]
    )
    assert [e["_id"] for e in store.events_for_shot(no_experiment["shot_key"])] == [no_experiment["event_id"]]
    assert [e["_id"] for e in store.events_for_shot(canonical["shot_key"])] == [canonical["event_id"]]
    found = store.search(store.EventQuery(collection="legacy_keys", shot_key=short["shot_key"])).events
    assert sorted(e["_id"] for e in found) == sorted([short["event_id"], again["event_id"]])
