"""The Kafka shipper: the durable log's envelopes → Kafka, in order, each once, in a process of its own.

Kafka is fed from the log with a saved cursor, so a Kafka outage costs nothing but delay: the
backlog waits on disk (bounded memory) and is produced, in order, once Kafka answers again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from ..durable_log import Cursor, read_from

log = logging.getLogger(__name__)
SHIPPER_NICENESS = 10
DELIVERY_TIMEOUT_MS = 300_000  # Kafka away longer: the batch fails and is sent again from the log


class ShipFailed(KafkaError):
    """A batch failed for good (its delivery timeout passed, or a fatal error): the producer is
    discarded and the batch is sent again from the log's cursor, not waited on."""


@dataclass
class InFlight:
    """Envelopes handed to the producer and not yet acknowledged, and the log position after them."""

    futures: list
    end: tuple[str, int]


@dataclass
class SharedValues:
    """What the relay and its shipper share, as lock-free multiprocessing values: a shipper
    killed with -9 while holding a multiprocessing lock or waiting on an Event would leave it
    stuck for the relay."""

    stop: object  # set by the relay: drain, then exit
    shipped: object  # envelopes Kafka acknowledged, written by the shipper only
    connected: object


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

    def __init__(self, directory, topic: str, bootstrap_servers: str, shared: SharedValues, relay_pid: int) -> None:
        self.directory, self.topic, self.bootstrap_servers = Path(directory), topic, bootstrap_servers
        self.shared = shared
        self.cursor = Cursor(self.directory / "kafka-cursor.json")
        self.producer: KafkaProducer | None = None
        self.in_flight: InFlight | None = None
        self.terminated = False  # set by SIGTERM
        self.relay_pid = relay_pid  # from the relay itself: it may be gone before this process is up

    def orphaned(self) -> bool:
        return os.getppid() != self.relay_pid

    def stopping(self) -> bool:
        return bool(self.shared.stop.value) or self.terminated or self.orphaned()

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping() and time.monotonic() < deadline:
            time.sleep(min(0.02, seconds))

    def connect(self) -> bool:
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=5000,
                max_block_ms=5000,
                reconnect_backoff_max_ms=2000,
                delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            )  # retries: until then, with the same sequence numbers
            return True
        except KafkaError as exc:
            log.warning("Kafka at %s not reachable (%s); envelopes wait in the log", self.bootstrap_servers, exc)
            return False

    def ship_once(self, limit: int = 5000, wait: float = 2) -> int:
        """Produce up to `limit` logged envelopes after the cursor and move the cursor once Kafka
        acknowledged them all. KafkaTimeoutError after `wait` s: they stay in flight, the next
        call waits on (not sent again); a batch that failed for good (even with KafkaTimeoutError,
        "Expiring N record(s)") raises ShipFailed."""
        if self.in_flight is None:
            futures, end = [], None
            try:
                for file, offset, record in read_from(self.directory, self.cursor.file, self.cursor.offset, limit):
                    end = (file, offset)
                    if record.get("type") == "envelope":
                        envelope = record["envelope"]
                        futures.append(
                            self.producer.send(
                                self.topic,
                                orjson.dumps(envelope),
                                key=(envelope.get("shot_key") or envelope["event_id"]).encode(),
                            )
                        )
            except KafkaTimeoutError as exc:  # no metadata: part of the run was never handed over
                raise KafkaError(f"Kafka did not answer in time: {exc}") from None
            if end is None:
                return 0
            self.in_flight = InFlight(futures, end)
        self.producer.flush(timeout=wait)  # returns when every batch is acknowledged or failed
        failed = next((future for future in self.in_flight.futures if future.failed()), None)
        if failed is not None:  # waiting on cannot help: the producer never retries a failed future
            raise ShipFailed(f"a batch failed for good: {failed.exception}") from failed.exception
        self.cursor.save(*self.in_flight.end)
        sent, self.in_flight = len(self.in_flight.futures), None
        self.shared.shipped.value += sent
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
                self.shared.connected.value, delay = True, 0.5
                if not shipped:
                    self.pause(0.02)
            except KafkaTimeoutError:  # Kafka away: the producer retries what is in flight, we wait
                self.shared.connected.value = False
            except Exception as exc:  # failed for good, or anything else: the cursor says what to resend
                self.shared.connected.value = False
                log.warning(
                    "Kafka produce failed (%s: %s); sending again from the log in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, KafkaError),
                )
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
        with suppress(Exception):
            self.producer.close(timeout=0)
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


def run_shipper(directory, topic: str, bootstrap_servers: str, shared: SharedValues, relay_pid: int) -> None:
    """The shipper process's main: signals as the relay wants them, a lower priority, then ship."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shipper = KafkaShipper(directory, topic, bootstrap_servers, shared, relay_pid)
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
        self.shared = SharedValues(
            stop=self.context.Value("b", 0, lock=False),
            shipped=self.context.Value("q", 0, lock=False),
            connected=self.context.Value("b", 0, lock=False),
        )
        self.process = None
        self.restarts = 0

    @property
    def shipped(self) -> int:
        return self.shared.shipped.value

    @property
    def connected(self) -> bool:
        return bool(self.shared.connected.value)

    def start(self) -> None:
        self.process = self.context.Process(
            target=run_shipper, name="relay-kafka", daemon=True, args=(*self.args, self.shared, os.getpid())
        )
        self.process.start()

    def ensure_running(self) -> None:
        if self.process and not self.process.is_alive() and not self.shared.stop.value:
            self.restarts += 1
            self.shared.connected.value = False
            log.error(
                "the Kafka shipper died (exit code %s); starting it again (restart %d)",
                self.process.exitcode,
                self.restarts,
            )
            self.start()

    def stop(self, timeout: float = 20) -> None:
        self.shared.stop.value = 1
        if self.process.is_alive() or self.process.exitcode is None:
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
