"""The watcher fed by clients nobody on the project wrote: a librdkafka producer (confluent-kafka)
with each compression codec, and records the watcher cannot decode."""

import logging
import signal
import subprocess

import orjson
import pytest
from confluent_kafka import Producer
from django.conf import settings

from watcher import store

from .conftest import add_route_in, envelopes, start_watch, wait_for

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def librdkafka_send(
    topic: str, payloads: list[dict], compression: str, partition: int | None = None, headers: list | None = None
) -> None:
    """Send as a lab's own producer would: librdkafka, one compressed batch."""
    producer = Producer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "compression.type": compression,
            "linger.ms": 20,
            "acks": "all",
        }
    )
    errors = []
    for payload in payloads:
        options = {"partition": partition} if partition is not None else {}
        producer.produce(
            topic,
            orjson.dumps(payload),
            headers=headers,
            on_delivery=lambda error, _: error and errors.append(error),
            **options,
        )
    assert producer.flush(30) == 0 and not errors, errors


def test_records_of_a_librdkafka_producer_are_stored_with_every_compression_codec(
    routes, run_watcher, make_topic, mongo_db
):
    sent = {}
    for codec in CODECS:
        topic = make_topic(partitions=2)
        routes(topic, f"codec_{codec}")
        sent[codec] = envelopes(30, f"C{codec.upper()}")
        librdkafka_send(topic, sent[codec], codec)
    run_watcher()
    wait_for(
        lambda: all(store.count(f"codec_{codec}") == 30 for codec in CODECS),
        timeout=60,
        message="30 events of each codec stored",
    )
    for codec in CODECS:
        assert sorted(store.all_ids(f"codec_{codec}")) == sorted(e["event_id"] for e in sent[codec])
    assert store.dead_letter_count() == 0


def test_an_undecodable_partition_stops_alone_with_a_visible_error_and_the_watcher_still_stops(
    routes, run_watcher, make_topic, producer, mongo_db, monkeypatch, caplog, admin_client
):
    """A codec missing in this process: its partition pauses, every other partition and route
    flows on, the error is on the status and the page, and stop still works (the fixture joins)."""
    monkeypatch.setattr("kafka.codec.has_snappy", lambda: False)
    mixed, other = make_topic(partitions=2), make_topic(partitions=1)
    routes(mixed, "mixed_events")
    routes(other, "other_events")
    librdkafka_send(mixed, envelopes(5, "SNAPPY"), "snappy", partition=0)
    plain = envelopes(7, "PLAIN")
    for event in plain:
        producer.send(mixed, orjson.dumps(event), partition=1)
    for event in envelopes(10, "OTHER"):
        producer.send(other, orjson.dumps(event))
    producer.flush(30)

    with caplog.at_level(logging.ERROR, logger="watcher.services.loop"):
        watcher = run_watcher(live=True, name="codec-test")
        wait_for(
            lambda: store.count("other_events") == 10 and store.count("mixed_events") == 7,
            timeout=60,
            message="the other route and the other partition stored",
        )
        wait_for(lambda: watcher.undecodable, timeout=30, message="the undecodable partition reported")
        for event in envelopes(10, "LATER", start=100):  # still flowing after the partition stopped
            producer.send(other, orjson.dumps(event))
        producer.flush(30)
        wait_for(lambda: store.count("other_events") == 20, timeout=60, message="the other route flowing on")

    ((partition, stopped),) = watcher.undecodable.items()
    assert (partition.topic, partition.partition, stopped.offset) == (mixed, 0, 0)
    assert "snappy" in stopped.error
    assert any("snappy" in record.getMessage() and f"{mixed}/0" in record.getMessage() for record in caplog.records)
    assert set(store.all_ids("mixed_events")) == {e["event_id"] for e in plain}
    wait_for(
        lambda: b"snappy" in admin_client.get("/watcher/").content,
        timeout=15,
        message="the stopped partition on the watcher page",
    )
    page = admin_client.get("/watcher/").content.decode()
    assert f"{mixed}/0" in page and "stopped at offset 0" in page


@pytest.mark.slow
def test_manage_py_watch_without_the_snappy_codec_flows_on_and_exits_on_sigterm(
    watch_env, make_topic, producer, tmp_path
):
    """The issue's repro as a process: a lab PC without python-snappy, a snappy producer."""
    blocked = tmp_path / "without-snappy"
    blocked.mkdir()
    (blocked / "snappy.py").write_text('raise ImportError("python-snappy left out by the test")\n')
    topic = make_topic(partitions=2)
    add_route_in(watch_env, topic, "sigterm_events")
    librdkafka_send(topic, envelopes(5, "SNAPPY"), "snappy", partition=0)
    plain = envelopes(8, "PLAIN")
    for event in plain:
        producer.send(topic, orjson.dumps(event), partition=1)
    producer.flush(30)

    watch = start_watch({**watch_env, "PYTHONPATH": str(blocked)}, "test-sigterm-" + topic[-6:])
    try:
        wait_for(lambda: store.count("sigterm_events") == 8, timeout=90, message="the other partition stored")
        later = envelopes(8, "LATER", start=100)  # polls after the failed fetch still bring records
        for event in later:
            producer.send(topic, orjson.dumps(event), partition=1)
        producer.flush(30)
        wait_for(lambda: store.count("sigterm_events") == 16, timeout=60, message="the other partition flowing on")
    finally:
        watch.send_signal(signal.SIGTERM)
        try:
            output = watch.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            watch.kill()  # not left spinning on the shared machine
            raise AssertionError("SIGTERM not acted on within 30 s") from None
    assert watch.returncode == 0, output
    assert f"partition {topic}/0 stopped at offset 0" in output and "snappy" in output
    assert "watch: 16 stored" in output


def test_only_errors_raised_decoding_records_pause_a_partition(monkeypatch):
    """A partition is paused for an error raised in kafka-python's codec or record code (a codec
    library's), never for any other non-Kafka exception from poll(): that would stop a healthy
    partition for a bug elsewhere."""
    import kafka.codec

    from watcher.services.loop import raised_in_decoding

    monkeypatch.setattr("kafka.codec.has_snappy", lambda: False)
    with pytest.raises(NotImplementedError) as from_codec:
        kafka.codec.snappy_decode(b"\x00")
    assert raised_in_decoding(from_codec.value)
    with pytest.raises(KeyError) as elsewhere:
        {}["a bug in the watcher or a listener"]
    assert not raised_in_decoding(elsewhere.value)
