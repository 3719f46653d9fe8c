"""Events stored and indexed through the watcher's own store functions (what its writer thread
calls for each batch), for tests of the reads that need no Kafka."""

from datetime import UTC, datetime

from core.slots import SlotCache
from core.times import from_ns
from watcher import store
from watcher.models import Route


def ingest(collection: str, envelopes: list[dict], topic: str = "") -> list[dict]:
    """Route `topic` (default: one named after the collection) to `collection` and store the
    envelopes there as the watcher would (id = event id, `_ts` = laser time), with the shot and
    time index; returns the stored documents."""
    Route.objects.get_or_create(
        name=collection.replace("_", "-"),
        defaults={"topic": topic or f"test.{collection}", "collection": collection, "timestamp_field": "laser_ts_ns"},
    )
    store.prepare_collection(collection, False)
    documents = [
        {
            **envelope,
            "_id": envelope["event_id"],
            "_ts": from_ns(envelope["laser_ts_ns"]),
            "_ingest": {"topic": topic, "partition": 0, "offset": n, "key": None, "at": datetime.now(UTC)},
        }
        for n, envelope in enumerate(envelopes)
    ]
    store.insert_idempotent(collection, documents)
    slots: dict[str, SlotCache] = {}
    store.index_shots({collection: documents}, slots)
    store.index_times({collection: documents}, {}, set())
    return documents
