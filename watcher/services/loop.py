"""The watcher's Kafka consumer loop: poll, convert, hand to the writer, commit.

At-least-once delivery (offsets are committed only after MongoDB acknowledged the batch)
plus idempotent writes (deterministic `_id`s) give each event stored exactly once, through
crashes, MongoDB outages and consumer-group rebalances.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import NoReturn

from django.conf import settings
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer
from kafka.errors import CommitFailedError, CorruptRecordError, FencedInstanceIdError, KafkaError, UnsupportedCodecError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry

from core.runloop import StopFlag

from .. import store
from ..metrics import WatcherMetrics
from ..models import Route
from .convert import Converted, Rejected, dead_letter, to_document
from .status import LiveStatus
from .writer import BatchWriter, MongoRetry, Prepared, RouteCounts

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_MS = 5000  # a commit that cannot succeed (topic deleted, broker away) is retried by replay
# A member that died without leaving holds its partitions until its session times out (kafka-python's
# default: 45 s). A named watcher is a static member (its name is its group.instance.id): restarted,
# it takes its own place back at once. An unnamed one (or a named one not restarted) is replaced
# after this timeout; heartbeats go every HEARTBEAT_MS from kafka-python's background thread.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_MS = 2_000


class CommitBeforeRevoke(AsyncConsumerRebalanceListener):
    """Before partitions move to another member, commit the batches the writer has finished.

    Batches still being written are re-read by the new owner, and the idempotent writes turn
    them into duplicates, not copies. Async because kafka-python (3.x) calls listeners on its
    network thread, where a blocking commit is refused and waiting would stop the heartbeats.
    """

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    async def on_partitions_revoked(self, revoked) -> None:
        watcher = self.watcher
        for partition in revoked:  # a stopped partition moved elsewhere: its new owner reports it
            watcher.undecodable.pop(partition, None)
        offsets, finished = watcher.writer.take_written()
        watcher.finished_elsewhere.put(finished)
        if offsets:
            try:
                await watcher.consumer.commit_async(offsets)
            except KafkaError as exc:
                log.warning(
                    "offset commit before a rebalance failed (%s); those batches will be re-read and deduplicated", exc
                )

    async def on_partitions_assigned(self, assigned) -> None:
        log.info(
            "assigned %d partitions: %s",
            len(assigned),
            ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned)),
        )


def static_member_id(name: str) -> str:
    """A watcher's name as Kafka accepts it for group.instance.id (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:249]


@dataclass
class Undecodable:
    """A partition stopped at a record batch this process cannot decode (a codec missing, corrupt data)."""

    offset: int
    error: str


# Where a decompressor's own error is raised: kafka-python's codec and record code, or a codec library.
DECODING_CODE = ("/kafka/codec.py", "/kafka/record/", "/lz4/", "/zstandard/", "/snappy/", "/cramjam/", "/gzip.py")


def raised_in_decoding(exc: BaseException) -> bool:
    """Whether an exception that is not kafka-python's own was raised decoding fetched records
    (a codec library's error); any other is a bug to surface, not a partition to pause."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(code in frames[-1].filename.replace(os.sep, "/") for code in DECODING_CODE)


def drop_undecodable_fetch(consumer: KafkaConsumer) -> TopicPartition | None:
    """The partition whose fetched records just failed to decode, with that fetch dropped.

    kafka-python 3.0.12 keeps such a fetch as its next in line, and every later poll loops over
    it without end (no records, no progress, ~90% CPU, so a signal is never acted on). Dropping
    it (its `drain()`) and pausing the partition lets the other partitions flow; a restart or
    a rebalance fetches it again from the last committed offset. None: the error did not come
    from decoding fetched records.
    """
    records = consumer._fetcher._next_partition_records  # no public handle on it
    if not records:
        return None
    records.drain()
    return records.topic_partition


class Watcher:
    """One member of the watcher consumer group. `run()` returns when `stop` is set.

    The loop (this class) polls Kafka and converts; the BatchWriter's thread writes to MongoDB;
    LiveStatus counts and sends what the page shows.
    """

    def __init__(
        self,
        *,
        group_id: str | None = None,
        bootstrap_servers: str | None = None,
        batch_size: int | None = None,
        stop: StopFlag | None = None,
        live: bool = True,
        name: str | None = None,
        route_refresh_seconds: float | None = None,
        start_from: str = "earliest",
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.group_id = group_id or settings.WATCHER_GROUP_ID
        self.bootstrap_servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.start_from = start_from  # where a partition the group never committed starts: earliest | latest
        self.batch_size = batch_size or settings.WATCHER_BATCH_SIZE
        self.stop = stop or StopFlag()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10_000}"
        self.instance_id = static_member_id(name) if name else None
        self.route_refresh_seconds = route_refresh_seconds or settings.WATCHER_ROUTE_REFRESH_SECONDS
        self.routes: list[Route] = []
        self.routes_signature: tuple = ()
        self.last_refresh = 0.0
        self.collection_kind: dict[str, str] = {}
        self.metrics = (
            WatcherMetrics(metrics_registry, self.name, self.group_id) if metrics_registry is not None else None
        )
        self.last_lag_update = 0.0
        self.retry = MongoRetry(self.stop, self.metrics)
        self.writer = BatchWriter(self.name, self.retry, self.collection_kind, self.metrics)
        self.live = LiveStatus(self.name, live)
        self.finished_elsewhere: queue.Queue = queue.Queue()  # committed by the rebalance listener, for the stats
        self.consumer: KafkaConsumer | None = None  # connected by run()
        self.assigned: set[TopicPartition] = set()
        self.undecodable: dict[TopicPartition, Undecodable] = {}  # paused partitions and why

    # What the command prints and the tests watch.
    @property
    def stored(self) -> int:
        return self.writer.totals.stored

    @property
    def duplicates(self) -> int:
        return self.writer.totals.duplicates

    @property
    def replaced(self) -> int:
        return self.writer.totals.replaced

    @property
    def dead(self) -> int:
        return self.writer.totals.dead

    @property
    def batches(self) -> int:
        return self.live.batches

    @property
    def writer_error(self) -> BaseException | None:
        return self.writer.error

    @property
    def mongo_down_since(self) -> float | None:
        return self.retry.down_since

    # --- routes -------------------------------------------------------------------
    def refresh_routes(self) -> None:
        """Re-read the enabled routes (cheap) and resubscribe when they changed."""
        routes = list(Route.objects.filter(enabled=True).order_by("topic_is_regex", "name"))
        signature = tuple((r.pk, r.updated) for r in routes)
        if signature == self.routes_signature:
            return
        for route in routes:
            self.live.stats_for(route.name)
            kind = self.retry(partial(store.prepare_collection, route.collection, route.timeseries))
            if kind is None:
                return  # stopping while MongoDB is away
            self.collection_kind[route.collection] = kind
        self.routes, self.routes_signature = routes, signature
        if routes:
            pattern = (
                "^(?:" + "|".join(f"(?:{r.topic})" if r.topic_is_regex else re.escape(r.topic) for r in routes) + ")$"
            )
            self.consumer.subscribe(pattern=pattern, listener=CommitBeforeRevoke(self))
        elif self.consumer.subscription():
            self.consumer.unsubscribe()
        log.info("routes: %s", ", ".join(map(str, routes)) or "none (nothing consumed)")

    def route_for(self, topic: str) -> Route | None:
        return next((route for route in self.routes if route.matches(topic)), None)

    # --- the loop -----------------------------------------------------------------
    def connect(self) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"labbook-watch-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset=self.start_from,
            max_poll_records=self.batch_size,
            max_poll_interval_ms=600_000,
            group_instance_id=self.instance_id,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=2000,  # pattern subscriptions see new topics within seconds
            fetch_max_wait_ms=100,
            reconnect_backoff_max_ms=5000,
        )

    def run(self) -> None:
        """Poll, convert and hand batches to the writer thread; commit what it has written.

        Two batches at most are in flight (one being written, one waiting), so converting
        the next batch overlaps the MongoDB write of the previous one. When MongoDB is away
        the writer retries and the hand-over blocks: nothing more is fetched.
        """
        started = time.monotonic()
        if self.retry(store.move_old_shot_index) is None:
            return  # stopped while MongoDB was away
        self.consumer = self.connect()
        self.writer.start()
        try:
            while not self.stop.is_set() and self.writer.is_alive():
                self.step()
        except BaseException:
            self.stop.set()  # the writer and the index connection stop waiting for MongoDB
            raise
        finally:
            self.shut_down(started)
        if self.writer.error is not None:
            raise RuntimeError("the MongoDB writer failed (see the log)") from self.writer.error

    def step(self) -> None:
        """One round of the loop: routes when due, commits, one poll, its hand-over, the live status."""
        now = time.monotonic()
        if now - self.last_refresh >= self.route_refresh_seconds:
            self.refresh_routes()
            self.last_refresh = now
        self.commit_written()
        if not self.routes:
            self.assigned = set()
            self.stop.wait(0.2)
            return
        batch = self.poll()
        if batch is None:
            return
        self.assigned = set(self.consumer.assignment())
        if batch:
            if self.metrics is not None:
                self.metrics.batch_records.observe(sum(len(records) for records in batch.values()))
            self.hand_over(self.prepare(batch))
        self.publish_if_due()
        if self.metrics is not None and now - self.last_lag_update >= 1:
            self.metrics.set_lag(self.partition_lag())
            self.last_lag_update = now

    def poll(self) -> dict | None:
        """The next batch of records by partition; None when the poll failed (and that was dealt with)."""
        try:
            return self.consumer.poll(timeout_ms=200)
        except FencedInstanceIdError:
            self.fenced()
        except Exception as exc:
            if self.stop_undecodable_partition(exc):
                return None
            if not isinstance(exc, KafkaError):
                raise
            log.warning("Kafka poll failed (%s); retrying", exc)  # the client reconnects by itself
            self.stop.wait(1)
            return None

    def shut_down(self, started: float) -> None:
        """Write and commit what was handed over, leave the group, log the summary."""
        self.writer.finish()
        self.commit_written()
        self.consumer.close(autocommit=False)
        log.info(
            "watcher stopped: %d stored, %d duplicates, %d dead letters, %d batches in %.1f s",
            self.stored,
            self.duplicates,
            self.dead,
            self.batches,
            time.monotonic() - started,
        )

    def fenced(self) -> NoReturn:
        """Another process joined the group under this one's name (its static membership) and took
        its partitions: this one stops, its uncommitted batches are re-read by the other."""
        message = (
            f"another watch process named {self.name!r} joined group {self.group_id!r} and took this one's "
            "partitions; each watch process of a group needs a name of its own"
        )
        log.error("%s", message)
        raise RuntimeError(message) from None

    def stop_undecodable_partition(self, exc: Exception) -> bool:
        """Pause the partition whose records could not be decoded; True if that was the error.

        Decoding errors are kafka-python's codec and CRC errors and what a decompressor raises
        itself (raised in kafka-python's codec or record code, or a codec library); nothing of
        that partition after the last stored record is committed. A revoked partition's entry
        is cleared (CommitBeforeRevoke): its new owner reports it.
        """
        if isinstance(exc, KafkaError):
            if not isinstance(exc, UnsupportedCodecError | CorruptRecordError):
                return False
        elif not raised_in_decoding(exc):
            return False
        partition = drop_undecodable_fetch(self.consumer)
        if partition is None:
            return False
        self.consumer.pause(partition)
        offset = self.consumer.position(partition, timeout_ms=1000)
        self.undecodable[partition] = Undecodable(offset, f"{type(exc).__name__}: {exc}")
        log.error(
            "partition %s/%d stopped at offset %s: its records cannot be decoded (%s: %s); the other "
            "partitions go on, this one resumes from there after a restart",
            partition.topic,
            partition.partition,
            offset,
            type(exc).__name__,
            exc,
        )
        return True

    def hand_over(self, prepared: Prepared) -> None:
        """Queue a batch for the writer; waits (fetching nothing) while the writer is busy."""
        while self.writer.is_alive():
            if self.writer.offer(prepared, timeout=0.2):
                return
            self.commit_written()
            self.publish_if_due()  # the page shows "MongoDB unreachable" while we wait
        # Only when the writer stopped (MongoDB away at shutdown): the batch stays uncommitted.

    def prepare(self, batch: dict) -> Prepared:
        """Kafka records → documents per collection, dead letters and the offsets to commit."""
        now = datetime.now(UTC)
        prepared = Prepared()
        for tp, records in batch.items():
            route = self.route_for(tp.topic)
            if route is None:
                # The route was disabled or removed after these were fetched: leave them
                # uncommitted, so re-enabling the route picks them up again.
                continue
            prepared.offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            counts = prepared.per_route.setdefault(route.name, RouteCounts())
            for record in records:
                try:
                    document = to_document(route, record, now)
                except Rejected as exc:
                    prepared.letters.append(dead_letter(record, route, str(exc), now, exc.reason))
                    counts.dead += 1
                    continue
                prepared.by_collection.setdefault(route.collection, []).append(Converted(record, route, document))
        return prepared

    def commit_written(self) -> None:
        """Commit the offsets of the batches the writer finished, and count those batches."""
        offsets, finished = self.writer.take_written()
        while True:  # the ones the rebalance listener committed, counted here (on this thread)
            try:
                finished.extend(self.finished_elsewhere.get_nowait())
            except queue.Empty:
                break
        self.live.count(finished)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except FencedInstanceIdError:
            self.fenced()
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance moved the partitions away: the new owner re-reads from the last
            # commit and the idempotent writes turn the repeats into duplicates, not copies.
            log.warning("offset commit failed (%s); those batches will be re-read and deduplicated", exc)

    # --- live status ------------------------------------------------------------------
    def partition_lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) → messages not yet fetched, for the partitions held whose lag is known."""
        lag = {}
        for tp in self.assigned:
            try:
                highwater = self.consumer.highwater(tp)
                position = self.consumer.position(tp, timeout_ms=100)
            except Exception:  # no position yet: unknown lag
                continue
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lag

    def lag(self) -> dict[str, int]:
        lag_by_topic: dict[str, int] = {}
        for (topic, _), messages in self.partition_lag().items():
            lag_by_topic[topic] = lag_by_topic.get(topic, 0) + messages
        return lag_by_topic

    def status(self) -> dict:
        """This process's figures per route, with its partitions as the consumer sees them now."""
        lag = self.lag()
        routes = {}
        for route in self.routes:
            stopped = [
                {"partition": f"{tp.topic}/{tp.partition}", "offset": why.offset, "error": why.error}
                for tp, why in sorted(dict(self.undecodable).items())  # a copy: a revoke pops from it
                if tp in self.assigned and route.matches(tp.topic)
            ]
            routes[route.name] = self.live.route_status(
                route,
                self.collection_kind.get(route.collection, ""),
                lag=sum(n for topic, n in lag.items() if route.matches(topic)),
                partitions=sorted(tp.partition for tp in self.assigned if route.matches(tp.topic)),
                stopped=stopped,
            )
        return {
            "watcher": self.name,
            "at": time.time(),
            "mongo_down": self.retry.down_since is not None,
            "routes": routes,
        }

    def publish_if_due(self) -> None:
        self.live.publish_if_due(self.status, mongo_down=self.retry.down_since is not None)
