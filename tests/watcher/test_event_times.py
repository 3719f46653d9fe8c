"""The watcher reads event times as the relay does (core.times): any unit, any offset, naive = lab zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from django.conf import settings

from watcher.services.convert import to_datetime

from .conftest import wait_for

BASE = datetime(2025, 11, 24, 16, 0, tzinfo=UTC)


def test_event_times_in_every_unit_are_one_instant_and_naive_text_is_lab_time():
    lab_time = BASE.astimezone(ZoneInfo(settings.TIME_ZONE)).replace(tzinfo=None)
    for value in (
        1_764_000_000,
        1_764_000_000.0,
        1_764_000_000_000,
        1_764_000_000_000_000,
        1_764_000_000_000_000_000,
        "2025-11-24T17:00:00+01:00",
        "2025-11-24T16:00:00Z",
        lab_time.isoformat(),
    ):
        assert to_datetime(value) == BASE, value
    assert to_datetime(1_764_000_000_123) == BASE + timedelta(milliseconds=123)
    for unusable in ("soon", None, False, 1e30, "0001-01-01T00:00"):
        assert to_datetime(unusable) is None, unusable


def test_a_naive_event_time_from_kafka_is_stored_as_lab_time(routes, run_watcher, make_topic, producer, mongo_db):
    topic = make_topic()
    routes(topic, "naive_clocks", timestamp_field="t", require_envelope=False)
    lab_time = BASE.astimezone(ZoneInfo(settings.TIME_ZONE)).replace(tzinfo=None)
    producer.send(topic, orjson.dumps({"event_id": "naive", "t": lab_time.isoformat(), "source": "clock"}))
    producer.send(topic, orjson.dumps({"event_id": "ms", "t": 1_764_000_000_250, "source": "clock"}))
    producer.flush(30)
    watcher = run_watcher()
    wait_for(lambda: watcher.stored == 2, message="both stored")
    stored = {doc["_id"]: doc["_ts"] for doc in mongo_db["naive_clocks"].find()}
    assert stored == {"naive": BASE, "ms": BASE + timedelta(milliseconds=250)}
