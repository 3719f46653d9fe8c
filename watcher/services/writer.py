"""The batch writer: converted batches → MongoDB (events, dead letters, shot and time index).

It runs in a thread of its own so converting the next batch overlaps the write of the
previous one, and it hands each batch back (its offsets to commit) only once MongoDB has
acknowledged the batch and its indexes: a crash before that replays the batch, and every
write here is idempotent, so a replay stores nothing twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from pymongo.errors import ConnectionFailure

from core.matching import lookup
from core.runloop import StopFlag

from .. import store
from ..metrics import WatcherMetrics
from ..models import Route
from .convert import Converted, Rejected, dead_letter

log = logging.getLogger(__name__)
TIME_INDEX_SECONDS = 1.0  # the time index is written once a second (or every TIME_INDEX_REFS events)
TIME_INDEX_REFS = 20_000
T = TypeVar("T")


@dataclass
class WriteOutcome:
    """What became of one collection's part of a batch; `letters` by position in it."""

    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    letters: dict[int, dict] = field(default_factory=dict)
    duplicate_indexes: list[int] = field(default_factory=list)  # (the rare ones, by position, for the metrics)
    replaced_indexes: list[int] = field(default_factory=list)


def write_documents(collection: str, items: list[Converted], timeseries: bool, now: datetime) -> WriteOutcome:
    """Store converted records in one collection; idempotent, so safe to repeat.

    A document with the `_id` of a stored one is a duplicate, unless its route replaces with
    newer versions: then it replaces the stored one by `_id` (the one update FerretDB does
    without reading the whole collection) when it is newer. Refused documents, and different
    versions that cannot be ordered, come back as dead letters.
    """
    result = store.insert_idempotent(collection, [item.document for item in items], timeseries)
    outcome = WriteOutcome(stored=result.inserted)
    for index, reason in result.rejected.items():
        outcome.letters[index] = dead_letter(items[index].record, items[index].route, reason, now, "refused")
    for index in result.duplicates:
        item = items[index]
        stored = None
        if item.route.on_duplicate == Route.OnDuplicate.REPLACE_NEWER and not timeseries:
            stored = store.stored_document(collection, item.document["_id"])
        try:
            if stored is not None and is_newer(item.route, item.document, stored):
                store.replace_document(collection, item.document)
                outcome.replaced += 1
                outcome.replaced_indexes.append(index)
            else:
                outcome.duplicates += 1
                outcome.duplicate_indexes.append(index)
        except Rejected as exc:
            outcome.letters[index] = dead_letter(item.record, item.route, str(exc), now, exc.reason)
    return outcome


def is_newer(route: Route, document: dict, stored: dict) -> bool:
    """Whether a document replaces the stored one of its `_id` (False: the same message again, or
    an older version); Rejected when two different documents cannot be ordered (also: the same version)."""
    if message_fields(document) == message_fields(stored):
        return False
    if route.version_field:
        new, old = lookup(document, route.version_field), lookup(stored, route.version_field)
        new_order, old_order = version_order(new), version_order(old)
        if new_order is not None and old_order is not None and new_order[0] == old_order[0]:
            if new_order[1] == old_order[1]:
                raise Rejected(
                    f"a different document {document['_id']!r} with the same version as the stored one "
                    f"({route.version_field!r} {new!r}, stored {old!r}): which one is right cannot be told",
                    "unorderable",
                )
            return new_order[1] > old_order[1]
        reason = f"its version field {route.version_field!r} is {new!r}, the stored one's {old!r}"
    else:
        new, old = document["_ingest"], stored.get("_ingest", {})
        if (new["topic"], new["partition"]) == (old.get("topic"), old.get("partition")):
            return new["offset"] > old.get("offset", -1)
        reason = (
            f"no version field, and it came from {new['topic']}/{new['partition']}, the stored one from "
            f"{old.get('topic')}/{old.get('partition')} (Kafka orders only within a partition)"
        )
    raise Rejected(
        f"a different version of the stored document {document['_id']!r} that cannot be ordered: {reason}",
        "unorderable",
    )


def version_order(value) -> tuple[str, object] | None:
    """A version's kind and the value it orders by: numbers (not booleans) and all-digit text as
    numbers ("10" after "9"), ISO 8601 times as instants (with an offset; naive ones only among
    themselves); any other text cannot be ordered (alphabetical order would put "10" before "9")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number", value
    if not isinstance(value, str):
        return None
    if value.isascii() and value.isdigit():
        return "number", int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ("time" if moment.tzinfo else "local time"), moment


def message_fields(document: dict) -> dict:
    """The message itself, without what the watcher adds (`_ts` may be the ingest time)."""
    return {key: value for key, value in document.items() if key not in ("_ts", "_ingest")}


@dataclass
class RouteCounts:
    """One route's part of a batch, for the live view: stored, dead-lettered, the stored documents."""

    stored: int = 0
    dead: int = 0
    documents: list[dict] = field(default_factory=list)


@dataclass
class Prepared:
    """One polled batch, converted: what to write where, and the offsets to commit after."""

    by_collection: dict[str, list[Converted]] = field(default_factory=dict)
    letters: list[dict] = field(default_factory=list)
    per_route: dict[str, RouteCounts] = field(default_factory=dict)
    offsets: dict = field(default_factory=dict)  # TopicPartition → OffsetAndMetadata
    fetched: float = field(default_factory=time.monotonic)
    written: float = 0.0  # when its events were written; committed once the time index has them

    @property
    def documents_by_collection(self) -> dict[str, list[dict]]:
        """The batch's documents by collection, as the indexes take them."""
        return {collection: [item.document for item in items] for collection, items in self.by_collection.items()}


@dataclass
class Totals:
    """What this process did with the records it was given, since it started."""

    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    dead: int = 0


class MongoRetry:
    """Run a MongoDB operation until it succeeds, or until asked to stop; remember the outage.

    While it waits nothing new is fetched from Kafka (the loop is not polling), and the
    consumer's background heartbeat keeps this member's partitions; the live view shows
    "MongoDB unreachable" from `down_since`.
    """

    def __init__(self, stop: StopFlag, metrics: WatcherMetrics | None = None) -> None:
        self.stop = stop
        self.down_since: float | None = None
        self.metrics = metrics

    def __call__(self, operation: Callable[[], T]) -> T | None:
        """The operation's result; None if stopped first."""
        delay = 0.5
        while True:
            try:
                result = operation()
            except ConnectionFailure as exc:
                if self.down_since is None:
                    self.down_since = time.monotonic()
                if self.metrics is not None:
                    self.metrics.mongodb_retries.inc()
                log.warning("MongoDB unreachable (%s); fetching paused, retrying in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 8)
                continue
            if self.down_since is not None:
                log.info("MongoDB reachable again after %.1f s; resuming", time.monotonic() - self.down_since)
                self.down_since = None
            return result


class BatchWriter:
    """The writer thread and the index connection behind it.

    Batches come in through `offer` (one waits at most: the loop fetches nothing more while
    the writer is busy) and go out through `take_written`, in order, once their events, shot
    index and time index are written.
    """

    def __init__(
        self, name: str, retry: MongoRetry, collection_kind: dict[str, str], metrics: WatcherMetrics | None = None
    ) -> None:
        self.retry = retry
        self.metrics = metrics
        self.collection_kind = collection_kind  # the loop's, filled as routes appear
        self.to_write: queue.Queue[Prepared | None] = queue.Queue(maxsize=1)
        self.written: queue.Queue[Prepared] = queue.Queue()
        self.totals = Totals()
        self.shot_slots: dict[str, store.SlotCache] = {}  # per index collection
        self.time_slots: dict[str, store.SlotCache] = {}
        self.hours_known: set[tuple[str, str]] = set()
        self.awaiting_time_index: list[Prepared] = []  # written, waiting for the next time-index write
        self.time_index_error: BaseException | None = None  # the index connection failed: the writer stops
        self.time_index_given_up = False  # stopped with MongoDB away: nothing later may be committed past it
        self.error: BaseException | None = None
        self.index_writer = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-index")
        self.thread = threading.Thread(target=self.write_batches, name=f"{name}-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def offer(self, prepared: Prepared, timeout: float) -> bool:
        """Queue a batch; False if the writer is still busy with the previous one after `timeout` s."""
        try:
            self.to_write.put(prepared, timeout=timeout)
        except queue.Full:
            return False
        return True

    def finish(self) -> None:
        """Write what was handed over, then stop (the end marker goes after those batches)."""
        while self.is_alive() and not self.offer(None, timeout=0.2):
            pass
        self.thread.join()
        self.index_writer.shutdown()

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
            self.error = exc

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
                log.debug(
                    "batch of %d written in %.1f ms, %.1f ms after it was fetched",
                    sum(len(items) for items in prepared.by_collection.values()),
                    (time.monotonic() - began) * 1000,
                    (time.monotonic() - prepared.fetched) * 1000,
                )
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
        if not batches:
            return
        refs = sum(len(items) for p in batches for items in p.by_collection.values())
        if force or refs >= TIME_INDEX_REFS or time.monotonic() - batches[0].written >= TIME_INDEX_SECONDS:
            self.awaiting_time_index = []
            self.index_writer.submit(self.index_then_release, batches)

    def index_then_release(self, batches: list[Prepared]) -> None:
        """On the index connection: index the batches' events by shot and time, log the shots that
        got files (store.log_files), then release them."""
        # Once one job did not write its batches' index, no later job may release its own:
        # their offsets would commit the earlier batches too.
        if self.time_index_error is not None or self.time_index_given_up:
            return
        documents_by_collection: dict[str, list[dict]] = {}
        for prepared in batches:
            for collection, documents in prepared.documents_by_collection.items():
                documents_by_collection.setdefault(collection, []).extend(documents)

        def index() -> bool:
            store.index_shots(documents_by_collection, self.shot_slots)
            store.index_times(documents_by_collection, self.time_slots, self.hours_known)
            store.log_files(documents_by_collection)  # after the shot index: a reader of the log finds the events
            return True

        began = time.perf_counter()
        try:
            done = self.retry(index)
        except BaseException as exc:
            log.exception("shot or time index not written; these batches stay uncommitted and the watcher stops")
            self.time_index_error = exc
            return
        if done is None:
            self.time_index_given_up = True  # stopped while MongoDB was unreachable
            return
        if self.metrics is not None:
            self.metrics.index_write.observe(time.perf_counter() - began)
        for prepared in batches:
            self.written.put(prepared)

    def write(self, prepared: Prepared) -> bool:
        """The batch's documents, then its dead letters. False if stopped first.

        A crash anywhere before the offsets are committed replays the batch, and every one of
        these writes is idempotent. The indexes (written later, see write_time_index) may name
        a document MongoDB refused (it went to the dead letters); readers skip references to
        documents that are not there.
        """
        now = datetime.now(UTC)
        for collection, items in prepared.by_collection.items():
            timeseries = self.collection_kind.get(collection) == store.TIMESERIES
            began = time.perf_counter()
            outcome = self.retry(partial(write_documents, collection, items, timeseries, now))
            if outcome is None:
                return False
            if self.metrics is not None:
                self.metrics.count_written(items, outcome, time.perf_counter() - began)
            self.totals.stored += outcome.stored
            self.totals.duplicates += outcome.duplicates
            self.totals.replaced += outcome.replaced
            for index, item in enumerate(items):
                counts = prepared.per_route[item.route.name]
                if index in outcome.letters:
                    prepared.letters.append(outcome.letters[index])
                    counts.dead += 1
                else:
                    counts.stored += 1
                    counts.documents.append(item.document)
        return self.write_dead_letters(prepared)

    def write_dead_letters(self, prepared: Prepared) -> bool:
        """The batch's dead letters (a re-read record's is already there: not counted again)."""
        if not prepared.letters:
            return True
        result = self.retry(lambda: store.add_dead_letters(prepared.letters))
        if result is None:
            return False
        self.totals.dead += result.inserted
        for index, reason in result.rejected.items():
            letter = prepared.letters[index]
            log.error(
                "dead letter %s not stored either (%s); the record stays in Kafka at that offset", letter["_id"], reason
            )
        for index in result.duplicates:
            prepared.per_route[prepared.letters[index]["route"]].dead -= 1
        if self.metrics is not None:
            not_new = {*result.duplicates, *result.rejected}
            self.metrics.count_dead_letters([letter for i, letter in enumerate(prepared.letters) if i not in not_new])
        return True
