"""A watch process's Prometheus metrics (`manage.py watch --metrics-port`, WATCHER_METRICS_PORT).

Counted once per batch (≤ WATCHER_BATCH_SIZE records), never per message through
prometheus-client: label children are looked up once and cached, and the end-to-end latency of
every stored event goes into a `BatchHistogram`. Labels come from the configuration (route,
topic, partition) or a fixed list (a dead letter's reason), never from a message.

Several watch processes on one machine each serve on a port of their own; `labbook_watcher_info`
names the process (`--name`) and its group.
"""

from __future__ import annotations

import time
from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PrometheusCounter

from core.metrics import LATENCY_BUCKETS, BatchHistogram

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
# Rejected.reason and the writer's own: the only values of the dead letters' `reason` label.
DEAD_LETTER_REASONS = (
    "empty",
    "too_large",
    "not_utf8",
    "invalid_json",
    "not_object",
    "invalid_envelope",
    "no_id",
    "refused",
    "unorderable",
)
END_TO_END_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class WatcherMetrics:
    """The metrics of one watch process: counted by its writer thread, its loop and its retries."""

    def __init__(self, registry: CollectorRegistry, name: str, group: str) -> None:
        by_topic = ["route", "topic"]
        self.stored = PrometheusCounter(
            "labbook_watcher_stored", "Events stored in MongoDB.", by_topic, registry=registry
        )
        self.duplicates = PrometheusCounter(
            "labbook_watcher_duplicates", "Events skipped: their _id was stored already.", by_topic, registry=registry
        )
        self.replaced = PrometheusCounter(
            "labbook_watcher_replaced", "Stored events replaced by a newer version.", by_topic, registry=registry
        )
        self.dead_letters = PrometheusCounter(
            "labbook_watcher_dead_letters",
            "Messages that went to the dead letters (a re-read one is not counted again), by reason.",
            [*by_topic, "reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "labbook_watcher_consumer_lag_messages",
            "Messages in a partition this process holds that it has not yet fetched (high watermark - position).",
            ["topic", "partition"],
            registry=registry,
        )
        self.batch_records = Histogram(
            "labbook_watcher_batch_records",
            "Records per batch fetched and written.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.mongodb_write = Histogram(
            "labbook_watcher_mongodb_write_seconds",
            "Time to write one batch's events of one collection (insert_many and what follows).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.index_write = Histogram(
            "labbook_watcher_index_write_seconds",
            "Time to write the shot and time index for the batches of about one second.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.end_to_end = BatchHistogram(
            "labbook_watcher_end_to_end_seconds",
            "From an event's time (its route's time field, else Kafka's timestamp) to its being stored.",
            END_TO_END_BUCKETS,
            registry,
        )
        self.mongodb_retries = PrometheusCounter(
            "labbook_watcher_mongodb_retries",
            "MongoDB operations retried because the server was unreachable.",
            registry=registry,
        )
        Gauge(
            "labbook_watcher_info", "This watch process: its name and group.", ["watcher", "group"], registry=registry
        ).labels(name, group).set(1)
        self.children: dict[tuple, object] = {}  # (metric, *labels) → its child, looked up once
        self.topics_seen: set[tuple[str, str]] = set()

    def see_topic(self, route: str, topic: str) -> None:
        """Every counter of a route and topic starts at 0 when it is first seen: Prometheus's
        increase() cannot count what a series already holds when it first appears."""
        if (route, topic) not in self.topics_seen:
            self.topics_seen.add((route, topic))
            for metric in (self.stored, self.duplicates, self.replaced):
                self.child(metric, route, topic)
            for reason in DEAD_LETTER_REASONS:
                self.child(self.dead_letters, route, topic, reason)

    def child(self, metric, *labels):
        key = (metric, *labels)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = metric.labels(*labels)
        return found

    def count_written(self, items: list, outcome, seconds: float) -> None:
        """One collection's part of a batch, written: stored, duplicates and replaced per route and
        topic, and the end-to-end latency of each event stored."""
        self.mongodb_write.observe(seconds)
        skipped = {*outcome.letters, *outcome.duplicate_indexes, *outcome.replaced_indexes}
        if skipped:
            stored = [item for index, item in enumerate(items) if index not in skipped]
        else:
            stored = items
        now = time.time()
        self.end_to_end.observe_many([now - item.document["_ts"].timestamp() for item in stored])
        # Counted without a tuple per event: the watch process's cyclic GC runs by allocations.
        by_route: dict = {}
        for item in stored:
            by_topic = by_route.get(item.route.name)
            if by_topic is None:
                by_topic = by_route[item.route.name] = {}
            topic = item.record.topic
            by_topic[topic] = by_topic.get(topic, 0) + 1
        for route, by_topic in by_route.items():
            for topic, count in by_topic.items():
                self.see_topic(route, topic)
                self.child(self.stored, route, topic).inc(count)
        for indexes, metric in (
            (outcome.duplicate_indexes, self.duplicates),
            (outcome.replaced_indexes, self.replaced),
        ):
            for index in indexes:
                self.see_topic(items[index].route.name, items[index].record.topic)
                self.child(metric, items[index].route.name, items[index].record.topic).inc()

    def count_dead_letters(self, letters: list[dict]) -> None:
        """Dead letters newly stored (not those of records read again)."""
        for (route, topic, reason), count in Counter(
            (letter["route"] or "", letter["topic"], letter["reason"]) for letter in letters
        ).items():
            self.see_topic(route, topic)
            self.child(self.dead_letters, route, topic, reason).inc(count)

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """The lag of each partition held now; partitions no longer held are dropped."""
        held = {(topic, str(partition)) for topic, partition in lag}
        for key in [key for key in self.children if key[0] is self.lag and key[1:] not in held]:
            self.lag.remove(*key[1:])
            del self.children[key]
        for (topic, partition), messages in lag.items():
            self.child(self.lag, topic, str(partition)).set(messages)
