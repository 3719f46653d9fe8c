"""The watcher: Kafka topics → MongoDB collections, exactly once per event.

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
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from bson import Binary
from django.conf import settings
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer
from kafka.errors import (CommitFailedError, CorruptRecordError, FencedInstanceIdError, KafkaError,
                          UnsupportedCodecError)
from kafka.structs import OffsetAndMetadata, TopicPartition
from pymongo.errors import ConnectionFailure

from core import times
from core.envelope import validation_errors
from core.matching import lookup
from core.runloop import StopFlag

from . import live, store
from .models import Route

log = logging.getLogger(__name__)
SAMPLES_PER_UPDATE = 3  # messages per route in one live update (4 updates a second at most)
LIVE_INTERVAL = 0.25
STATUS_SAVE_INTERVAL = 2.0
COMMIT_TIMEOUT_MS = 5000  # a commit that cannot succeed (topic deleted, broker away) is retried by replay
TIME_INDEX_SECONDS = 1.0  # the time index is written once a second (or every TIME_INDEX_REFS events)
TIME_INDEX_REFS = 20_000
# A member that died without leaving holds its partitions until its session times out (kafka-python's
# default: 45 s). A named watcher is a static member (its name is its group.instance.id): restarted,
# it takes its own place back at once. An unnamed one (or a named one not restarted) is replaced
# after this timeout; heartbeats go every HEARTBEAT_MS from kafka-python's background thread.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_MS = 2_000


class Rejected(ValueError):
    """A message that cannot be stored; it goes to the dead letters with this reason."""


def to_datetime(value) -> datetime | None:
    """An event time in UTC, read as the relay reads laser times (core.times: s, ms, µs or ns
    by size, ISO 8601, a naive time in the lab's zone); None for anything else, e.g. out of range."""
    return times.to_datetime(value, settings.TIME_ZONE)


TYPED_ID = "#"


def stored_id(value) -> str:
    """The string `_id` of a message id, one per distinct JSON value (FerretDB finds only string
    `_id`s fast). A string is kept as it is, so ids stored by earlier versions stay the same; a
    number or boolean becomes `#` + its JSON text (`#1`, `#true`, `#1.5`), and a string that itself
    begins with `#` becomes `#` + its JSON text (`#"#1"`), so 1, "1", true and "True" stay apart."""
    if isinstance(value, str) and not value.startswith(TYPED_ID):
        return value
    return TYPED_ID + orjson.dumps(value).decode()


def to_document(route: Route, record, now: datetime) -> dict:
    """The MongoDB document for one Kafka record, or Rejected with the reason."""
    raw = record.value
    if raw is None:
        raise Rejected("empty message (no value)")
    if len(raw) > route.max_message_bytes:
        raise Rejected(f"message of {len(raw)} bytes exceeds the route's limit of {route.max_message_bytes} bytes")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(json_error(raw, exc)) from None
    if not isinstance(document, dict):
        raise Rejected(f"expected a JSON object, got {type(document).__name__}")
    if route.require_envelope:
        errors = validation_errors(document)
        if errors:
            raise Rejected("not a valid shot envelope: " + "; ".join(errors[:5]))
    for old, new in route.renames.items():
        if old in document:
            document[new] = document.pop(old)

    if route.id_strategy == Route.IdStrategy.EVENT_ID:
        doc_id = document.get("event_id")
    elif route.id_strategy == Route.IdStrategy.FIELD:
        doc_id = lookup(document, route.id_field)
    else:
        doc_id = f"{record.topic}|{record.partition}|{record.offset}"
    if doc_id is None or doc_id == "" or isinstance(doc_id, dict | list):
        raise Rejected(f"no usable id ({route.get_id_strategy_display()}: {route.id_field or 'event_id'})")

    document["_id"] = stored_id(doc_id)
    document["_ts"] = to_datetime(lookup(document, route.timestamp_field)) if route.timestamp_field else None
    # No usable event time: the record's Kafka timestamp (the same when a replay re-reads it),
    # else the ingest time.
    kafka_ts = getattr(record, "timestamp", None)
    document["_ts"] = document["_ts"] or (to_datetime(kafka_ts / 1000) if kafka_ts and kafka_ts > 0 else None) or now
    document["_ingest"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                           "key": record.key.decode(errors="replace") if record.key else None, "at": now}
    if record.headers:
        document["_ingest"]["headers"] = [{"key": key, "value": header_text(value)} for key, value in record.headers]
    return document


def header_text(value: bytes | None) -> str | bytes | None:
    """A Kafka header value as text when it is UTF-8, else its bytes (stored as BSON binary)."""
    try:
        return value.decode() if value is not None else None
    except UnicodeDecodeError:
        return value


def json_error(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why a message is not JSON; for bytes that are not UTF-8, where (orjson's own message for
    those is "surrogates not allowed", whatever the bytes)."""
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 at byte {bad.start}"
    return f"not valid JSON: {exc}"


def dead_letter(record, route: Route | None, error: str, now: datetime) -> dict:
    return {
        "_id": f"{record.topic}|{record.partition}|{record.offset}",
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "key": Binary(record.key) if record.key is not None else None,
        "raw": Binary(record.value) if record.value is not None else None,
        "headers": [{"key": key, "value": value} for key, value in record.headers or []],
        "timestamp": getattr(record, "timestamp", None),  # Kafka's, ms: a replay's `_ts` falls back to it
        "route": route.name if route else None, "error": error, "at": now,
    }


@dataclass
class WriteOutcome:
    """What became of one collection's part of a batch; `letters` by position in it."""

    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    letters: dict[int, dict] = field(default_factory=dict)


def write_documents(collection: str, items: list[tuple], timeseries: bool, now: datetime) -> WriteOutcome:
    """Store (record, route, document) items in one collection; idempotent, so safe to repeat.

    A document with the `_id` of a stored one is a duplicate, unless its route replaces with
    newer versions: then it replaces the stored one by `_id` (the one update FerretDB does
    without reading the whole collection) when it is newer. Refused documents, and different
    versions that cannot be ordered, come back as dead letters.
    """
    result = store.insert_idempotent(collection, [document for _, _, document in items], timeseries)
    outcome = WriteOutcome(stored=result.inserted)
    for index, reason in result.rejected.items():
        outcome.letters[index] = dead_letter(items[index][0], items[index][1], reason, now)
    for index in result.duplicates:
        record, route, document = items[index]
        stored = None
        if route.on_duplicate == Route.OnDuplicate.REPLACE_NEWER and not timeseries:
            stored = store.stored_document(collection, document["_id"])
        try:
            if stored is not None and is_newer(route, document, stored):
                store.replace_document(collection, document)
                outcome.replaced += 1
            else:
                outcome.duplicates += 1
        except Rejected as exc:
            outcome.letters[index] = dead_letter(record, route, str(exc), now)
    return outcome


def is_newer(route: Route, document: dict, stored: dict) -> bool:
    """Whether a document replaces the stored one of its `_id` (False: the same message again, or
    an older version); Rejected when two different versions cannot be ordered."""
    if message_fields(document) == message_fields(stored):
        return False
    if route.version_field:
        new, old = lookup(document, route.version_field), lookup(stored, route.version_field)
        if version_kind(new) is not None and version_kind(new) == version_kind(old):
            return new > old
        reason = f"its version field {route.version_field!r} is {new!r}, the stored one's {old!r}"
    else:
        new, old = document["_ingest"], stored.get("_ingest", {})
        if (new["topic"], new["partition"]) == (old.get("topic"), old.get("partition")):
            return new["offset"] > old.get("offset", -1)
        reason = (f"no version field, and it came from {new['topic']}/{new['partition']}, the stored one from "
                  f"{old.get('topic')}/{old.get('partition')} (Kafka orders only within a partition)")
    raise Rejected(f"a different version of the stored document {document['_id']!r} that cannot be ordered: {reason}")


def version_kind(value) -> str | None:
    """Versions order when both are numbers (not booleans) or both text."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return None


def message_fields(document: dict) -> dict:
    """The message itself, without what the watcher adds (`_ts` may be the ingest time)."""
    return {key: value for key, value in document.items() if key not in ("_ts", "_ingest")}


@dataclass
class ReplayedRecord:
    """A dead letter as the Kafka record it was, for the same conversion the watcher applies."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int | None

    @classmethod
    def of(cls, letter: dict) -> "ReplayedRecord":
        return cls(letter["topic"], letter["partition"], letter["offset"], letter.get("key"), letter.get("raw"),
                   [(header["key"], header["value"]) for header in letter.get("headers") or []],
                   letter.get("timestamp"))


@dataclass
class ReplayResult:
    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    left: dict[str, str] = field(default_factory=dict)  # dead letter id → why it still cannot be stored


@dataclass
class ReplayBatch:
    """The dead letters of one collection that pass their route now, and their ids."""

    items: list[tuple] = field(default_factory=list)  # (record, route, document), as the watcher writes them
    letter_ids: list[str] = field(default_factory=list)
    timeseries: bool = False


def replay_dead_letters(route_name: str = "", reason: str = "", ids: list[str] | None = None) -> ReplayResult:
    """Store the dead letters that their topic's route accepts now (after a route or schema fix),
    indexed like any event, and remove them; leave the rest as they are.

    Each is converted and written as the watcher would (same `_id`, provenance, duplicate rule),
    so running it twice, or after a crash half-way, stores nothing twice.
    """
    routes = list(Route.objects.filter(enabled=True).order_by("topic_is_regex", "name"))
    now, result = datetime.now(UTC), ReplayResult()
    batches: dict[str, ReplayBatch] = {}
    for letter in store.dead_letters_to_replay(ids):
        route = next((r for r in routes if r.matches(letter["topic"])), None)
        if route_name and (route is None or route.name != route_name):
            continue
        if reason.lower() not in letter["error"].lower():
            continue
        if route is None:
            result.left[letter["_id"]] = f"no enabled route for topic {letter['topic']}"
            continue
        record = ReplayedRecord.of(letter)
        try:
            document = to_document(route, record, now)
        except Rejected as exc:
            result.left[letter["_id"]] = str(exc)
            continue
        batch = batches.setdefault(route.collection, ReplayBatch(timeseries=route.timeseries))
        batch.items.append((record, route, document))
        batch.letter_ids.append(letter["_id"])
    for collection, batch in batches.items():
        timeseries = store.prepare_collection(collection, batch.timeseries) == store.TIMESERIES
        outcome = write_documents(collection, batch.items, timeseries, now)
        result.stored += outcome.stored
        result.duplicates += outcome.duplicates
        result.replaced += outcome.replaced
        for index, letter in outcome.letters.items():
            result.left[batch.letter_ids[index]] = letter["error"]
        passed = [index for index in range(len(batch.items)) if index not in outcome.letters]
        documents = {collection: [batch.items[index][2] for index in passed]}
        store.index_shots(documents, {})
        store.index_times(documents, {}, set())
        store.remove_dead_letters([batch.letter_ids[index] for index in passed])
    return result


@dataclass
class RouteStats:
    """What the live view shows of one route: counts, rate and a few sampled messages."""

    total: int = 0
    dead: int = 0
    window: deque = field(default_factory=lambda: deque(maxlen=64))  # (time, count)
    samples: deque = field(default_factory=lambda: deque(maxlen=SAMPLES_PER_UPDATE))

    def add(self, stored: int, dead: int, newest: list[dict]) -> None:
        self.total += stored
        self.dead += dead
        self.window.append((time.monotonic(), stored + dead))
        # Only the newest few messages of a batch are kept: a sample, whatever the rate.
        self.samples.extend(preview(document) for document in newest[-SAMPLES_PER_UPDATE:])

    def rate(self) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in self.window if now - t <= 5]
        return sum(n for _, n in recent) / 5 if recent else 0.0

    def take_samples(self) -> list[dict]:
        taken = list(self.samples)
        self.samples.clear()
        return taken


def preview(document: dict, limit: int = 400) -> dict:
    """A small, JSON-safe picture of one stored message for the live view."""
    text = orjson.dumps({k: v for k, v in document.items() if k != "_ingest"}, default=str).decode()
    ingest = document.get("_ingest", {})
    return {"id": document["_id"], "shot_key": document.get("shot_key"),
            "kafka": f"{ingest.get('topic')}/{ingest.get('partition')}@{ingest.get('offset')}",
            "json": text if len(text) <= limit else text[:limit] + "…"}


class CommitBeforeRevoke(AsyncConsumerRebalanceListener):
    """Before partitions move to another member, commit the batches the writer has finished.

    Batches still being written are re-read by the new owner, and the idempotent writes turn
    them into duplicates, not copies. Async because kafka-python (3.x) calls listeners on its
    network thread, where a blocking commit is refused and waiting would stop the heartbeats.
    """

    def __init__(self, watcher: "Watcher") -> None:
        self.watcher = watcher

    async def on_partitions_revoked(self, revoked) -> None:
        watcher = self.watcher
        offsets, finished = watcher.take_written()
        watcher.finished_elsewhere.put(finished)
        if offsets:
            try:
                await watcher.consumer.commit_async(offsets)
            except KafkaError as exc:
                log.warning("offset commit before a rebalance failed (%s); those batches will be re-read "
                            "and deduplicated", exc)

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned %d partitions: %s", len(assigned),
                 ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned)))


def static_member_id(name: str) -> str:
    """A watcher's name as Kafka accepts it for group.instance.id (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:249]


@dataclass
class Undecodable:
    """A partition stopped at a record batch this process cannot decode (a codec missing, corrupt data)."""

    offset: int
    error: str


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


@dataclass
class Prepared:
    """One polled batch, converted: what to write where, and the offsets to commit after."""

    by_collection: dict[str, list[tuple]] = field(default_factory=dict)  # (record, route, document)
    letters: list[dict] = field(default_factory=list)
    per_route: dict[str, list] = field(default_factory=dict)  # name → [stored, dead, documents]
    offsets: dict = field(default_factory=dict)
    fetched: float = field(default_factory=time.monotonic)
    written: float = 0.0  # when its events were written; committed once the time index has them
    documents_by_collection: dict[str, list[dict]] = field(default_factory=dict)


class Watcher:
    """One member of the watcher consumer group. `run()` returns when `stop` is set."""

    def __init__(self, *, group_id: str | None = None, bootstrap_servers: str | None = None,
                 batch_size: int | None = None, stop: StopFlag | None = None, live: bool = True,
                 name: str | None = None, route_refresh_seconds: float | None = None,
                 start_from: str = "earliest") -> None:
        self.group_id = group_id or settings.WATCHER_GROUP_ID
        self.bootstrap_servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.start_from = start_from  # where a partition the group never committed starts: earliest | latest
        self.batch_size = batch_size or settings.WATCHER_BATCH_SIZE
        self.stop = stop or StopFlag()
        self.live = live
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10_000}"
        self.instance_id = static_member_id(name) if name else None
        self.route_refresh_seconds = route_refresh_seconds or settings.WATCHER_ROUTE_REFRESH_SECONDS
        self.routes: list[Route] = []
        self.routes_signature: tuple = ()
        self.collection_kind: dict[str, str] = {}
        self.stats: dict[str, RouteStats] = {}
        self.shot_slots: dict[str, store.SlotCache] = {}  # per index collection
        self.time_slots: dict[str, store.SlotCache] = {}
        self.hours_known: set[tuple[str, str]] = set()
        self.awaiting_time_index: list[Prepared] = []  # written, waiting for the next time-index write
        self.time_index_error: BaseException | None = None  # the index connection failed: the writer stops
        self.time_index_given_up = False  # stopped with MongoDB away: nothing later may be committed past it
        self.writer_error: BaseException | None = None
        self.finished_elsewhere: queue.Queue = queue.Queue()  # committed by the rebalance listener, for the stats
        self.stored = self.duplicates = self.replaced = self.dead = self.batches = 0
        self.assigned: set = set()
        self.undecodable: dict[TopicPartition, Undecodable] = {}  # paused partitions and why
        self.consumer: KafkaConsumer | None = None
        self.mongo_down_since: float | None = None

    # --- routes -------------------------------------------------------------------
    def refresh_routes(self) -> None:
        """Re-read the enabled routes (cheap) and resubscribe when they changed."""
        routes = list(Route.objects.filter(enabled=True).order_by("topic_is_regex", "name"))
        signature = tuple((r.pk, r.updated) for r in routes)
        if signature == self.routes_signature:
            return
        for route in routes:
            self.stats.setdefault(route.name, RouteStats())
            kind = self.with_mongo_retry(lambda: store.prepare_collection(route.collection, route.timeseries))
            if kind is None:
                return  # stopping while MongoDB is away
            self.collection_kind[route.collection] = kind
        self.routes, self.routes_signature = routes, signature
        if routes:
            pattern = "^(?:" + "|".join(f"(?:{r.topic})" if r.topic_is_regex else re.escape(r.topic)
                                        for r in routes) + ")$"
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
        if self.with_mongo_retry(store.move_old_shot_index) is None:
            return  # stopped while MongoDB was away
        self.consumer = self.connect()
        self.to_write: queue.Queue = queue.Queue(maxsize=1)
        self.written: queue.Queue = queue.Queue()
        self.index_writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-index")
        self.writer = writer = threading.Thread(target=self.write_batches, name=f"{self.name}-writer", daemon=True)
        writer.start()
        last_refresh = 0.0
        self.last_publish = self.last_save = 0.0
        try:
            while not self.stop.is_set() and writer.is_alive():
                now = time.monotonic()
                if now - last_refresh >= self.route_refresh_seconds:
                    self.refresh_routes()
                    last_refresh = now
                self.commit_written()
                if not self.routes:
                    self.assigned = set()
                    self.stop.wait(0.2)
                    continue
                try:
                    batch = self.consumer.poll(timeout_ms=200)
                except FencedInstanceIdError:
                    self.fenced()
                except Exception as exc:
                    if self.stop_undecodable_partition(exc):
                        continue
                    if not isinstance(exc, KafkaError):
                        raise
                    log.warning("Kafka poll failed (%s); retrying", exc)  # the client reconnects by itself
                    self.stop.wait(1)
                    continue
                self.assigned = set(self.consumer.assignment())
                if batch:
                    self.hand_over(self.prepare(batch))
                self.publish_if_due()
        except BaseException:
            self.stop.set()  # the writer and the index connection stop waiting for MongoDB
            raise
        finally:
            while writer.is_alive():  # the end marker goes after the batches already handed over
                try:
                    self.to_write.put(None, timeout=0.2)
                    break
                except queue.Full:
                    continue
            writer.join()
            self.index_writer.shutdown()
            self.commit_written()
            self.consumer.close(autocommit=False)
            elapsed = time.monotonic() - started
            log.info("watcher stopped: %d stored, %d duplicates, %d dead letters, %d batches in %.1f s",
                     self.stored, self.duplicates, self.dead, self.batches, elapsed)
        if self.writer_error is not None:
            raise RuntimeError("the MongoDB writer failed (see the log)") from self.writer_error

    def fenced(self) -> None:
        """Another process joined the group under this one's name (its static membership) and took
        its partitions: this one stops, its uncommitted batches are re-read by the other."""
        message = (f"another watch process named {self.name!r} joined group {self.group_id!r} and took this one's "
                   "partitions; each watch process of a group needs a name of its own")
        log.error("%s", message)
        raise RuntimeError(message) from None

    def stop_undecodable_partition(self, exc: Exception) -> bool:
        """Pause the partition whose records could not be decoded; True if that was the error.

        Decoding errors are kafka-python's codec and CRC errors and whatever a decompressor
        raises itself; nothing of that partition after the last stored record is committed.
        """
        if isinstance(exc, KafkaError) and not isinstance(exc, UnsupportedCodecError | CorruptRecordError):
            return False
        partition = drop_undecodable_fetch(self.consumer)
        if partition is None:
            return False
        self.consumer.pause(partition)
        offset = self.consumer.position(partition, timeout_ms=1000)
        self.undecodable[partition] = Undecodable(offset, f"{type(exc).__name__}: {exc}")
        log.error("partition %s/%d stopped at offset %s: its records cannot be decoded (%s: %s); the other "
                  "partitions go on, this one resumes from there after a restart", partition.topic,
                  partition.partition, offset, type(exc).__name__, exc)
        return True

    def hand_over(self, prepared: Prepared) -> None:
        """Queue a batch for the writer; waits (fetching nothing) while the writer is busy."""
        while self.writer.is_alive():
            try:
                self.to_write.put(prepared, timeout=0.2)
                return
            except queue.Full:
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
            counts = prepared.per_route.setdefault(route.name, [0, 0, []])
            for record in records:
                try:
                    document = to_document(route, record, now)
                except Rejected as exc:
                    prepared.letters.append(dead_letter(record, route, str(exc), now))
                    counts[1] += 1
                    continue
                prepared.by_collection.setdefault(route.collection, []).append((record, route, document))
        return prepared

    def write_batches(self) -> None:
        """The writer thread: write each handed-over batch until MongoDB acknowledged it.

        A batch is committed once its events, shot index and time index are written. The time
        index is written for all batches of the last second at once (beside the events, on the
        index connection): per batch, a 1 kHz stream in small batches would make thousands of
        index slots a minute for searches to read.
        """
        try:
            self._write_batches()
        except BaseException as exc:
            log.exception("the MongoDB writer failed; the watcher stops")
            self.writer_error = exc

    def _write_batches(self) -> None:
        while True:
            try:
                prepared = self.to_write.get(timeout=TIME_INDEX_SECONDS / 4)
            except queue.Empty:
                self.write_time_index()
                continue
            try:
                if prepared is None:
                    self.write_time_index(force=True)
                    return
                began = time.monotonic()
                if not self.write(prepared):
                    return  # stopped while MongoDB was unreachable: this batch stays uncommitted
                log.debug("batch of %d written in %.1f ms, %.1f ms after it was fetched",
                          sum(len(items) for items in prepared.by_collection.values()),
                          (time.monotonic() - began) * 1000, (time.monotonic() - prepared.fetched) * 1000)
                prepared.written = time.monotonic()
                self.awaiting_time_index.append(prepared)
                self.write_time_index()
            finally:
                self.to_write.task_done()

    def write_time_index(self, force: bool = False) -> None:
        """When a second has passed (or when forced), have the index connection index the
        waiting batches' events by time, then hand the batches over for their offsets to be
        committed (in order: the index connection is one thread)."""
        if self.time_index_error is not None:
            raise self.time_index_error  # as a failed event write would: the writer stops
        batches = self.awaiting_time_index
        refs = sum(len(docs) for p in batches for docs in p.documents_by_collection.values())
        if batches and (force or refs >= TIME_INDEX_REFS or time.monotonic() - batches[0].written >= TIME_INDEX_SECONDS):
            self.awaiting_time_index = []
            documents_by_collection: dict[str, list[dict]] = {}
            for prepared in batches:
                for collection, documents in prepared.documents_by_collection.items():
                    documents_by_collection.setdefault(collection, []).extend(documents)

            def index_then_release() -> None:
                # Once one job did not write its batches' index, no later job may release its own:
                # their offsets would commit the earlier batches too.
                if self.time_index_error is not None or self.time_index_given_up:
                    return
                def index() -> bool:
                    store.index_shots(documents_by_collection, self.shot_slots)
                    store.index_times(documents_by_collection, self.time_slots, self.hours_known)
                    return True

                try:
                    done = self.with_mongo_retry(index)
                except BaseException as exc:
                    log.exception("shot or time index not written; these batches stay uncommitted and the watcher stops")
                    self.time_index_error = exc
                    return
                if done is None:
                    self.time_index_given_up = True  # stopped while MongoDB was unreachable
                    return
                for prepared in batches:
                    prepared.documents_by_collection = {}
                    self.written.put(prepared)

            self.index_writer.submit(index_then_release)

    def write(self, prepared: Prepared) -> bool:
        """The batch's documents, then its dead letters. False if stopped first.

        A crash anywhere before the offsets are committed replays the batch, and every one of
        these writes is idempotent. The indexes (written later, see write_time_index) may name
        a document MongoDB refused (it went to the dead letters); readers skip references to
        documents that are not there.
        """
        now = datetime.now(UTC)
        prepared.documents_by_collection = {collection: [document for _, _, document in items]
                                            for collection, items in prepared.by_collection.items()}
        for collection, items in prepared.by_collection.items():
            timeseries = self.collection_kind.get(collection) == store.TIMESERIES
            outcome = self.with_mongo_retry(lambda: write_documents(collection, items, timeseries, now))
            if outcome is None:
                return False
            self.stored += outcome.stored
            self.duplicates += outcome.duplicates
            self.replaced += outcome.replaced
            for index, (record, route, document) in enumerate(items):
                counts = prepared.per_route[route.name]
                if index in outcome.letters:
                    prepared.letters.append(outcome.letters[index])
                    counts[1] += 1
                    continue
                counts[0] += 1
                counts[2].append(document)
        if prepared.letters:
            result = self.with_mongo_retry(lambda: store.add_dead_letters(prepared.letters))
            if result is None:
                return False
            self.dead += result.inserted  # a re-read record's dead letter is already there: not counted again
            for index, reason in result.rejected.items():
                letter = prepared.letters[index]
                log.error("dead letter %s not stored either (%s); the record stays in Kafka at that offset",
                          letter["_id"], reason)
            for index in result.duplicates:
                prepared.per_route[prepared.letters[index]["route"]][1] -= 1
        return True

    def take_written(self) -> tuple[dict, list[Prepared]]:
        """The batches the writer finished and the offsets to commit for them (in order)."""
        offsets: dict = {}
        finished = []
        while True:
            try:
                prepared = self.written.get_nowait()
            except queue.Empty:
                return offsets, finished
            offsets.update(prepared.offsets)  # later batches carry later offsets
            finished.append(prepared)

    def count_finished(self, finished: list[Prepared]) -> None:
        """The live counters, on the main thread only (the page's status reads them there)."""
        while True:
            try:
                finished.extend(self.finished_elsewhere.get_nowait())
            except queue.Empty:
                break
        for prepared in finished:
            self.batches += 1
            for name, (stored, dead, newest) in prepared.per_route.items():
                self.stats.setdefault(name, RouteStats()).add(stored, dead, newest)

    def commit_written(self) -> None:
        offsets, finished = self.take_written()
        self.count_finished(finished)
        if offsets:
            try:
                self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
            except FencedInstanceIdError:
                self.fenced()
            except (CommitFailedError, KafkaError) as exc:
                # A rebalance moved the partitions away: the new owner re-reads from the last
                # commit and the idempotent writes turn the repeats into duplicates, not copies.
                log.warning("offset commit failed (%s); those batches will be re-read and deduplicated", exc)

    def with_mongo_retry(self, write):
        """Run a MongoDB operation until it succeeds; None if asked to stop first.

        While this waits nothing new is fetched from Kafka (the loop is not polling), and
        the consumer's background heartbeat keeps this member's partitions.
        """
        delay = 0.5
        while True:
            try:
                result = write()
                if self.mongo_down_since is not None:
                    log.info("MongoDB reachable again after %.1f s; resuming",
                             time.monotonic() - self.mongo_down_since)
                    self.mongo_down_since = None
                return result
            except ConnectionFailure as exc:
                if self.mongo_down_since is None:
                    self.mongo_down_since = time.monotonic()
                log.warning("MongoDB unreachable (%s); fetching paused, retrying in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 8)

    # --- live status ------------------------------------------------------------------
    def lag(self) -> dict[str, int]:
        lag_by_topic: dict[str, int] = {}
        for tp in self.assigned:
            try:
                highwater = self.consumer.highwater(tp)
                position = self.consumer.position(tp, timeout_ms=100)
            except Exception:  # no position yet: unknown lag
                continue
            if highwater is not None and position is not None:
                lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + max(0, highwater - position)
        return lag_by_topic

    def status(self) -> dict:
        """This process's figures per route: the live view sums them over all watch processes."""
        lag = self.lag()
        return {
            "watcher": self.name,
            "at": time.time(),
            "mongo_down": self.mongo_down_since is not None,
            "routes": {
                route.name: {
                    "topic": route.topic, "collection": route.collection,
                    "collection_kind": self.collection_kind.get(route.collection, ""),
                    "total": self.stats[route.name].total, "dead_letters": self.stats[route.name].dead,
                    "rate": round(self.stats[route.name].rate(), 1),
                    "lag": sum(n for topic, n in lag.items() if route.matches(topic)),
                    "partitions": sorted(tp.partition for tp in self.assigned if route.matches(tp.topic)),
                    "stopped": [{"partition": f"{tp.topic}/{tp.partition}", "offset": stopped.offset,
                                 "error": stopped.error}
                                for tp, stopped in sorted(self.undecodable.items())
                                if tp in self.assigned and route.matches(tp.topic)],
                    "samples": self.stats[route.name].take_samples(),
                }
                for route in self.routes
            },
        }

    def publish_if_due(self) -> None:
        now = time.monotonic()
        if self.live and now - self.last_publish >= LIVE_INTERVAL:
            save = now - self.last_save >= STATUS_SAVE_INTERVAL and self.mongo_down_since is None
            self.publish_status(save=save)
            self.last_publish, self.last_save = now, (now if save else self.last_save)

    def publish_status(self, save: bool = False) -> None:
        """Send the aggregated status (never single messages) to browsers, at most 4 times a second."""
        status = self.status()
        live.send_status(status)  # best effort: ingestion goes on without it
        if save:  # for pages opened later: the figures before the first live update
            try:
                store.save_status(self.name, {k: v for k, v in status.items() if k != "routes"} | {
                    "routes": {name: {k: v for k, v in r.items() if k != "samples"}
                               for name, r in status["routes"].items()}})
            except ConnectionFailure:
                pass
