"""The relay over real ZeroMQ sockets and real Kafka."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import msgpack
import orjson
import pytest
import zmq
from django.conf import settings
from django.core.management import CommandError, call_command
from kafka import KafkaConsumer

from core.envelope import SCHEMA_PATH, ShotKey, make_envelope, parse_shot_key, shot_key, validation_errors
from core.runloop import StopFlag
from core.times import epoch_ns
from relay import store
from relay.durable_log import DurableLog, read_all
from relay.models import RelayInput
from relay.parsers import PARSERS, ParseError, parse_json, parse_key_value, parse_msgpack
from relay.services.harmonise import ShotTracker
from relay.services.loop import Relay
from relay.services.replay import ReplayScope, replay

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=20.0, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


# --- envelope and parsers -------------------------------------------------------------------
def test_shot_keys_name_the_run_of_a_day_and_parse_back_into_their_parts():
    when = 1_764_000_000_123_456_789  # 2025-11-24 in Berlin
    first = shot_key("LWFA-2", 12, when, "Europe/Berlin")
    second = shot_key("LWFA-2", 12, when, "Europe/Berlin", run=2)
    assert (first, second) == ("LWFA-2-20251124-000012", "LWFA-2-r2-20251124-000012")
    assert parse_shot_key(first) == ShotKey("LWFA-2", "20251124", 1, 12)
    assert parse_shot_key(second) == ShotKey("LWFA-2", "20251124", 2, 12)
    assert parse_shot_key(" LWFA-20251124-1234567 ") == ShotKey("LWFA", "20251124", 1, 1_234_567)
    for not_a_key in ("shot 12", "LWFA-2025112-000012", "LWFA-20251124-12", "", None, 12):
        assert parse_shot_key(not_a_key) is None


def test_envelope_matches_its_schema_and_its_id_is_deterministic():
    args = dict(
        experiment="LWFA",
        source="laser",
        kind="shot",
        shot_number=42,
        laser_ts_ns=1_764_000_000_123_456_789,
        tz="Europe/Berlin",
        values={"energy_J": 9.8},
    )
    first, again = make_envelope(**args, seq=1), make_envelope(**args, seq=7)
    assert validation_errors(first) == []
    assert first["event_id"] == again["event_id"]  # a re-send or replay keeps its id
    assert make_envelope(**{**args, "shot_number": 43})["event_id"] != first["event_id"]
    assert first["shot_key"] == "LWFA-20251124-000042"  # local (Berlin) date of the laser time
    assert json.loads(SCHEMA_PATH.read_text())["title"].startswith("labbook shot envelope")
    broken = dict(first, shot_number="42", extra=1)
    errors = validation_errors(broken)
    assert any("shot_number" in e for e in errors) and any("extra" in e for e in errors)


def test_parsers_read_json_msgpack_and_key_value_and_name_the_problem():
    assert parse_json(b'{"shot": 1, "E": 2.5}') == {"shot": 1, "E": 2.5}
    assert parse_msgpack(msgpack.packb({"shot": 2, "mode": "burst"})) == {"shot": 2, "mode": "burst"}
    assert parse_key_value(b"shot=3 energy=1.25 ok=true mode=single") == {
        "shot": 3,
        "energy": 1.25,
        "ok": True,
        "mode": "single",
    }
    for parser, raw, problem in [
        (parse_json, b"{oops", "not valid JSON"),
        (parse_json, b"[1]", "expected a JSON object"),
        (parse_msgpack, b"\xc1", "not valid msgpack"),
        (parse_key_value, b"shot=1 energy", "'energy' is not key=value"),
    ]:
        with pytest.raises(ParseError, match=problem):
            parser(raw)


def test_event_times_in_every_unit_and_zone_read_as_one_instant():
    at = 1_764_000_000_123_456_789  # 2025-11-24 16:00:00.123456789 UTC
    for value, expected in [
        (1_764_000_000, 1_764_000_000 * 10**9),
        (1_764_000_000.5, 1_764_000_000_500_000_000),
        (1_764_000_000_123, 1_764_000_000_123_000_000),
        (1_764_000_000_123_456, 1_764_000_000_123_456_000),
        (at, at),
        ("2025-11-24T17:00:00.123456+01:00", 1_764_000_000_123_456_000),
        ("2025-11-24T16:00:00.123456Z", 1_764_000_000_123_456_000),
        ("2025-11-24T11:00:00.123456", 1_764_000_000_123_456_000),
    ]:  # naive: New York
        assert epoch_ns(value, "America/New_York") == expected, value
    assert epoch_ns("2025-11-24T17:00:00", "Europe/Berlin") == 1_764_000_000 * 10**9
    for unusable in ("soon", "", None, True, 1e30, float("nan"), "0001-01-01T00:00", [1], {"s": 1}):
        assert epoch_ns(unusable, "UTC") is None, unusable


def test_the_auto_parser_tells_json_msgpack_and_key_value_apart():
    auto = PARSERS["auto"]
    assert auto(b' {"shot": 1, "E": 2.5}') == {"shot": 1, "E": 2.5}
    assert auto(msgpack.packb({"shot": 2, "mode": "burst"})) == {"shot": 2, "mode": "burst"}
    big_map = {f"k{n}": n for n in range(20)}  # map16, not a fixmap
    assert auto(msgpack.packb(big_map)) == big_map
    assert auto(b"shot=3 energy=1.25") == {"shot": 3, "energy": 1.25}
    for raw, problem in [
        (b"{oops", "not valid JSON"),
        (b"[1, 2]", "'\\[1' is not key=value"),
        (b"\x81\xc1", "not valid msgpack"),
        (b"", "empty message"),
    ]:
        with pytest.raises(ParseError, match=problem):
            auto(raw)


def test_shot_tracker_flags_gaps_duplicates_and_counter_resets_and_counts_runs_per_day():
    tracker = ShotTracker()
    day = "20261202"
    flags = [tracker.observe(n, day)[1] for n in (1, 2, 2, 5, 6, 1, 2)]
    assert flags == [{}, {}, {"duplicate": True}, {"gap": 2}, {}, {"counter_reset": {"previous": 6, "run": 2}}, {}]
    assert (tracker.gaps, tracker.missing, tracker.duplicates, tracker.resets, tracker.run) == (1, 2, 1, 1, 2)
    assert tracker.observe(None, day) == (3, {"shot_number_assigned": True})
    assert tracker.observe(1, day)[1] == {"counter_reset": {"previous": 3, "run": 3}}
    assert tracker.observe(1, "20261203")[1] == {"duplicate": True} and tracker.run == 1  # a new day: run 1
    assert tracker.run_of("20261203") == 1 and tracker.run_of(day) == 1
    tracker.observe(0, "20261203")
    assert (tracker.run, tracker.run_of("20261203"), tracker.run_of("20261204")) == (2, 2, 1)


# --- the running relay ----------------------------------------------------------------------
class Laser:
    """A stand-in drive laser: a real PUB socket the relay subscribes to."""

    def __init__(self, context: zmq.Context) -> None:
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 0)
        self.endpoint_for_relay = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"

    def send_multipart(self, frames) -> None:
        self.pub.send_multipart(frames)


@pytest.fixture
def laser():
    context = zmq.Context()
    laser = Laser(context)
    yield laser
    laser.pub.close(0)
    context.term()


@pytest.fixture
def start_relay(tmp_path, mongo_db):
    started = []

    def start(laser_endpoint: str, **options) -> Relay:
        options.setdefault("kafka_topic", f"test.relay.{uuid.uuid4().hex[:8]}")
        inputs = [
            {
                "endpoint": laser_endpoint,
                "mode": "SUB",
                "topics": "",
                "parser": options.pop("parser", "json"),
                "source": "laser",
                "time_zone": options.pop("time_zone", ""),
            }
        ]
        relay = Relay(
            inputs=None if options.pop("from_admin", False) else inputs,
            pub_endpoint=f"tcp://127.0.0.1:{free_port()}",
            snapshot_endpoint=f"tcp://127.0.0.1:{free_port()}",
            log_dir=options.pop("log_dir", tmp_path / "log"),
            experiment="TST",
            stop=StopFlag(),
            heartbeat_seconds=0.3,
            **options,
        )
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        relay.ready.wait(10)
        started.append((relay, thread))
        return relay

    yield start
    for relay, thread in started:
        relay.stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the relay did not stop within 30 s"
        assert not (relay.shipper and relay.shipper.process.is_alive()), "its Kafka shipper outlived it"


def send_until_received(laser, relay, frames_list, timeout=10):
    """PUB drops until the relay's subscription arrives: send a probe first, then the messages."""
    deadline = time.monotonic() + timeout
    while relay.stats.received == 0 and time.monotonic() < deadline:
        laser.send_multipart([b"laser", b'{"kind": "probe"}'])
        time.sleep(0.05)
    for frames in frames_list:
        laser.send_multipart(frames)


def subscriber(endpoint: str, topic: bytes = b"laser"):
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(endpoint)
    return sub


def test_relay_publishes_logs_and_produces_harmonised_envelopes(laser, start_relay):
    relay = start_relay(laser.endpoint_for_relay)
    sub = subscriber(relay.pub_endpoint)
    heartbeat = subscriber(relay.pub_endpoint, b"heartbeat")
    time.sleep(0.3)
    shots = [
        [b"laser", orjson.dumps({"shot": n, "ts_ns": 1_764_000_000_000_000_000 + n, "energy_J": 9.5})]
        for n in (10, 11, 11, 14)
    ]
    send_until_received(laser, relay, shots + [[b"laser", b"garbage{"]])

    received = []
    while len(received) < 4 and sub.poll(5000):
        envelope = orjson.loads(sub.recv_multipart()[1])
        if envelope["kind"] == "shot":
            received.append(envelope)
    assert [e["shot_number"] for e in received] == [10, 11, 11, 14]
    assert all(validation_errors(e) == [] for e in received)
    assert received[2]["metadata"] == {"duplicate": True} and received[2]["event_id"] == received[1]["event_id"]
    assert received[3]["metadata"] == {"gap": 2}
    assert received[0]["values"] == {"energy_J": 9.5} and received[0]["transport"]["topic"] == "laser"
    assert [e["seq"] for e in received] == sorted(e["seq"] for e in received)
    assert heartbeat.poll(3000) and orjson.loads(heartbeat.recv_multipart()[1])["kind"] == "heartbeat"

    # the last shot, for a late subscriber, over REQ/REP
    request = zmq.Context.instance().socket(zmq.REQ)
    request.connect(relay.snapshot_endpoint)
    request.send(b"last")
    assert request.poll(3000)
    assert orjson.loads(request.recv())["shot_number"] == 14
    request.close(0)

    wait_for(lambda: relay.stats.rejected == 1, message="the malformed message rejected")
    consumer = KafkaConsumer(
        relay.kafka_topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    in_kafka = []
    for record in consumer:
        envelope = orjson.loads(record.value)
        if envelope["kind"] == "shot":
            in_kafka.append(envelope)
            assert record.key == envelope["shot_key"].encode()
        if len(in_kafka) == 4:
            break
    consumer.close()
    assert [e["event_id"] for e in in_kafka] == [e["event_id"] for e in received]

    relay.stop.set()
    wait_for(lambda: store.latest_shot() is not None, message="latest shot in MongoDB")
    assert store.latest_shot()["shot_number"] == 14
    logged = list(read_all(relay.log.directory))
    assert [
        r["envelope"]["shot_number"] for r in logged if r["type"] == "envelope" and r["envelope"]["kind"] == "shot"
    ] == [10, 11, 11, 14]
    rejected = [r for r in logged if r["type"] == "rejected"]
    assert rejected[0]["raw"] == "garbage{" and "not valid JSON" in rejected[0]["error"]
    sub.close(0)
    heartbeat.close(0)


def test_kafka_down_then_back_loses_nothing_and_replay_keeps_event_ids(laser, start_relay, tmp_path):
    log_dir = tmp_path / "log"
    topic = f"test.relay.down.{uuid.uuid4().hex[:8]}"
    # Kafka unreachable: the relay keeps publishing on ZeroMQ and logging.
    relay = start_relay(
        laser.endpoint_for_relay, kafka_servers=f"127.0.0.1:{free_port()}", kafka_topic=topic, log_dir=log_dir
    )
    sub = subscriber(relay.pub_endpoint)
    time.sleep(0.3)
    send_until_received(laser, relay, [[b"laser", orjson.dumps({"shot": n})] for n in range(1, 201)])
    wait_for(lambda: relay.stats.published >= 201, message="200 shots relayed")
    assert sub.poll(2000), "ZeroMQ output stopped while Kafka was down"
    assert relay.status()["kafka_backlog"] >= 200 and not relay.status()["kafka_connected"]
    relay.stop.set()
    time.sleep(0.5)

    # Kafka back: the next relay start produces the backlog from the log, in order.
    back = start_relay(laser.endpoint_for_relay, kafka_topic=topic, log_dir=log_dir)
    wait_for(lambda: back.shipper.shipped >= 201, timeout=30, message="backlog produced")
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    produced = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    shots = [e for e in produced if e["kind"] == "shot"]
    assert [e["shot_number"] for e in shots] == list(range(1, 201))

    replayed_topic = f"test.relay.replay.{uuid.uuid4().hex[:8]}"
    assert replay(log_dir, ReplayScope(shots=(50, 59)), topic=replayed_topic) == 10
    consumer = KafkaConsumer(
        replayed_topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    replayed = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    assert [e["event_id"] for e in replayed] == [e["event_id"] for e in shots[49:59]]
    sub.close(0)


def test_laser_times_in_any_unit_or_zone_date_the_shot_right(laser, start_relay):
    relay = start_relay(laser.endpoint_for_relay, kafka=False, time_zone="America/New_York")
    sub = subscriber(relay.pub_endpoint)
    time.sleep(0.3)
    sent = {
        1: {"timestamp": 1_764_000_000},
        2: {"timestamp": 1_764_000_000_123},  # s, ms
        3: {"time": 1_764_000_000_123_456},
        4: {"timestamp": 1_764_000_000_123_456_789},  # µs, ns
        5: {"time": "2025-11-24T17:00:00.5+01:00"},
        6: {"timestamp": "2025-11-24T11:00:00.25"},  # naive: New York
        7: {"ts_ns": 1_764_000_000_000_000_007},
    }
    send_until_received(laser, relay, [[b"laser", orjson.dumps({"shot": n, **t})] for n, t in sent.items()])
    received = {}
    while len(received) < len(sent) and sub.poll(5000):
        envelope = orjson.loads(sub.recv_multipart()[1])
        if envelope["kind"] == "shot":
            received[envelope["shot_number"]] = envelope
    second = 1_764_000_000 * 10**9
    assert {n: e["laser_ts_ns"] for n, e in received.items()} == {
        1: second,
        2: second + 123_000_000,
        3: second + 123_456_000,
        4: second + 123_456_789,
        5: second + 500_000_000,
        6: second + 250_000_000,
        7: second + 7,
    }
    assert {e["shot_key"].split("-")[1] for e in received.values()} == {"20251124"}  # New York's date
    assert all(e["values"] == {} for e in received.values())  # the time is read, not left among the values
    sub.close(0)


def test_a_laser_without_times_gives_every_shot_and_status_message_a_key_and_id_of_its_own(
    laser, start_relay, tmp_path
):
    """Three runs of shots 1–3 in one day (the counter reset twice), status messages without time."""
    relay = start_relay(laser.endpoint_for_relay, parser="kv", kafka=False)
    sub = subscriber(relay.pub_endpoint)
    time.sleep(0.3)
    messages = [
        b"shot=1 energy=1.5",
        b"shot=2 energy=1.5",
        b"kind=status state=ready",
        b"shot=3 energy=1.5",
        b"shot=1 energy=1.6",
        b"shot=2 energy=1.6",
        b"kind=status state=ready",
        b"shot=3 energy=1.6",
        b"shot=3 energy=1.6",  # a re-send: the duplicate keeps its key and id
        b"shot=1 energy=1.7",
        b"shot=2 energy=1.7",
        b"shot=3 energy=1.7",
        b"kind=status state=ready",
    ]
    send_until_received(laser, relay, [[b"laser", raw] for raw in messages])
    received = []
    while len(received) < len(messages) and sub.poll(5000):
        envelope = orjson.loads(sub.recv_multipart()[1])
        if envelope["kind"] != "probe":
            received.append(envelope)
    assert len(received) == len(messages)
    shots = [e for e in received if e["kind"] == "shot"]
    keys = [parse_shot_key(e["shot_key"]) for e in shots]
    assert [(k.run, k.number) for k in keys] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
        (2, 3),
        (2, 3),
        (3, 1),
        (3, 2),
        (3, 3),
    ]
    assert shots[6]["metadata"] == {"duplicate": True} and shots[6]["event_id"] == shots[5]["event_id"]
    assert len({e["shot_key"] for e in shots}) == 9 and len({e["event_id"] for e in shots}) == 9
    statuses = [e for e in received if e["kind"] == "status"]
    assert len({e["event_id"] for e in statuses}) == 3 and all(e["shot_key"] is None for e in statuses)
    assert all(validation_errors(e) == [] for e in received)
    assert shots[3]["shot_key"] == f"TST-r2-{keys[0].date}-000001"
    relay.stop.set()
    logged = [
        r["envelope"]
        for r in read_all(relay.log.directory)
        if r["type"] == "envelope" and r["envelope"]["kind"] != "probe"
    ]
    assert [e["event_id"] for e in logged] == [e["event_id"] for e in received]  # a replay sends these ids
    sub.close(0)


def three_days_of_three_runs(log_dir: Path) -> list[dict]:
    """Shots 1–3 in runs 1, 2 and 3 on each of three days (27), plus a status message a day."""
    log = DurableLog(log_dir, "never")
    envelopes = []
    for day in range(3):
        noon = 1_764_676_800 * 10**9 + day * 86_400 * 10**9  # 2025-12-02 12:00 UTC, + days
        for run in (1, 2, 3):
            for shot in (1, 2, 3):
                envelopes.append(
                    make_envelope(
                        experiment="TST",
                        source="laser",
                        kind="shot",
                        shot_number=shot,
                        laser_ts_ns=None,
                        relay_ts_ns=noon + run * 60 * 10**9 + shot * 10**9,
                        tz="Europe/Berlin",
                        run=run,
                        seq=len(envelopes) + 1,
                    )
                )
        envelopes.append(
            make_envelope(
                experiment="TST",
                source="laser",
                kind="status",
                shot_number=None,
                laser_ts_ns=None,
                relay_ts_ns=noon,
                tz="Europe/Berlin",
                seq=len(envelopes) + 1,
            )
        )
    log.append_lines([orjson.dumps({"type": "envelope", "envelope": e}) for e in envelopes])
    log.close()
    return envelopes


def test_relay_replay_sends_one_days_run_and_says_what_before_sending(tmp_path, kafka_admin, mongo_db):
    log_dir, topic = tmp_path / "log", f"test.relay.replay.{uuid.uuid4().hex[:8]}"
    envelopes = three_days_of_three_runs(log_dir)

    def replay_command(*args: str) -> str:
        out = io.StringIO()
        call_command("relay_replay", "--log-dir", str(log_dir), "--topic", topic, *args, stdout=out)
        return out.getvalue()

    with pytest.raises(CommandError, match="give --date"):
        replay_command("--shots", "1-3")  # every day's and every run's shots 1–3
    with pytest.raises(CommandError, match="in 3 runs .*20251202 run 1, 20251202 run 2, 20251202 run 3"):
        replay_command("--shots", "1-3", "--date", "2025-12-02")
    plan = replay_command("--shots", "2-3", "--date", "20251203", "--run", "3", "--dry-run")
    assert "2 envelope(s)" in plan and "20251203 run 3: 2 envelope(s), shots 2–3" in plan and "dry run" in plan
    assert topic not in kafka_admin.list_topics()  # nothing sent

    output = replay_command("--shots", "1-3", "--date", "20251203", "--run", "3")
    assert output.index("20251203 run 3: 3 envelope(s), shots 1–3") < output.index("3 envelopes produced")
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    replayed = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    expected = [
        e
        for e in envelopes
        if e["shot_key"] and parse_shot_key(e["shot_key"]).date == "20251203" and parse_shot_key(e["shot_key"]).run == 3
    ]
    assert [e["event_id"] for e in replayed] == [e["event_id"] for e in expected] and len(expected) == 3

    whole_day = replay_command("--date", "20251204", "--dry-run")
    assert "10 envelope(s)" in whole_day and "events of no shot (status …): 1" in whole_day
    window = replay_command("--since", "2025-12-02T13:01", "--until", "2025-12-02T13:01:59", "--dry-run")
    assert "20251202 run 1: 3 envelope(s), shots 1–3" in window and "run 2" not in window  # naive: Berlin
    kafka_admin.delete_topics([topic])


@pytest.mark.slow
def test_sigterm_mid_stream_exits_zero_with_every_received_message_in_the_log(laser, tmp_path, mongo_db):
    log_dir = tmp_path / "log"
    topic = f"test.relay.term.{uuid.uuid4().hex[:8]}"
    relay = relay_process(laser, log_dir, tmp_path, kafka_topic=topic, stdout=subprocess.PIPE)
    try:
        sent, deadline = 0, time.monotonic() + 30
        while time.monotonic() < deadline:  # stream until the relay has logged some, then SIGTERM mid-stream
            laser.send_multipart([b"laser", orjson.dumps({"shot": sent + 1, "energy_J": 1.0})])
            sent += 1
            if sent % 200 == 0 and sum(1 for _ in read_all(log_dir) if log_dir.exists()) > 2000:
                break
            time.sleep(0.0002)
        relay.send_signal(signal.SIGTERM)
        for n in range(sent + 1, sent + 500):  # still streaming while it shuts down
            laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
        output = relay.communicate(timeout=60)[0].decode()
    finally:
        relay.kill()
    assert relay.returncode == 0, output
    summary = next(line for line in output.splitlines() if line.startswith("relay:"))
    received = int(summary.split()[1])
    logged = list(read_all(log_dir))
    assert received > 2000 and len(logged) == received, summary
    numbers = [r["envelope"]["shot_number"] for r in logged]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


@pytest.mark.slow
def test_kafka_killed_mid_run_then_back_has_every_event_in_kafka(laser, start_relay, private_kafka):
    topic = f"test.relay.kill.{uuid.uuid4().hex[:8]}"
    relay = start_relay(laser.endpoint_for_relay, kafka_servers=private_kafka.address, kafka_topic=topic)
    sub = subscriber(relay.pub_endpoint)
    time.sleep(0.3)
    send_until_received(laser, relay, [[b"laser", orjson.dumps({"shot": n})] for n in range(1, 301)])
    wait_for(lambda: relay.shipper.shipped >= 301, timeout=60, message="the first 300 shots in Kafka")

    private_kafka.kill()
    for n in range(301, 601):
        laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
        time.sleep(0.002)
    wait_for(lambda: relay.stats.published >= 601, message="ZeroMQ output went on without Kafka")
    assert sub.poll(2000)
    wait_for(lambda: not relay.status()["kafka_connected"], timeout=30, message="the outage noticed")
    assert relay.status()["kafka_backlog"] > 0

    private_kafka.start()
    wait_for(lambda: relay.shipper.shipped >= 601, timeout=90, message="the backlog produced")
    consumer = KafkaConsumer(
        topic, bootstrap_servers=private_kafka.address, auto_offset_reset="earliest", consumer_timeout_ms=10000
    )
    in_kafka = {orjson.loads(r.value)["shot_number"] for r in consumer if b'"kind":"shot"' in r.value}
    consumer.close()
    assert in_kafka == set(range(1, 601))
    sub.close(0)


@pytest.mark.slow
def test_a_kafka_broker_killed_at_1_khz_leaves_every_event_in_kafka_once(laser, start_relay, private_kafka):
    """kill -9 of the broker with a batch in flight: the shipper's producer retries it with the
    same producer id and sequence numbers, so the restarted broker keeps one copy."""
    topic = f"test.relay.idempotent.{uuid.uuid4().hex[:8]}"
    relay = start_relay(laser.endpoint_for_relay, kafka_servers=private_kafka.address, kafka_topic=topic)
    send_until_received(laser, relay, [])
    streaming = threading.Event()
    streaming.set()

    def stream() -> None:  # the laser at ~1 kHz all along
        n = 0
        while streaming.is_set():
            n += 1
            laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
            time.sleep(0.001)

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    try:
        for _ in range(2):  # two broker kills
            shipped = relay.shipper.shipped
            wait_for(
                lambda shipped=shipped: relay.shipper.shipped > shipped + 1000,
                timeout=90,
                message="shots flowing to Kafka",
            )
            private_kafka.kill()
            wait_for(lambda: not relay.status()["kafka_connected"], timeout=60, message="the outage noticed")
            private_kafka.start()
    finally:
        streaming.clear()
        sender.join(10)
    wait_for(lambda: relay.shipper.shipped >= relay.stats.published, timeout=120, message="everything shipped")
    logged = [r["envelope"]["event_id"] for r in read_all(relay.log.directory) if r["type"] == "envelope"]
    consumer = KafkaConsumer(
        topic, bootstrap_servers=private_kafka.address, auto_offset_reset="earliest", consumer_timeout_ms=15000
    )
    in_kafka = [orjson.loads(r.value)["event_id"] for r in consumer]
    consumer.close()
    twice = len(in_kafka) - len(set(in_kafka))
    assert set(in_kafka) == set(logged), f"{len(set(logged) - set(in_kafka))} logged events not in Kafka"
    assert twice == 0, f"{twice} of {len(in_kafka)} records written twice"


@pytest.mark.slow
def test_a_killed_kafka_shipper_is_started_again_and_ships_everything(laser, start_relay):
    relay = start_relay(laser.endpoint_for_relay)
    send_until_received(laser, relay, [[b"laser", orjson.dumps({"shot": n})] for n in range(1, 101)])
    wait_for(lambda: relay.shipper.shipped >= 101, timeout=60, message="the first 100 shots in Kafka")
    os.kill(relay.shipper.process.pid, signal.SIGKILL)
    for n in range(101, 201):
        laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
    wait_for(lambda: relay.status()["kafka_shipper_restarts"] == 1, message="the shipper started again")
    wait_for(lambda: relay.shipper.shipped >= 201, timeout=60, message="the rest shipped")
    consumer = KafkaConsumer(
        relay.kafka_topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    in_kafka = {orjson.loads(r.value)["shot_number"] for r in consumer if b'"kind":"shot"' in r.value}
    consumer.close()
    assert in_kafka == set(range(1, 201))


@pytest.mark.slow
def test_a_restarted_laser_is_followed_as_a_new_run_not_a_gap_storm(start_relay):
    context = zmq.Context.instance()
    port = free_port()

    def laser_on_port():
        pub = context.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 0)
        pub.bind(f"tcp://127.0.0.1:{port}")
        return pub

    laser = laser_on_port()
    relay = start_relay(f"tcp://127.0.0.1:{port}")
    send_until_received(laser, relay, [[b"laser", orjson.dumps({"shot": n})] for n in range(5000, 5050)])
    wait_for(
        lambda: relay.status()["last_shot"] and relay.status()["last_shot"]["shot_number"] == 5049,
        message="the first run relayed",
    )
    laser.close(0)  # the laser process goes away …
    time.sleep(1.0)
    laser = laser_on_port()  # … and comes back on its endpoint, counting from 1 again
    deadline = time.monotonic() + 20
    while relay.status()["last_shot"]["shot_number"] == 5049 and time.monotonic() < deadline:
        laser.send_multipart([b"laser", b'{"kind": "probe"}'])  # until the relay has reconnected
        time.sleep(0.05)
    for n in range(1, 21):
        laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
    wait_for(lambda: relay.status()["last_shot"]["shot_number"] == 20, message="the new run relayed")
    status = relay.status()
    assert (status["counter_resets"], status["gaps"], status["missing_shots"]) == (1, 0, 0)
    relay.stop.set()
    shots = [
        r["envelope"]
        for r in read_all(relay.log.directory)
        if r["type"] == "envelope" and r["envelope"]["kind"] == "shot"
    ]
    reset = next(e for e in shots if e["shot_number"] == 1)
    assert reset["metadata"] == {"counter_reset": {"previous": 5049, "run": 2}}
    assert [e["shot_number"] for e in shots] == list(range(5000, 5050)) + list(range(1, 21))
    laser.close(0)


def receive_until(sub, condition, timeout: float = 30, message: str = "an envelope") -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sub.poll(100):
            envelope = orjson.loads(sub.recv_multipart()[-1])
            if condition(envelope):
                return envelope
    raise AssertionError(f"timed out waiting for {message}")


def test_admin_edits_of_relay_inputs_take_effect_without_a_restart(laser, start_relay, transactional_db):
    other_context = zmq.Context()
    second_laser = Laser(other_context)
    main = RelayInput.objects.create(name="main", endpoint=laser.endpoint_for_relay, parser="json", source="laser")
    relay = start_relay(laser.endpoint_for_relay, from_admin=True, kafka=False)
    sub = subscriber(relay.pub_endpoint, b"")
    try:
        time.sleep(0.3)
        send_until_received(laser, relay, [])

        second = RelayInput.objects.create(
            name="second", endpoint=second_laser.endpoint_for_relay, parser="kv", source="laser2"
        )

        def probe_second():  # until the relay has opened the new input and its subscription arrived
            second_laser.send_multipart([b"laser", b"kind=probe"])
            return False

        envelope = receive_until(sub, lambda e: probe_second() or e.get("source") == "laser2", message="the new input")
        assert envelope["kind"] == "probe"

        main.parser, main.source = "auto", "laser-a"  # edited: now reads key=value too
        main.save()

        def send_kv_shot():
            laser.send_multipart([b"laser", b"shot=5 energy=1.5"])
            return False

        envelope = receive_until(sub, lambda e: send_kv_shot() or e.get("source") == "laser-a", message="the edit")
        assert envelope["shot_number"] == 5 and envelope["values"] == {"energy": 1.5}

        second.enabled = False
        second.save()
        deadline = time.monotonic() + 30
        while any(s["source"] == "laser2" for s in list(relay.sockets.values())):
            assert time.monotonic() < deadline, "the disabled input was never closed"
            time.sleep(0.1)
        second_laser.send_multipart([b"laser", b"shot=99"])
        laser.send_multipart([b"laser", b"kind=marker"])
        seen = []
        receive_until(sub, lambda e: seen.append(e) or e.get("kind") == "marker", message="the marker")
        assert not any(e.get("source") == "laser2" for e in seen)
    finally:
        sub.close(0)
        second_laser.pub.close(0)
        other_context.term()


def relay_process(
    laser, log_dir: Path, tmp_path: Path, *extra: str, kafka_topic: str | None = None, stdout=subprocess.DEVNULL
) -> subprocess.Popen:
    """`manage.py relay` as its own process (to kill); without Kafka unless a topic is named."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": settings.MONGODB_DB,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.sqlite3'}",
        **({"RELAY_KAFKA_TOPIC": kafka_topic} if kafka_topic else {}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "relay",
            "--input",
            laser.endpoint_for_relay,
            "--log-dir",
            str(log_dir),
            "--pub",
            f"tcp://127.0.0.1:{free_port()}",
            "--snapshot",
            f"tcp://127.0.0.1:{free_port()}",
            "--no-live",
            *([] if kafka_topic else ["--no-kafka"]),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is subprocess.PIPE else subprocess.DEVNULL,
    )


def logged_envelopes(log_dir: Path) -> list[dict]:
    return [r["envelope"] for r in read_all(log_dir) if r["type"] == "envelope"] if log_dir.exists() else []


def probe_until_logged(laser, log_dir: Path, timeout: float = 60) -> None:
    """Probes until the (re)started relay has subscribed and logged one."""
    before = sum(1 for e in logged_envelopes(log_dir) if e["kind"] == "probe")
    deadline = time.monotonic() + timeout
    while sum(1 for e in logged_envelopes(log_dir) if e["kind"] == "probe") == before:
        assert time.monotonic() < deadline, "the relay never subscribed"
        laser.send_multipart([b"laser", b'{"kind": "probe"}'])
        time.sleep(0.1)


@pytest.mark.slow
def test_after_kill_9_and_restart_seq_goes_on_and_the_first_shot_reports_the_shots_missed(laser, tmp_path, mongo_db):
    log_dir = tmp_path / "log"
    relay = relay_process(laser, log_dir, tmp_path)
    try:
        probe_until_logged(laser, log_dir)
        for n in range(1, 101):
            laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
        wait_for(lambda: any(e["shot_number"] == 100 for e in logged_envelopes(log_dir)), message="shot 100 logged")
        relay.send_signal(signal.SIGKILL)  # at once: its counters saved a second ago are behind the log
        relay.wait(10)
        before = logged_envelopes(log_dir)
        # shots 101–521 go by while no relay listens
        relay = relay_process(laser, log_dir, tmp_path)
        probe_until_logged(laser, log_dir)
        for n in range(522, 532):
            laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
        wait_for(lambda: any(e["shot_number"] == 531 for e in logged_envelopes(log_dir)), message="shot 531 logged")
    finally:
        relay.kill()
        relay.wait(10)
    envelopes = logged_envelopes(log_dir)
    seqs = [e["seq"] for e in envelopes]
    assert seqs == list(range(1, len(envelopes) + 1)), "seq started again after the restart"
    after = [e for e in envelopes[len(before) :] if e["kind"] == "shot"]
    assert after[0]["shot_number"] == 522
    assert after[0]["metadata"]["gap"] == 421
    assert after[0]["metadata"]["relay_restart"]["previous"] == 100
    down_since = after[0]["metadata"]["relay_restart"]["down_since_ns"]
    assert before[-1]["relay_ts_ns"] <= down_since < after[0]["relay_ts_ns"]
    assert all(e["metadata"] == {} for e in after[1:])
    assert len({e["event_id"] for e in envelopes}) == len(envelopes)


def test_counters_come_back_from_the_log_alone_when_their_file_is_lost(laser, start_relay, tmp_path):
    log_dir = tmp_path / "log"
    relay = start_relay(laser.endpoint_for_relay, kafka=False, log_dir=log_dir, parser="kv")
    send_until_received(laser, relay, [[b"laser", b"shot=%d" % n] for n in (7, 8, 9)])
    trackers = relay.counters.trackers
    wait_for(lambda: trackers.get("laser") and trackers["laser"].last == 9, message="shot 9")
    relay.stop.set()
    wait_for(lambda: (log_dir / "counters.json").exists(), message="counters saved on the way out")
    last_seq = relay.counters.seq
    (log_dir / "counters.json").unlink()  # e.g. a relay of the version before, or a lost file
    again = Relay(inputs=[], log_dir=log_dir, experiment="TST", live=False, kafka=False)
    assert again.counters.seq == last_seq and again.counters.last_shot["shot_number"] == 9
    tracker = again.counters.trackers["laser"]
    down_since = tracker.relay_down_since_ns
    assert (tracker.last, tracker.run) == (9, 1) and down_since >= relay.counters.last_shot["relay_ts_ns"]
    assert tracker.observe(12, tracker.date)[1] == {
        "relay_restart": {"previous": 9, "down_since_ns": down_since},
        "gap": 2,
    }
    assert tracker.observe(13, tracker.date)[1] == {}
    again.log.close()


def child_pids(pid: int) -> list[int]:
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


@pytest.mark.slow
def test_relay_killed_with_sigkill_leaves_no_kafka_shipper_behind(tmp_path, mongo_db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": settings.MONGODB_DB,
        "RELAY_KAFKA_TOPIC": f"test.relay.kill9.{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.sqlite3'}",
    }
    relay = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "relay",
            "--input",
            f"tcp://127.0.0.1:{free_port()}",
            "--log-dir",
            str(tmp_path / "log"),
            "--pub",
            f"tcp://127.0.0.1:{free_port()}",
            "--snapshot",
            f"tcp://127.0.0.1:{free_port()}",
            "--no-live",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def shipper_pids():
            return [pid for pid in child_pids(relay.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

        wait_for(lambda: shipper_pids(), timeout=30, message="the relay's Kafka shipper")
        shipper = shipper_pids()[0]
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        wait_for(
            lambda: not Path(f"/proc/{shipper}").exists()
            or Path(f"/proc/{shipper}/stat").read_text().split()[2] == "Z",
            timeout=15,
            message="the orphaned shipper to stop by itself",
        )
    finally:
        relay.kill()


@pytest.mark.slow
def test_every_envelope_a_subscriber_saw_is_in_the_log_after_kill_9_mid_burst(laser, tmp_path, mongo_db):
    log_dir, pub = tmp_path / "log", f"tcp://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "MONGODB_DB": settings.MONGODB_DB,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.sqlite3'}",
    }
    relay = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "relay",
            "--input",
            laser.endpoint_for_relay,
            "--log-dir",
            str(log_dir),
            "--pub",
            pub,
            "--snapshot",
            f"tcp://127.0.0.1:{free_port()}",
            "--no-live",
            "--no-kafka",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sub = subscriber(pub)
    sub.setsockopt(zmq.RCVHWM, 0)
    try:
        deadline = time.monotonic() + 30
        while not sub.poll(50) and time.monotonic() < deadline:  # until both connections stand
            laser.send_multipart([b"laser", orjson.dumps({"kind": "probe"})])
        seen, n, deadline = set(), 0, time.monotonic() + 60
        while len(seen) <= 20_000 and time.monotonic() < deadline:  # flat out; killed while at work
            n += 1
            laser.send_multipart([b"laser", orjson.dumps({"shot": n, "energy_J": 1.0})])
            if n % 1000 == 0:
                while sub.poll(0):
                    seen.add(orjson.loads(sub.recv_multipart()[1])["event_id"])
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        while sub.poll(500):  # what was already on its way
            seen.add(orjson.loads(sub.recv_multipart()[1])["event_id"])
    finally:
        relay.kill()
        sub.close(0)
    logged = {r["envelope"]["event_id"] for r in read_all(log_dir) if r["type"] == "envelope"}
    assert len(seen) > 20_000
    assert seen <= logged, f"{len(seen - logged)} published envelopes missing from the log"


def test_the_relay_records_each_shot_by_its_key_for_the_shot_sheet(laser, start_relay):
    relay = start_relay(laser.endpoint_for_relay, kafka=False)
    shots = [[b"laser", orjson.dumps({"shot": n, "ts_ns": 1_764_000_000_000_000_000 + n})] for n in (21, 22, 23)]
    send_until_received(laser, relay, shots + [[b"laser", b'{"kind": "status"}']])
    first = shot_key("TST", 21, 1_764_000_000_000_000_021, settings.TIME_ZONE)
    wait_for(lambda: store.shot(first) is not None, message="shot 21 recorded in MongoDB")
    assert store.shot(first)["laser_ts_ns"] == 1_764_000_000_000_000_021
    assert store.shot(first.replace("000021", "000022"))["shot_number"] == 22  # not only the latest shot
    assert store.latest_shot()["shot_number"] == 23
    assert store.shot("TST-20251124-999999") is None


def test_values_json_cannot_encode_are_kept_in_a_json_form_and_the_relay_keeps_running(laser, start_relay):
    """Bytes, non-text map keys and integers beyond 64 bits used to crash the relay (and drop the
    run it was handling); they are stored in a documented JSON form, and the next shot gets through."""
    relay = start_relay(laser.endpoint_for_relay, parser="auto")
    sub = subscriber(relay.pub_endpoint)
    time.sleep(0.3)
    awkward = [
        msgpack.packb({"shot": 1, "img": b"\x00\xff"}),
        msgpack.packb({"shot": 2, "m": {1: 2}}),
        b"shot=3 big=99999999999999999999",
    ]
    send_until_received(laser, relay, [[b"laser", raw] for raw in awkward] + [[b"laser", b'{"shot": 4}']])
    shots = {}
    while len(shots) < 4 and sub.poll(10000):
        envelope = orjson.loads(sub.recv_multipart()[1])
        if envelope["kind"] == "shot":
            shots[envelope["shot_number"]] = envelope
    assert sorted(shots) == [1, 2, 3, 4]
    assert shots[1]["values"]["img"] == {"$binary": "AP8="}
    assert shots[2]["values"]["m"] == {"1": 2}
    assert shots[3]["values"]["big"] == "99999999999999999999"
    assert relay.stats.rejected == 0


@pytest.mark.slow
def test_editing_an_inputs_parser_mid_stream_loses_and_repeats_no_message(laser, start_relay, transactional_db):
    """An edit of only parser, source or time zone keeps the socket (a new SUB would miss what the
    laser sends before its subscription arrives); the spec is swapped in place."""
    main = RelayInput.objects.create(name="main", endpoint=laser.endpoint_for_relay, parser="json", source="laser")
    relay = start_relay(laser.endpoint_for_relay, from_admin=True, kafka=False)
    send_until_received(laser, relay, [])
    streaming, sent = threading.Event(), []
    streaming.set()

    def stream() -> None:  # ~1 kHz
        n = 0
        while streaming.is_set():
            n += 1
            laser.send_multipart([b"laser", orjson.dumps({"shot": n})])
            sent.append(n)
            time.sleep(0.001)

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    try:
        wait_for(lambda: len(sent) > 500, message="the stream under way")
        main.parser = "auto"
        main.save()
        wait_for(lambda: any(s["parser"] == "auto" for s in list(relay.sockets.values())), message="the edit applied")
        count = len(sent)
        wait_for(lambda: len(sent) > count + 500, message="the stream after the edit")
    finally:
        streaming.clear()
        sender.join(10)
    last = sent[-1]

    def logged_numbers() -> list[int]:
        return [
            r["envelope"]["shot_number"]
            for r in read_all(relay.log.directory)
            if r["type"] == "envelope" and r["envelope"]["kind"] == "shot"
        ]

    wait_for(lambda: last in logged_numbers(), message="the last message logged")
    numbers = logged_numbers()
    assert len(numbers) == len(set(numbers)), f"{len(numbers) - len(set(numbers))} messages twice"
    assert set(range(1, last + 1)) - set(numbers) == set(), "messages lost in the edit"


def harmonised(harmoniser, *raws: bytes, source: str = "laser") -> list[dict]:
    spec = {"parser": "kv", "source": source, "time_zone": "UTC", "endpoint": "tcp://x:1", "mode": "SUB"}
    return [harmoniser.envelope_for(spec, b"laser", raw) for raw in raws]


def test_distinct_events_of_one_shot_without_laser_time_get_distinct_ids(mongo_db):
    from relay.services.harmonise import Harmoniser, ShotCounters

    charging, fired = harmonised(
        Harmoniser("TST", ShotCounters()), b"kind=status shot=2 state=charging", b"kind=status shot=2 state=fired"
    )
    assert charging["shot_key"] == fired["shot_key"]
    assert charging["event_id"] != fired["event_id"]


def test_a_shot_number_repeated_with_another_laser_time_is_a_new_shot_in_the_next_run(mongo_db):
    from relay.services.harmonise import Harmoniser, ShotCounters

    first, resent, other = harmonised(
        Harmoniser("TST", ShotCounters()),
        b"shot=5 ts_ns=1764000000000000000",
        b"shot=5 ts_ns=1764000000000000000",
        b"shot=5 ts_ns=1764000001000000000",
    )
    assert resent["metadata"] == {"duplicate": True} and resent["event_id"] == first["event_id"]
    assert other["metadata"] == {"counter_reset": {"previous": 5, "run": 2}}
    assert other["shot_key"] != first["shot_key"] and parse_shot_key(other["shot_key"]).run == 2
    assert other["event_id"] != first["event_id"]


def test_a_diagnostics_event_takes_the_run_of_the_source_that_counts_shots(mongo_db):
    """One current run per experiment and day, set by the shot-counting source: a diagnostic's
    `shot=2` after the laser's counter reset names run 2's shot 2, not run 1's."""
    from relay.services.harmonise import Harmoniser, ShotCounters

    harmoniser = Harmoniser("TST", ShotCounters())
    shots = harmonised(harmoniser, b"shot=1", b"shot=2", b"shot=3", b"shot=1", b"shot=2")
    assert parse_shot_key(shots[-1]["shot_key"]).run == 2
    (measurement,) = harmonised(harmoniser, b"kind=measurement shot=2 energy_J=1.5", source="diagnostic")
    assert measurement["shot_key"] == shots[-1]["shot_key"]
