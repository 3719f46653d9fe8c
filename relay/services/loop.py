"""The relay's loop: drive-laser messages in (ZeroMQ), harmonised shot envelopes out (PUB,
durable log, and Kafka through the shipper process).

One thread moves the shot counters and the log: the loop. Beside it, a status thread sends
the live status and a second thread re-reads the admin's inputs, both off the shots' path.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque

import orjson
import zmq
from django import db
from django.conf import settings
from prometheus_client import CollectorRegistry

from core.runloop import StopFlag

from .. import store
from ..durable_log import DurableLog
from ..metrics import RelayMetrics
from ..parsers import ParseError
from .counters import InputCounts, RelayStats, SavedCounters
from .harmonise import Harmoniser
from .shipper import ShipperProcess
from .status import drain, publish_status, relay_status

log = logging.getLogger(__name__)
RECORDED_SHOTS = 1000  # shots recorded by key per status round (0.5 s): every shot up to 2 kHz, newest kept above
INPUTS_RELOAD_SECONDS = 2.0
STATUS_SECONDS = 0.5
RUN = 64  # messages harmonised, logged (one write) and published together in a burst; at 1 kHz a run is one message
RUNS_PER_TURN = 16  # a burst of 1024 on one input must not starve the others


def same_connection(one: dict, other: dict) -> bool:
    """Two input specs one socket can serve: same endpoint, mode and topics."""
    return all(one.get(name, "") == other.get(name, "") for name in ("endpoint", "mode", "topics"))


def input_specs() -> list[dict]:
    """The enabled inputs of the admin's *Relay inputs*; RELAY_DEFAULT_INPUT while there are none
    at all (inputs that are all disabled mean: read nothing)."""
    from ..models import RelayInput

    inputs = list(RelayInput.objects.order_by("name"))
    if not inputs:
        return [dict(settings.RELAY_DEFAULT_INPUT)]
    return [i.as_spec() for i in inputs if i.enabled]


class Relay:
    """One relay process: `run()` returns after `stop` is set, with the log flushed."""

    def __init__(
        self,
        *,
        inputs: list[dict] | None = None,
        pub_endpoint: str | None = None,
        snapshot_endpoint: str | None = None,
        kafka_servers: str | None = None,
        kafka_topic: str | None = None,
        log_dir=None,
        fsync: str | None = None,
        experiment: str | None = None,
        heartbeat_seconds: float | None = None,
        stop: StopFlag | None = None,
        live: bool = True,
        kafka: bool = True,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.inputs_from_admin = inputs is None  # then re-read every INPUTS_RELOAD_SECONDS
        self.inputs = inputs if inputs is not None else input_specs()
        self.changed_inputs: list[dict] | None = None  # set by the thread re-reading them, applied by the loop
        self.sockets: dict[zmq.Socket, dict] = {}  # input socket → its spec, as the loop uses it
        self.poller = zmq.Poller()
        self.pub_endpoint = pub_endpoint or settings.RELAY_PUB_ENDPOINT
        self.snapshot_endpoint = snapshot_endpoint or settings.RELAY_SNAPSHOT_ENDPOINT
        self.kafka_servers = kafka_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.kafka_topic = kafka_topic or settings.RELAY_KAFKA_TOPIC
        self.log = DurableLog(
            log_dir or settings.RELAY_LOG_DIR, fsync or settings.RELAY_LOG_FSYNC, settings.RELAY_FSYNC_SECONDS
        )
        self.heartbeat_seconds = heartbeat_seconds or settings.RELAY_HEARTBEAT_SECONDS
        self.stop = stop or StopFlag()
        self.live, self.kafka = live, kafka
        self.stats = RelayStats()
        self.input_counts: dict[str, InputCounts] = {}  # by endpoint, for the metrics
        self.saved_counters = SavedCounters(self.log)
        self.counters = self.saved_counters.restore()
        self.harmoniser = Harmoniser(experiment or settings.RELAY_EXPERIMENT, self.counters)
        self.unrecorded_shots: deque[dict] = deque(maxlen=RECORDED_SHOTS)  # for the status thread to record
        self.shot_index = store.ShotIndexState()  # what the status thread indexed: hours, runs, minute slots
        self.ready = threading.Event()
        self.shipper = ShipperProcess(self.log.directory, self.kafka_topic, self.kafka_servers) if kafka else None
        # ZeroMQ, opened by run() (after the shipper process is started: before any ZeroMQ context exists).
        self.context: zmq.Context | None = None
        self.pub: zmq.Socket | None = None
        self.snapshot: zmq.Socket | None = None
        self.last_message = 0.0  # when the PUB socket last sent something (a heartbeat fills silences)
        self.last_check = 0.0  # when the shipper was checked and the counters saved (once a second)
        self.metrics = RelayMetrics(self, metrics_registry) if metrics_registry is not None else None
        if self.metrics is not None:
            self.log.fsync_observer = self.metrics.log_fsync.observe

    # --- harmonise, log, publish ------------------------------------------------------------
    def handle(self, spec: dict, messages: list[list[bytes]]) -> None:
        """Harmonise a run of messages from one input, log them in one write, then publish them.

        Logged before published: what an experiment saw on the PUB socket is in the log (and so
        reaches Kafka) even if the relay is killed right after. One write per run, not per
        message: in a burst a write(2) each took a fifth of the relay's time.
        """
        envelope_for = self.harmoniser.envelope_for
        lines, published = [], []
        for frames in messages:
            topic, raw = (frames[0], frames[-1]) if len(frames) > 1 else (b"", frames[0])
            try:
                envelope = envelope_for(spec, topic, raw)
                encoded = orjson.dumps(envelope)  # encoded once, for the log and the PUB socket
            except (ParseError, orjson.JSONEncodeError) as exc:  # a value the parsers left unencodable: rejected
                lines.append(self.rejected(spec, raw, exc))
                continue
            lines.append(b'{"type":"envelope","envelope":' + encoded + b"}")
            published.append((envelope, encoded))
        if lines and self.metrics is None:
            self.log.append_lines(lines)
        elif lines:
            began = time.perf_counter()
            self.log.append_lines(lines)
            self.metrics.log_write.observe(time.perf_counter() - began)
        for envelope, encoded in published:
            self.pub.send_multipart([spec["source_topic"], encoded])
            if envelope["kind"] == "shot":
                self.counters.last_shot = envelope
                self.unrecorded_shots.append(envelope)
        self.stats.received += len(messages)
        self.stats.published += len(published)
        counts = spec["counts"]
        counts.received += len(messages)
        counts.published += len(published)

    def rejected(self, spec: dict, raw: bytes, exc: Exception) -> bytes:
        """The log line of a message that could not be read; logged, rate-limited."""
        self.stats.rejected += 1
        spec["counts"].rejected += 1
        if self.stats.rejected <= 10 or self.stats.rejected % 1000 == 0:
            log.warning("rejected message #%d from %s: %s", self.stats.rejected, spec["endpoint"], exc)
        return orjson.dumps(
            {
                "type": "rejected",
                "at_ns": time.time_ns(),
                "endpoint": spec["endpoint"],
                "error": str(exc),
                "raw": raw.decode(errors="backslashreplace"),
            }
        )

    def receive(self, socket: zmq.Socket, spec: dict) -> bool:
        """Handle what `socket` has received, in runs of RUN, up to RUNS_PER_TURN runs; True if
        there was anything."""
        for count in range(RUNS_PER_TURN):
            messages = []
            while len(messages) < RUN:
                try:
                    messages.append(socket.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
            if messages:
                self.handle(spec, messages)
            if len(messages) < RUN:
                return bool(messages) or count > 0
        return True

    # --- inputs -----------------------------------------------------------------------------
    def open_input(self, spec: dict) -> zmq.Socket:
        socket = self.context.socket(zmq.SUB if spec["mode"] == "SUB" else zmq.PULL)
        socket.setsockopt(zmq.RCVHWM, 100_000)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)  # laser restarts: reconnect quickly
        if spec["mode"] == "SUB":
            for prefix in [t.strip() for t in spec.get("topics", "").split(",")] or [""]:
                socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        socket.connect(spec["endpoint"])
        self.use_spec(socket, spec)
        self.poller.register(socket, zmq.POLLIN)
        return socket

    def use_spec(self, socket: zmq.Socket, spec: dict) -> None:
        self.sockets[socket] = {
            **spec,
            "source_topic": spec["source"].encode(),  # the PUB topic, encoded once
            "time_zone": spec.get("time_zone") or settings.TIME_ZONE,
            "counts": self.input_counts.setdefault(spec["endpoint"], InputCounts()),
            "spec": spec,
        }

    def apply_inputs(self, specs: list[dict]) -> None:
        """Apply the admin's changed inputs. An edit of only parser, source or time zone keeps the
        socket and swaps the spec (a new SUB misses what the laser sends before its subscription
        arrives; two sockets at once would read it twice); other inputs new in `specs` are opened,
        those no longer there closed after handling everything they had received."""
        self.inputs = specs
        kept = []
        for socket, spec in list(self.sockets.items()):
            if spec["spec"] in specs:
                kept.append(spec["spec"])
                continue
            same_socket = next((s for s in specs if s not in kept and same_connection(s, spec["spec"])), None)
            if same_socket is None:
                self.close_input(socket, spec)
                continue
            self.drain_input(socket, spec)  # what arrived before the edit, read as before it
            self.use_spec(socket, same_socket)
            kept.append(same_socket)
            log.info(
                "relay: input %s now %s parser, source %s",
                same_socket["endpoint"],
                same_socket["parser"],
                same_socket["source"],
            )
        for spec in specs:
            if spec not in kept:
                self.open_input(spec)
                kept.append(spec)
                log.info(
                    "relay: input %s (%s, %s parser, source %s) opened",
                    spec["endpoint"],
                    spec["mode"],
                    spec["parser"],
                    spec["source"],
                )

    def drain_input(self, socket: zmq.Socket, spec: dict) -> None:
        """Handle everything `socket` has received, until it has nothing more (zmq.Again)."""
        while self.receive(socket, spec):
            pass

    def close_input(self, socket: zmq.Socket, spec: dict) -> None:
        self.drain_input(socket, spec)
        self.poller.unregister(socket)
        socket.close(linger=0)
        del self.sockets[socket]
        log.info("relay: input %s (%s parser, source %s) closed", spec["endpoint"], spec["parser"], spec["source"])

    def watch_inputs_every(self, seconds: float) -> None:
        """Re-read the admin's inputs (off the loop: a database query would delay shots); the
        loop applies a changed list."""
        try:
            while not self.stop.wait(seconds):
                # Outside a request nothing closes a connection a database restart broke: without
                # this, every later re-read failed on it ("the connection is closed") for good.
                db.close_old_connections()
                try:
                    specs = input_specs()
                except Exception as exc:  # the configuration database away: keep the inputs there are
                    log.warning("relay inputs not re-read: %s", exc)
                    continue
                if specs != self.inputs:
                    self.changed_inputs = specs
        finally:
            db.connection.close()

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        if self.shipper:
            self.shipper.start()  # before any ZeroMQ context exists
        self.open_sockets()
        self.last_message = self.last_check = time.monotonic()
        gc.freeze()  # what start-up made lives on: keep it out of the collections a burst triggers
        self.start_threads()
        self.ready.set()
        log.info(
            "relay: %d input(s) → PUB %s, Kafka %s (%s), log %s",
            len(self.sockets),
            self.pub_endpoint,
            self.kafka_topic if self.kafka else "off",
            self.kafka_servers,
            self.log.directory,
        )
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.shut_down()

    def open_sockets(self) -> None:
        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.pub.bind(self.pub_endpoint)
        self.snapshot = self.context.socket(zmq.REP)
        self.snapshot.bind(self.snapshot_endpoint)
        self.poller.register(self.snapshot, zmq.POLLIN)
        for spec in self.inputs:
            self.open_input(spec)

    def start_threads(self) -> None:
        """The status thread and the inputs' re-reading, both off the loop (see the module's docstring)."""
        if self.live:
            threading.Thread(
                target=self.publish_status_every, args=(STATUS_SECONDS,), name="relay-status", daemon=True
            ).start()
        if self.inputs_from_admin:
            threading.Thread(
                target=self.watch_inputs_every, args=(INPUTS_RELOAD_SECONDS,), name="relay-inputs", daemon=True
            ).start()

    def step(self) -> None:
        """One turn: what the inputs received, a snapshot request, changed inputs, the checks due."""
        events = dict(self.poller.poll(100))
        for socket, spec in self.sockets.items():  # changed by the loop only, below
            if socket in events and self.receive(socket, spec):
                self.last_message = time.monotonic()
        if self.snapshot in events:
            self.snapshot.recv()
            self.snapshot.send(orjson.dumps(self.counters.last_shot or {}))
        if self.changed_inputs is not None:
            specs, self.changed_inputs = self.changed_inputs, None
            self.apply_inputs(specs)
        now = time.monotonic()
        if now - self.last_check >= 1:
            self.check_every_second()
            self.last_check = now
        if now - self.last_message >= self.heartbeat_seconds:
            self.send_heartbeat()
            self.last_message = now

    def check_every_second(self) -> None:
        if self.shipper:
            self.shipper.ensure_running()
        self.saved_counters.save(self.counters)

    def send_heartbeat(self) -> None:
        """A sign of life on the PUB socket when the laser is quiet."""
        self.pub.send_multipart(
            [
                b"heartbeat",
                orjson.dumps(
                    {
                        "kind": "heartbeat",
                        "relay_ts_ns": time.time_ns(),
                        "seq": self.counters.seq,
                        "last_shot_key": (self.counters.last_shot or {}).get("shot_key"),
                    }
                ),
            ]
        )

    def shut_down(self) -> None:
        """Flush the log and save the counters first, then let the shipper drain, then close."""
        self.log.close()
        self.saved_counters.save(self.counters)
        if self.shipper:
            self.shipper.stop()
        if self.live:
            self.publish_status()
        for socket in [*self.sockets, self.pub, self.snapshot]:
            socket.close(linger=500)
        self.context.term()

    # --- live status ------------------------------------------------------------------------
    def status(self) -> dict:
        return relay_status(self.stats, self.counters, self.shipper)

    def publish_status_every(self, seconds: float) -> None:
        while not self.stop.wait(seconds):
            self.publish_status()

    def publish_status(self) -> None:
        publish_status(self.status(), drain(self.unrecorded_shots), self.counters.last_shot, self.shot_index)

    def summary(self) -> str:
        s = self.status()
        return (
            f"relay: {s['received']} received, {s['published']} published, {s['rejected']} rejected, "
            f"{s['gaps']} gaps, {s['duplicates']} duplicates, {s['counter_resets']} counter resets, "
            f"{s['kafka_shipped']} produced to Kafka, {self.log.lines} log lines"
        )
