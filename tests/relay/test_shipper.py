"""The Kafka shipper against a broker of the test's own (tests/conftest.py private_kafka)."""

import multiprocessing
import os
import threading
import time

import orjson
import pytest
from kafka import KafkaConsumer

from relay.durable_log import DurableLog
from relay.services import shipper as shipper_module
from relay.services.shipper import KafkaShipper, SharedValues


def wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.1)


def log_envelopes(log: DurableLog, numbers: range) -> None:
    log.append_lines([orjson.dumps({"type": "envelope", "envelope": {"event_id": f"e{n}", "n": n}}) for n in numbers])


@pytest.mark.slow
def test_a_kafka_outage_longer_than_the_delivery_timeout_is_sent_again_from_the_log(
    tmp_path, private_kafka, monkeypatch
):
    """Batches that expired while Kafka was away fail for good: a new producer sends them again
    from the cursor, and nothing is missing (consumers store each event id once)."""
    monkeypatch.setattr(shipper_module, "DELIVERY_TIMEOUT_MS", 7000)  # >= linger + request timeout
    log = DurableLog(tmp_path / "log", fsync="always")
    topic = f"test.shipper.expiry.{os.getpid()}.{time.monotonic_ns()}"
    shared = SharedValues(
        stop=multiprocessing.Value("b", 0, lock=False),
        shipped=multiprocessing.Value("q", 0, lock=False),
        connected=multiprocessing.Value("b", 0, lock=False),
    )
    shipper = KafkaShipper(tmp_path / "log", topic, private_kafka.address, shared, relay_pid=os.getppid())
    thread = threading.Thread(target=shipper.run, daemon=True)
    thread.start()
    try:
        log_envelopes(log, range(1, 101))
        wait_for(lambda: shared.shipped.value >= 100, 60, "the first 100 envelopes in Kafka")
        private_kafka.kill()
        log_envelopes(log, range(101, 301))
        wait_for(lambda: not shared.connected.value, 30, "the outage noticed")
        time.sleep(7 + 5)  # outage longer than the delivery timeout: the in-flight batch expires
        private_kafka.start()
        wait_for(lambda: shared.shipped.value >= 300, 90, "the backlog shipped after the outage")
    finally:
        shared.stop.value = 1
        thread.join(30)
        log.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=private_kafka.address, auto_offset_reset="earliest", consumer_timeout_ms=10000
    )
    in_kafka = {orjson.loads(record.value)["event_id"] for record in consumer}
    consumer.close()
    assert in_kafka == {f"e{n}" for n in range(1, 301)}
