"""The relay: drive-laser messages in, harmonised shot envelopes out (PUB, durable log, Kafka).

The relay is the one place where a shot's identity is made. Kafka is fed from the durable
log by a shipper thread with a saved cursor, so a Kafka outage costs nothing but delay: the
backlog waits on disk (bounded memory) and is produced, in order, once Kafka answers again.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zmq
from django import db
from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from core.envelope import local_date, make_envelope, parse_shot_key
from core.runloop import StopFlag
from core.times import epoch_ns

from . import live, store
from .durable_log import Cursor, DurableLog, StateFile, read_from, tail_start
from .parsers import PARSERS, ParseError

log = logging.getLogger(__name__)
SHIPPER_NICENESS = 10
RECORDED_SHOTS = 1000  # shots recorded by key per status round (0.5 s): every shot up to 2 kHz, newest kept above
COUNTERS_TAIL_BYTES = 8 * 2**20  # without saved counters: where to look for the last shots in the log
INPUTS_RELOAD_SECONDS = 2.0
DELIVERY_TIMEOUT_MS = 300_000  # Kafka away longer: the batch fails and is sent again from the log
RUN = 64  # messages harmonised, logged (one write) and published together in a burst; at 1 kHz a run is one message


@dataclass
class ShotTracker:
    """Gap, duplicate and counter-reset detection on one source's shot numbers, and its runs.

    A counter that goes back within a local day starts the day's next run (the shot key names
    it, so a key never names two shots); a new day starts at run 1.
    """

    last: int | None = None
    date: str = ""  # local YYYYMMDD of the last shot
    run: int = 1
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    resets: int = 0
    relay_down_since_ns: int | None = None  # restored after a restart: the next shot reports it

    def observe(self, shot: int | None, date: str) -> tuple[int, dict]:
        """The shot number to use (assigned when the laser gives none) and the flags to record;
        `self.run` is then the shot's run."""
        flags: dict = {}
        if self.relay_down_since_ns is not None:  # whatever follows (gap, reset) happened while the relay was down
            flags["relay_restart"] = {"previous": self.last, "down_since_ns": self.relay_down_since_ns}
            self.relay_down_since_ns = None
        if shot is None:
            shot = 1 if self.last is None else self.last + 1
            flags["shot_number_assigned"] = True
        elif self.last is not None:
            if shot == self.last:
                self.duplicates += 1
                flags["duplicate"] = True
            elif shot > self.last + 1:
                self.gaps += 1
                self.missing += shot - self.last - 1
                flags["gap"] = shot - self.last - 1
            elif shot < self.last:
                # The laser restarted (new day or run): a new counter, not thousands of gaps.
                self.resets += 1
                self.run = self.run + 1 if date == self.date else 1
                flags["counter_reset"] = {"previous": self.last, "run": self.run}
        if date != self.date:
            self.run, self.date = 1, date
        self.last = shot
        return shot, flags

    def counters(self) -> dict:
        """What a restarted relay needs to go on counting (see Relay.restore_counters)."""
        return {"last": self.last, "date": self.date, "run": self.run}

    def run_of(self, date: str) -> int:
        """The run a shot number of another kind of event (a diagnostic's) on `date` belongs to."""
        return self.run if date == self.date else 1


def laser_time_ns(message: dict, tz: str) -> int | None:
    """The laser's timestamp: `ts_ns` (int ns), or `timestamp`/`time` in any unit or ISO 8601
    (core.times; naive text in the input's zone `tz`). An unreadable time stays among the values."""
    if type(message.get("ts_ns")) is int:
        return message.pop("ts_ns")
    for key in ("timestamp", "time"):
        if key in message:
            ns = epoch_ns(message[key], tz)
            if ns is not None:
                del message[key]
                return ns
    return None


def shot_number_of(message: dict) -> int | None:
    for key in ("shot", "shot_number", "shot_id"):
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            message.pop(key)
            return value
        if isinstance(value, str) and value.isdigit():
            message.pop(key)
            return int(value)
    return None


def input_specs() -> list[dict]:
    """The enabled inputs of the admin's *Relay inputs*; RELAY_DEFAULT_INPUT while there are none
    at all (inputs that are all disabled mean: read nothing)."""
    from .models import RelayInput

    inputs = list(RelayInput.objects.order_by("name"))
    if not inputs:
        return [dict(settings.RELAY_DEFAULT_INPUT)]
    return [i.as_spec() for i in inputs if i.enabled]


@dataclass
class InFlight:
    """Envelopes handed to the producer and not yet acknowledged, and the log position after them."""

    futures: list
    end: tuple[str, int]


class KafkaShipper:
    """Produces the log's envelopes to Kafka from a saved cursor, in order, each once.

    It runs in a process of its own (see ShipperProcess): kafka-python is pure Python, and
    in the relay's process it would take the GIL from the ZeroMQ loop (5 k instead of 14 k msg/s).

    Each once: the producer is idempotent (a producer id and per-partition sequence numbers
    the broker checks), and while Kafka is away the shipper keeps that producer and its batches
    in flight, which it retries, so a broker killed with a batch appended but not acknowledged
    keeps one copy. (Dropping the producer and sending again from the cursor wrote 6,031 of
    64,443 records twice over two broker kills at 1 kHz.) Only a batch that failed for good
    (delivery timeout, a fatal error) is sent again from the cursor, by a new producer: at least
    once, and consumers store each event id once.
    """

    def __init__(self, directory, topic: str, bootstrap_servers: str, stop, shipped, connected,
                 relay_pid: int) -> None:
        self.directory, self.topic, self.bootstrap_servers = Path(directory), topic, bootstrap_servers
        # Shared with the relay as lock-free values: a shipper killed with -9 while holding a
        # multiprocessing lock or waiting on an Event would leave it stuck for the relay.
        self.stop_requested, self.shipped, self.connected = stop, shipped, connected
        self.cursor = Cursor(self.directory / "kafka-cursor.json")
        self.producer: KafkaProducer | None = None
        self.in_flight: InFlight | None = None
        self.terminated = False  # set by SIGTERM
        self.relay_pid = relay_pid  # from the relay itself: it may be gone before this process is up

    def orphaned(self) -> bool:
        return os.getppid() != self.relay_pid

    def stopping(self) -> bool:
        return bool(self.stop_requested.value) or self.terminated or self.orphaned()

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping() and time.monotonic() < deadline:
            time.sleep(min(0.02, seconds))

    def connect(self) -> bool:
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=2,
                request_timeout_ms=5000, max_block_ms=5000, reconnect_backoff_max_ms=2000,
                delivery_timeout_ms=DELIVERY_TIMEOUT_MS)  # retries: until then, with the same sequence numbers
            return True
        except KafkaError as exc:
            log.warning("Kafka at %s not reachable (%s); envelopes wait in the log", self.bootstrap_servers, exc)
            return False

    def ship_once(self, limit: int = 5000, wait: float = 2) -> int:
        """Produce up to `limit` logged envelopes after the cursor and move the cursor once Kafka
        acknowledged them all. KafkaTimeoutError after `wait` s: they stay in flight, the next
        call waits on (not sent again); a batch that failed for good raises its error."""
        if self.in_flight is None:
            futures, end = [], None
            try:
                for file, offset, record in read_from(self.directory, self.cursor.file, self.cursor.offset, limit):
                    end = (file, offset)
                    if record.get("type") == "envelope":
                        envelope = record["envelope"]
                        futures.append(self.producer.send(
                            self.topic, orjson.dumps(envelope),
                            key=(envelope.get("shot_key") or envelope["event_id"]).encode()))
            except KafkaTimeoutError as exc:  # no metadata: part of the run was never handed over
                raise KafkaError(f"Kafka did not answer in time: {exc}") from None
            if end is None:
                return 0
            self.in_flight = InFlight(futures, end)
        self.producer.flush(timeout=wait)  # returns when every batch is acknowledged or failed
        failed = next((future for future in self.in_flight.futures if future.failed()), None)
        if failed is not None:
            raise failed.exception
        self.cursor.save(*self.in_flight.end)
        sent, self.in_flight = len(self.in_flight.futures), None
        self.shipped.value += sent
        return sent

    def run(self) -> None:
        delay = 0.5
        while not self.stopping():
            if self.producer is None and not self.connect():
                self.pause(delay)
                delay = min(delay * 2, 5)
                continue
            try:
                shipped = self.ship_once()
                self.connected.value, delay = True, 0.5
                if not shipped:
                    self.pause(0.02)
            except KafkaTimeoutError:  # Kafka away: the producer retries what is in flight, we wait
                self.connected.value = False
            except Exception as exc:  # failed for good, or anything else: the cursor says what to resend
                self.connected.value = False
                log.warning("Kafka produce failed (%s: %s); sending again from the log in %.1f s",
                            type(exc).__name__, exc, delay, exc_info=not isinstance(exc, KafkaError))
                self.discard_producer()
                self.pause(delay)
                delay = min(delay * 2, 5)
        if self.orphaned():  # the relay was killed: the next one ships from the cursor itself
            log.warning("the relay (pid %d) is gone; the Kafka shipper stops", self.relay_pid)
        else:
            self.drain()

    def discard_producer(self) -> None:
        """Drop the producer and what it still buffers (kafka-python's close can raise when Kafka is gone)."""
        self.in_flight = None
        try:
            self.producer.close(timeout=0)
        except Exception:
            pass
        self.producer = None

    def drain(self, seconds: float = 10) -> None:
        """On shutdown: give Kafka a few seconds to take what is left; the rest stays in the log."""
        deadline = time.monotonic() + seconds
        try:
            if self.producer is None and not self.connect():
                return
            while time.monotonic() < deadline and self.ship_once(wait=max(0.1, deadline - time.monotonic())):
                pass
        except KafkaError as exc:
            log.warning("Kafka backlog left in the log for the next start: %s", exc)
        finally:
            if self.producer:
                self.discard_producer()  # what it did not deliver stays after the cursor


def _run_shipper(directory, topic, bootstrap_servers, stop, shipped, connected, relay_pid) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shipper = KafkaShipper(directory, topic, bootstrap_servers, stop, shipped, connected, relay_pid)
    # Ctrl-C reaches the whole process group: the relay stops the shipper itself, after its log.
    # SIGTERM for the shipper alone (multiprocessing's terminate at exit) means: drain, then exit.
    # The handler only sets an attribute: taking the shared Event's lock there can deadlock.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: setattr(shipper, "terminated", True))
    # Below the relay's own priority: in a burst the CPU goes to the ZeroMQ path the experiments
    # wait on; the backlog waits in the log and is produced as soon as the burst is over.
    os.nice(SHIPPER_NICENESS)
    shipper.run()


class ShipperProcess:
    """The Kafka shipper in its own process, with its counters shared with the relay.

    The relay checks on it (`ensure_running`) and starts it again should it die: the cursor in
    the log says where it was.
    """

    def __init__(self, directory, topic: str, bootstrap_servers: str) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.args = (str(directory), topic, bootstrap_servers)
        self._stop = self.context.Value("b", 0, lock=False)
        self._shipped = self.context.Value("q", 0, lock=False)  # written by the shipper only
        self._connected = self.context.Value("b", 0, lock=False)
        self.process = None
        self.restarts = 0

    @property
    def shipped(self) -> int:
        return self._shipped.value

    @property
    def connected(self) -> bool:
        return bool(self._connected.value)

    def start(self) -> None:
        self.process = self.context.Process(
            target=_run_shipper, name="relay-kafka", daemon=True,
            args=(*self.args, self._stop, self._shipped, self._connected, os.getpid()))
        self.process.start()

    def ensure_running(self) -> None:
        if self.process and not self.process.is_alive() and not self._stop.value:
            self.restarts += 1
            self._connected.value = False
            log.error("the Kafka shipper died (exit code %s); starting it again (restart %d)",
                      self.process.exitcode, self.restarts)
            self.start()

    def stop(self, timeout: float = 20) -> None:
        self._stop.value = 1
        if self.process.is_alive() or self.process.exitcode is None:
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


@dataclass
class RelayStats:
    received: int = 0
    rejected: int = 0
    published: int = 0
    started: float = field(default_factory=time.monotonic)
    window: list = field(default_factory=list)


def drain(queue: deque) -> list:
    """What is in a deque now, taken out (the relay loop appends meanwhile; the last status
    round, at exit, may drain beside the status thread)."""
    taken = []
    for _ in range(len(queue)):
        try:
            taken.append(queue.popleft())
        except IndexError:
            break
    return taken


class Relay:
    """One relay process: `run()` returns after `stop` is set, with the log flushed."""

    def __init__(self, *, inputs: list[dict] | None = None, pub_endpoint: str | None = None,
                 snapshot_endpoint: str | None = None, kafka_servers: str | None = None,
                 kafka_topic: str | None = None, log_dir=None, fsync: str | None = None,
                 experiment: str | None = None, heartbeat_seconds: float | None = None,
                 stop: StopFlag | None = None, live: bool = True, kafka: bool = True) -> None:
        self.inputs_from_admin = inputs is None  # then re-read every INPUTS_RELOAD_SECONDS
        self.inputs = inputs if inputs is not None else input_specs()
        self.changed_inputs: list[dict] | None = None  # set by the thread re-reading them, applied by the loop
        self.sockets: dict[zmq.Socket, dict] = {}  # input socket → its spec, as the loop uses it
        self.poller = zmq.Poller()
        self.pub_endpoint = pub_endpoint or settings.RELAY_PUB_ENDPOINT
        self.snapshot_endpoint = snapshot_endpoint or settings.RELAY_SNAPSHOT_ENDPOINT
        self.kafka_servers = kafka_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.kafka_topic = kafka_topic or settings.RELAY_KAFKA_TOPIC
        self.log = DurableLog(log_dir or settings.RELAY_LOG_DIR, fsync or settings.RELAY_LOG_FSYNC,
                              settings.RELAY_FSYNC_SECONDS)
        self.experiment = experiment or settings.RELAY_EXPERIMENT
        self.heartbeat_seconds = heartbeat_seconds or settings.RELAY_HEARTBEAT_SECONDS
        self.stop = stop or StopFlag()
        self.live, self.kafka = live, kafka
        self.stats = RelayStats()
        self.counters = StateFile(self.log.directory / "counters.json")
        self.trackers: dict[str, ShotTracker] = {}
        self.seq = 0
        self.last_shot: dict | None = None
        self.unrecorded_shots: deque[dict] = deque(maxlen=RECORDED_SHOTS)  # for the status thread to record
        self.log_position: tuple[str, int] = ("", 0)  # up to where the saved counters hold
        self.restore_counters()
        self.ready = threading.Event()
        self.shipper = ShipperProcess(self.log.directory, self.kafka_topic, self.kafka_servers) if kafka else None

    # --- counters that survive a restart -------------------------------------------------
    def restore_counters(self) -> None:
        """Seq, the last shot and each source's shot counter and run as the previous relay left
        them: the counters it saved (every second), brought up to date with the log lines after
        them (a relay killed -9 saved up to a second before its last line). Each source's next
        shot then reports the relay's downtime, and the shots missed in it as a gap."""
        saved = self.counters.load()
        self.seq, self.last_shot = saved.get("seq", 0), saved.get("last_shot")
        self.trackers = {source: ShotTracker(**counters) for source, counters in saved.get("sources", {}).items()}
        down_since = saved.get("alive_ns")
        file, offset = saved.get("log") or tail_start(self.log.directory, COUNTERS_TAIL_BYTES)
        self.log_position = (file, offset)
        for file, offset, record in read_from(self.log.directory, file, offset, limit=2**62):
            self.log_position = (file, offset)
            envelope = record.get("envelope") if record.get("type") == "envelope" else None
            if not envelope:
                continue
            self.seq = max(self.seq, envelope.get("seq") or 0)
            down_since = max(down_since or 0, envelope.get("relay_ts_ns") or 0)
            key = parse_shot_key(envelope.get("shot_key"))
            if envelope.get("kind") == "shot" and key:
                self.trackers[envelope["source"]] = ShotTracker(last=envelope["shot_number"], date=key.date,
                                                                run=key.run)
                self.last_shot = envelope
        for tracker in self.trackers.values():
            tracker.relay_down_since_ns = down_since
        if saved or self.seq:
            log.info("relay: counters restored (seq %d, %d source(s)); the relay was down since %s",
                     self.seq, len(self.trackers), down_since)

    def save_counters(self) -> None:
        """Once a second from the loop (the only thread that moves them), so they match the log position."""
        self.log_position = self.log.position() or self.log_position
        self.counters.save({"log": self.log_position, "seq": self.seq, "alive_ns": time.time_ns(),
                            "last_shot": self.last_shot,
                            "sources": {source: tracker.counters() for source, tracker in self.trackers.items()}})

    # --- harmonisation ----------------------------------------------------------------
    def envelope_for(self, spec: dict, topic: bytes, raw: bytes) -> dict:
        message = PARSERS[spec["parser"]](raw)
        shot = shot_number_of(message)
        laser_ts = laser_time_ns(message, spec["time_zone"])
        relay_ts = time.time_ns()
        source = spec["source"]
        kind = str(message.pop("kind", "shot"))
        flags: dict = {}
        run = 1
        if kind == "shot" or shot is not None:
            date = local_date(laser_ts or relay_ts, settings.TIME_ZONE)
            tracker = self.trackers.get(source) or self.trackers.setdefault(source, ShotTracker())
            if kind == "shot":  # other kinds (status, probe …) neither take nor move the shot counter
                shot, flags = tracker.observe(shot, date)
            run = tracker.run_of(date)
        self.seq += 1
        return make_envelope(
            experiment=self.experiment, source=source, kind=kind, shot_number=shot, laser_ts_ns=laser_ts,
            tz=settings.TIME_ZONE, run=run, relay_ts_ns=relay_ts, seq=self.seq,
            transport={"endpoint": spec["endpoint"], "mode": spec["mode"], "topic": topic.decode(errors="replace")},
            values=message, metadata=flags,
        )

    def handle(self, spec: dict, messages: list[list[bytes]], pub: zmq.Socket) -> None:
        """Harmonise a run of messages from one input, log them in one write, then publish them.

        Logged before published: what an experiment saw on the PUB socket is in the log (and so
        reaches Kafka) even if the relay is killed right after. One write per run, not per
        message: in a burst a write(2) each took a fifth of the relay's time.
        """
        lines, published = [], []
        for frames in messages:
            self.stats.received += 1
            topic, raw = (frames[0], frames[-1]) if len(frames) > 1 else (b"", frames[0])
            try:
                envelope = self.envelope_for(spec, topic, raw)
            except ParseError as exc:
                self.stats.rejected += 1
                lines.append(orjson.dumps({"type": "rejected", "at_ns": time.time_ns(), "endpoint": spec["endpoint"],
                                           "error": str(exc), "raw": raw.decode(errors="backslashreplace")}))
                if self.stats.rejected <= 10 or self.stats.rejected % 1000 == 0:  # rate-limited
                    log.warning("rejected message #%d from %s: %s", self.stats.rejected, spec["endpoint"], exc)
                continue
            encoded = orjson.dumps(envelope)  # encoded once, for the log and the PUB socket
            lines.append(b'{"type":"envelope","envelope":' + encoded + b"}")
            published.append((envelope, encoded))
        if lines:
            self.log.append_lines(lines)
        for envelope, encoded in published:
            pub.send_multipart([spec["source_topic"], encoded])
            if envelope["kind"] == "shot":
                self.last_shot = envelope
                self.unrecorded_shots.append(envelope)
        self.stats.published += len(published)

    # --- inputs -----------------------------------------------------------------------------
    def open_input(self, context: zmq.Context, spec: dict) -> zmq.Socket:
        socket = context.socket(zmq.SUB if spec["mode"] == "SUB" else zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)  # laser restarts: reconnect quickly
        if spec["mode"] == "SUB":
            for prefix in [t.strip() for t in spec.get("topics", "").split(",")] or [""]:
                socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        socket.connect(spec["endpoint"])
        self.sockets[socket] = {**spec, "source_topic": spec["source"].encode(),  # the PUB topic, encoded once
                                "time_zone": spec.get("time_zone") or settings.TIME_ZONE, "spec": spec}
        self.poller.register(socket, zmq.POLLIN)
        return socket

    def apply_inputs(self, context: zmq.Context, specs: list[dict], pub: zmq.Socket) -> None:
        """Open the inputs new in `specs`, then close those no longer there (an edited input is
        both), after handling what they had already received."""
        self.inputs = specs
        current = [spec["spec"] for spec in self.sockets.values()]
        for spec in specs:
            if spec not in current:
                self.open_input(context, spec)
                log.info("relay: input %s (%s, %s parser, source %s) opened", spec["endpoint"], spec["mode"],
                         spec["parser"], spec["source"])
        for socket, spec in list(self.sockets.items()):
            if spec["spec"] not in specs:
                self.receive(socket, spec, pub)
                self.poller.unregister(socket)
                socket.close(linger=0)
                del self.sockets[socket]
                log.info("relay: input %s (%s parser, source %s) closed", spec["endpoint"], spec["parser"],
                         spec["source"])

    def watch_inputs_every(self, seconds: float) -> None:
        """Re-read the admin's inputs (off the loop: a database query would delay shots); the
        loop applies a changed list."""
        try:
            while not self.stop.wait(seconds):
                try:
                    specs = input_specs()
                except Exception as exc:  # the configuration database away: keep the inputs there are
                    log.warning("relay inputs not re-read: %s", exc)
                    continue
                if specs != self.inputs:
                    self.changed_inputs = specs
        finally:
            db.connection.close()

    def receive(self, socket: zmq.Socket, spec: dict, pub: zmq.Socket) -> bool:
        """Handle what `socket` has received, in runs of RUN, up to 16 runs (a burst of 1024
        must not starve the other inputs); True if there was anything."""
        for count in range(16):
            messages = []
            while len(messages) < RUN:
                try:
                    messages.append(socket.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
            if messages:
                self.handle(spec, messages, pub)
            if len(messages) < RUN:
                return bool(messages) or count > 0
        return True

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        if self.shipper:
            self.shipper.start()  # before any ZeroMQ context exists
        context = zmq.Context()
        pub = context.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 100_000)
        pub.bind(self.pub_endpoint)
        snapshot = context.socket(zmq.REP)
        snapshot.bind(self.snapshot_endpoint)
        self.poller.register(snapshot, zmq.POLLIN)
        for spec in self.inputs:
            self.open_input(context, spec)
        last_message = last_check = time.monotonic()
        gc.freeze()  # what start-up made lives on: keep it out of the collections a burst triggers
        if self.live:  # MongoDB and Redis writes off the loop: they would delay shots by milliseconds
            threading.Thread(target=self.publish_status_every, args=(0.5,), name="relay-status", daemon=True).start()
        if self.inputs_from_admin:
            threading.Thread(target=self.watch_inputs_every, args=(INPUTS_RELOAD_SECONDS,), name="relay-inputs",
                             daemon=True).start()
        self.ready.set()
        log.info("relay: %d input(s) → PUB %s, Kafka %s (%s), log %s", len(self.sockets), self.pub_endpoint,
                 self.kafka_topic if self.kafka else "off", self.kafka_servers, self.log.directory)
        try:
            while not self.stop.is_set():
                events = dict(self.poller.poll(100))
                for socket, spec in self.sockets.items():  # changed by the loop only, below
                    if socket in events and self.receive(socket, spec, pub):
                        last_message = time.monotonic()
                if snapshot in events:
                    snapshot.recv()
                    snapshot.send(orjson.dumps(self.last_shot or {}))
                if self.changed_inputs is not None:
                    specs, self.changed_inputs = self.changed_inputs, None
                    self.apply_inputs(context, specs, pub)
                now = time.monotonic()
                if now - last_check >= 1:
                    if self.shipper:
                        self.shipper.ensure_running()
                    self.save_counters()
                    last_check = now
                if now - last_message >= self.heartbeat_seconds:
                    pub.send_multipart([b"heartbeat", orjson.dumps(
                        {"kind": "heartbeat", "relay_ts_ns": time.time_ns(), "seq": self.seq,
                         "last_shot_key": (self.last_shot or {}).get("shot_key")})])
                    last_message = now
        finally:
            self.log.close()
            self.save_counters()
            if self.shipper:
                self.shipper.stop()
            if self.live:
                self.publish_status()
            for socket in [*self.sockets, pub, snapshot]:
                socket.close(linger=500)
            context.term()

    # --- live status ------------------------------------------------------------------------
    def status(self) -> dict:
        elapsed = max(time.monotonic() - self.stats.started, 1e-9)
        shot = self.last_shot
        trackers = list(self.trackers.values())  # the loop may add a source meanwhile
        return {
            "rate": round(self.stats.published / elapsed, 2),
            "received": self.stats.received, "rejected": self.stats.rejected,
            "published": self.stats.published,
            "last_shot": {k: shot[k] for k in ("shot_key", "shot_number", "laser_ts_ns", "event_id")} if shot else None,
            "gaps": sum(t.gaps for t in trackers),
            "missing_shots": sum(t.missing for t in trackers),
            "duplicates": sum(t.duplicates for t in trackers),
            "counter_resets": sum(t.resets for t in trackers),
            "kafka_connected": bool(self.shipper and self.shipper.connected),
            "kafka_shipped": self.shipper.shipped if self.shipper else 0,
            "kafka_shipper_restarts": self.shipper.restarts if self.shipper else 0,
            "kafka_backlog": max(0, self.stats.published - (self.shipper.shipped if self.shipper else 0)),
            "at": time.time(),
        }

    def publish_status_every(self, seconds: float) -> None:
        while not self.stop.wait(seconds):
            self.publish_status()

    def publish_status(self) -> None:
        status = self.status()
        shots = drain(self.unrecorded_shots)
        try:
            store.record_shots(shots)
            store.save_state(status, self.last_shot)
        except Exception as exc:  # the status is best effort; relaying goes on
            log.warning("relay status not saved: %s", exc)
        live.send_status(status)

    def summary(self) -> str:
        s = self.status()
        return (f"relay: {s['received']} received, {s['published']} published, {s['rejected']} rejected, "
                f"{s['gaps']} gaps, {s['duplicates']} duplicates, {s['counter_resets']} counter resets, "
                f"{s['kafka_shipped']} produced to Kafka, {self.log.lines} log lines")


@dataclass(frozen=True)
class ReplayScope:
    """Which logged envelopes a replay sends. Shot numbers restart every day and every run, so
    a shot range means something only within a day (`date`) or time window, and a run."""

    since_ns: int | None = None
    until_ns: int | None = None
    date: str | None = None  # local YYYYMMDD, as in the shot key
    run: int | None = None  # None: every run
    shots: tuple[int, int] | None = None

    def includes(self, envelope: dict) -> bool:
        when = envelope.get("laser_ts_ns") or envelope.get("relay_ts_ns")
        if self.since_ns is not None and (when is None or when < self.since_ns):
            return False
        if self.until_ns is not None and (when is None or when > self.until_ns):
            return False
        if self.date is None and self.run is None and self.shots is None:
            return True
        key = parse_shot_key(envelope.get("shot_key"))
        if key is None:  # an event of no shot: only a day (of its time) can take it in
            return self.run is None and self.shots is None and when is not None \
                and local_date(when, settings.TIME_ZONE) == self.date
        return ((self.date is None or key.date == self.date) and (self.run is None or key.run == self.run)
                and (self.shots is None or self.shots[0] <= key.number <= self.shots[1]))


@dataclass
class ReplayGroup:
    """The envelopes of one day's run (or of no shot) a replay sends."""

    count: int = 0
    first: int | None = None  # lowest and highest shot number
    last: int | None = None

    def add(self, number: int | None) -> None:
        self.count += 1
        if number is not None:
            self.first = number if self.first is None else min(self.first, number)
            self.last = number if self.last is None else max(self.last, number)


def logged_envelopes(directory, scope: ReplayScope):
    for _, _, record in read_from(Path(directory), "", 0, limit=2**62):
        if record.get("type") == "envelope" and scope.includes(record["envelope"]):
            yield record["envelope"]


def replay_plan(directory, scope: ReplayScope) -> dict[tuple[str, int] | None, ReplayGroup]:
    """What a replay of `scope` would send, by (day, run) of the shot key; None: events of no shot."""
    plan: dict[tuple[str, int] | None, ReplayGroup] = {}
    for envelope in logged_envelopes(directory, scope):
        key = parse_shot_key(envelope.get("shot_key"))
        plan.setdefault((key.date, key.run) if key else None, ReplayGroup()).add(key.number if key else None)
    return dict(sorted(plan.items(), key=lambda item: item[0] or ("", 0)))


def replay(directory, scope: ReplayScope, *, topic: str | None = None, bootstrap_servers: str | None = None) -> int:
    """Produce the logged envelopes in `scope` to Kafka again, as logged (same event ids)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    sent = 0
    for envelope in logged_envelopes(directory, scope):
        producer.send(topic or settings.RELAY_KAFKA_TOPIC, orjson.dumps(envelope),
                      key=(envelope.get("shot_key") or envelope["event_id"]).encode())
        sent += 1
    producer.flush(60)
    producer.close()
    return sent
