"""The watcher: Kafka topics → MongoDB collections, exactly once per event.

At-least-once delivery (offsets are committed only after MongoDB acknowledged the batch)
plus idempotent writes (deterministic `_id`s) give each event stored exactly once, through
crashes, MongoDB outages and consumer-group rebalances.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from asgiref.sync import async_to_sync
from bson import Binary
from channels.layers import get_channel_layer
from django.conf import settings
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from pymongo.errors import ConnectionFailure

from labbook.envelope import validation_errors
from labbook.runloop import StopFlag

from . import store
from .models import Route

log = logging.getLogger(__name__)
LIVE_GROUP = "watcher.live"


class Rejected(ValueError):
    """A message that cannot be stored; it goes to the dead letters with this reason."""


def get_path(document: dict, path: str):
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def to_datetime(value) -> datetime | None:
    """An event time given as ns or s since the epoch, or as ISO 8601 text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1e9 if abs(value) > 1e14 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


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
        raise Rejected(f"not valid JSON: {exc}") from None
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
        doc_id = get_path(document, route.id_field)
    else:
        doc_id = f"{record.topic}|{record.partition}|{record.offset}"
    if doc_id is None or doc_id == "" or isinstance(doc_id, dict | list):
        raise Rejected(f"no usable id ({route.get_id_strategy_display()}: {route.id_field or 'event_id'})")

    document["_id"] = str(doc_id)
    document["_ts"] = to_datetime(get_path(document, route.timestamp_field)) if route.timestamp_field else None
    document["_ts"] = document["_ts"] or now
    document["_ingest"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                           "key": record.key.decode(errors="replace") if record.key else None, "at": now}
    return document


def dead_letter(record, route: Route | None, error: str, now: datetime) -> dict:
    return {
        "_id": f"{record.topic}|{record.partition}|{record.offset}",
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "key": Binary(record.key) if record.key is not None else None,
        "raw": Binary(record.value) if record.value is not None else None,
        "route": route.name if route else None, "error": error, "at": now,
    }


@dataclass
class RouteStats:
    total: int = 0
    dead: int = 0
    window: deque = field(default_factory=lambda: deque(maxlen=64))  # (time, count)
    sample: dict | None = None

    def add(self, stored: int, dead: int, sample: dict | None) -> None:
        self.total += stored
        self.dead += dead
        self.window.append((time.monotonic(), stored + dead))
        if sample is not None:
            self.sample = sample

    def rate(self) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in self.window if now - t <= 5]
        return sum(n for _, n in recent) / 5 if recent else 0.0


def preview(document: dict, limit: int = 400) -> dict:
    """A small, JSON-safe picture of one stored message for the live view."""
    text = orjson.dumps({k: v for k, v in document.items() if k != "_ingest"}, default=str).decode()
    return {"id": document["_id"], "shot_key": document.get("shot_key"),
            "json": text if len(text) <= limit else text[:limit] + "…"}


class Watcher:
    """One member of the watcher consumer group. `run()` returns when `stop` is set."""

    def __init__(self, *, group_id: str | None = None, bootstrap_servers: str | None = None,
                 batch_size: int = 2000, stop: StopFlag | None = None, live: bool = True,
                 name: str | None = None, route_refresh_seconds: float = 2.0) -> None:
        self.group_id = group_id or settings.WATCHER_GROUP_ID
        self.bootstrap_servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.batch_size = batch_size
        self.stop = stop or StopFlag()
        self.live = live
        self.name = name or f"{socket.gethostname()}:{id(self)}"
        self.route_refresh_seconds = route_refresh_seconds
        self.routes: list[Route] = []
        self.routes_signature: tuple = ()
        self.prepared: set[str] = set()
        self.stats: dict[str, RouteStats] = {}
        self.stored = self.duplicates = self.dead = self.batches = 0
        self.assigned: set = set()
        self.consumer: KafkaConsumer | None = None

    # --- routes -------------------------------------------------------------------
    def refresh_routes(self) -> None:
        routes = list(Route.objects.filter(enabled=True).order_by("topic_is_regex", "name"))
        signature = tuple((r.pk, r.updated) for r in routes)
        if signature == self.routes_signature:
            return
        self.routes, self.routes_signature = routes, signature
        for route in routes:
            self.stats.setdefault(route.name, RouteStats())
            if route.collection not in self.prepared:
                store.prepare_collection(route.collection, route.timeseries)
                self.prepared.add(route.collection)
        if routes:
            pattern = "^(?:" + "|".join(r.topic if r.topic_is_regex else re.escape(r.topic) for r in routes) + ")$"
            self.consumer.subscribe(pattern=pattern)
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
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            max_poll_interval_ms=600_000,
            metadata_max_age_ms=2000,  # pattern subscriptions see new topics within seconds
            fetch_max_wait_ms=100,
            reconnect_backoff_max_ms=5000,
        )

    def run(self) -> None:
        started = time.monotonic()
        self.consumer = self.connect()
        last_refresh = last_publish = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now - last_refresh >= self.route_refresh_seconds:
                    self.refresh_routes()
                    last_refresh = now
                if not self.routes:
                    self.stop.wait(0.2)
                    continue
                try:
                    batch = self.consumer.poll(timeout_ms=200)
                except KafkaError as exc:  # the client reconnects by itself; keep going
                    log.warning("Kafka poll failed (%s); retrying", exc)
                    self.stop.wait(1)
                    continue
                self.assigned = set(self.consumer.assignment())
                if batch and not self.handle_batch(batch):
                    break  # stopped while MongoDB was unreachable: nothing committed
                if self.live and time.monotonic() - last_publish >= 0.25:
                    self.publish_status()
                    last_publish = time.monotonic()
        finally:
            self.consumer.close(autocommit=False)
            elapsed = time.monotonic() - started
            log.info("watcher stopped: %d stored, %d duplicates, %d dead letters, %d batches in %.1f s",
                     self.stored, self.duplicates, self.dead, self.batches, elapsed)

    def handle_batch(self, batch: dict) -> bool:
        """Write one polled batch, then commit its offsets. False if stopped before writing."""
        now = datetime.now(UTC)
        by_collection: dict[str, list[dict]] = {}
        route_of: dict[str, Route] = {}
        letters: list[dict] = []
        per_route: dict[str, list] = {}
        for records in batch.values():
            for record in records:
                route = self.route_for(record.topic)
                if route is None:
                    letters.append(dead_letter(record, None, f"no enabled route for topic {record.topic}", now))
                    continue
                try:
                    document = to_document(route, record, now)
                except Rejected as exc:
                    letters.append(dead_letter(record, route, str(exc), now))
                    per_route.setdefault(route.name, [0, 0, None])[1] += 1
                    continue
                by_collection.setdefault(route.collection, []).append((record, route, document))
                route_of[route.collection] = route

        for collection, items in by_collection.items():
            result = self.with_mongo_retry(lambda: store.insert_idempotent(collection, [d for _, _, d in items]))
            if result is None:
                return False
            self.stored += result.inserted
            self.duplicates += result.duplicates
            for index, reason in result.rejected.items():
                record, route, _ = items[index]
                letters.append(dead_letter(record, route, f"refused by MongoDB: {reason}", now))
            for index, (record, route, document) in enumerate(items):
                if index not in result.rejected:
                    counts = per_route.setdefault(route.name, [0, 0, None])
                    counts[0] += 1
                    counts[2] = document
        if letters:
            if self.with_mongo_retry(lambda: store.add_dead_letters(letters)) is None:
                return False
            self.dead += len(letters)

        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()}
        try:
            self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance moved the partitions away: the new owner re-reads from the last
            # commit and the idempotent writes turn the repeats into duplicates, not copies.
            log.warning("offset commit failed (%s); the batch will be re-read and deduplicated", exc)
        self.batches += 1
        for name, (stored, dead, last) in per_route.items():
            self.stats.setdefault(name, RouteStats()).add(stored, dead, preview(last) if last else None)
        return True

    def with_mongo_retry(self, write):
        """Run a MongoDB write until it succeeds; None if asked to stop first."""
        delay = 0.5
        while True:
            try:
                return write()
            except ConnectionFailure as exc:
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
        lag = self.lag()
        return {
            "watcher": self.name,
            "at": time.time(),
            "routes": {
                route.name: {
                    "topic": route.topic, "collection": route.collection,
                    "total": self.stats[route.name].total, "dead_letters": self.stats[route.name].dead,
                    "rate": round(self.stats[route.name].rate(), 1),
                    "lag": sum(n for topic, n in lag.items() if route.matches(topic)),
                    "sample": self.stats[route.name].sample,
                }
                for route in self.routes
            },
        }

    def publish_status(self) -> None:
        """Send the aggregated status (never single messages) to browsers, at most 4 times a second."""
        status = self.status()
        try:
            async_to_sync(get_channel_layer().group_send)(LIVE_GROUP, {"type": "watcher.status", "status": status})
        except Exception as exc:  # the live view is best effort; ingestion goes on
            log.warning("live status not sent: %s", exc)
