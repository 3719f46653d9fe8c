"""Dead letters replayed: the ones their route accepts now are stored, the rest stay.

Each is converted and written as the watcher would (same `_id`, provenance, duplicate rule),
so running it twice, or after a crash half-way, stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import store
from ..models import Route
from .convert import Converted, Rejected, to_document
from .writer import write_documents


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
    def of(cls, letter: dict) -> ReplayedRecord:
        return cls(
            letter["topic"],
            letter["partition"],
            letter["offset"],
            letter.get("key"),
            letter.get("raw"),
            [(header["key"], header["value"]) for header in letter.get("headers") or []],
            letter.get("timestamp"),
        )


@dataclass
class ReplayResult:
    stored: int = 0
    duplicates: int = 0
    replaced: int = 0
    left: dict[str, str] = field(default_factory=dict)  # dead letter id → why it still cannot be stored


@dataclass
class ReplayBatch:
    """The dead letters of one collection that pass their route now, and their ids."""

    items: list[Converted] = field(default_factory=list)
    letter_ids: list[str] = field(default_factory=list)
    timeseries: bool = False


def replay_dead_letters(route_name: str = "", reason: str = "", ids: list[str] | None = None) -> ReplayResult:
    """Store the dead letters that their topic's route accepts now (after a route or schema fix),
    indexed like any event, and remove them; leave the rest as they are."""
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
        if letter.get("raw_truncated"):
            result.left[letter["_id"]] = (
                f"only the first {len(letter['raw'])} of its {letter['raw_size']} bytes were kept; the whole "
                f"message is in Kafka at {letter['_id']} while the topic retains it"
            )
            continue
        record = ReplayedRecord.of(letter)
        try:
            document = to_document(route, record, now)
        except Rejected as exc:
            result.left[letter["_id"]] = str(exc)
            continue
        batch = batches.setdefault(route.collection, ReplayBatch(timeseries=route.timeseries))
        batch.items.append(Converted(record, route, document))
        batch.letter_ids.append(letter["_id"])
    for collection, batch in batches.items():
        write_replayed(collection, batch, now, result)
    return result


def write_replayed(collection: str, batch: ReplayBatch, now: datetime, result: ReplayResult) -> None:
    """One collection's replayed letters: written, indexed, and the stored ones removed."""
    timeseries = store.prepare_collection(collection, batch.timeseries) == store.TIMESERIES
    outcome = write_documents(collection, batch.items, timeseries, now)
    result.stored += outcome.stored
    result.duplicates += outcome.duplicates
    result.replaced += outcome.replaced
    for index, letter in outcome.letters.items():
        result.left[batch.letter_ids[index]] = letter["error"]
    passed = [index for index in range(len(batch.items)) if index not in outcome.letters]
    documents = {collection: [batch.items[index].document for index in passed]}
    store.index_shots(documents, {})
    store.index_times(documents, {}, set())
    store.log_files(documents)
    store.remove_dead_letters([batch.letter_ids[index] for index in passed])
