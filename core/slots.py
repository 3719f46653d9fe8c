"""Insert-only numbered documents ("slots"): the one write that is atomic on every server.

FerretDB has no transactions and answers only `_id` look-ups from an index, so append-only
structures (the shot sheet's change log, the watcher's hand-made indexes) are runs of documents
with `_id = "<key>|<n>"`: a writer takes slot n by inserting it, and a duplicate key (E11000)
means another writer was first, so it tries n + 1. Readers walk the slots from 0 and stop at
the first missing one, so a run never has gaps.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from core.mongo import insert_by_id

log = logging.getLogger(__name__)

MAX_SLOTS = 10_000  # a key with this many slots taken gets no more (readers stop there)


def last_number(exists: Callable[[int], bool], known: int = 0) -> int:
    """The last number of a gap-free run 1..N of numbered documents (0: none), found with
    `exists(n)` look-ups from a `known` one upwards: a gallop, then a bisection (a few dozen
    look-ups for a run of millions, where probing one by one would read them all)."""
    low, step = (known if known and exists(known) else 0), 1  # low exists or is 0
    while exists(low + step):
        low, step = low + step, step * 2
    high = low + step
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if exists(middle) else (low, middle)
    return low


def slot_id(key: str, number: int) -> str:
    return f"{key}|{number}"


def read_slots(
    collection: Collection, key: str, *, make_id: Callable[[str, int], str] = slot_id, max_slots: int = MAX_SLOTS
) -> Iterator[dict]:
    """A key's slots in order, from slot 0 to the first missing one: one `_id` look-up each."""
    for number in range(max_slots):
        document = collection.find_one({"_id": make_id(key, number)})
        if document is None:
            return
        yield document


class SlotCache(OrderedDict):
    """The next free slot per key, so a key written often is not probed from 0 (least recently
    used keys are forgotten)."""

    def __init__(self, size: int = 50_000) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, slot: int) -> None:
        self[key] = slot
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def insert_slots(
    collection: Collection,
    bodies: Mapping[str, list[dict]],
    first: Mapping[str, int],
    *,
    make_id: Callable[[str, int], str] = slot_id,
    ordered: bool = False,
    keep_refused: bool = False,
    max_slots: int | None = MAX_SLOTS,
) -> dict[str, int]:
    """Insert each key's bodies in its next free slots, from slot `first[key]` (0 if absent) on;
    returns the next free slot of each key.

    Each round is one insert_many. A taken slot moves the body on to a later one. `ordered`: a
    key's bodies land in their order (the server stops at the first taken slot); otherwise a
    body may land after one that followed it. A body the server refuses for itself: raised, or
    with `keep_refused` logged and its slot kept by a `{"refused": reason}` document (an index
    must not stop on one entry it cannot store, and readers stop at the first missing slot).
    Transient server errors raise AutoReconnect (the caller retries).
    """
    queues = {key: list(items) for key, items in bodies.items() if items}
    next_slot = {key: first.get(key, 0) for key in queues}
    while queues:
        placed = [(key, body, next_slot[key] + i) for key, items in queues.items() for i, body in enumerate(items)]
        outcome = _insert(
            collection, [{"_id": make_id(key, slot), **body} for key, body, slot in placed], ordered, keep_refused
        )
        for key in list(queues):
            queues[key] = []
        for (key, body, slot), result in zip(placed, outcome, strict=True):
            if result != "not tried":
                next_slot[key] = max(next_slot[key], slot + 1)
            if result == "taken" and max_slots is not None and slot >= max_slots:
                log.warning("%s: no free slot for %s below %d; entry dropped", collection.name, key, max_slots)
            elif result in ("taken", "not tried"):
                queues[key].append(body)
        queues = {key: items for key, items in queues.items() if items}
    return next_slot


def _insert(collection: Collection, documents: list[dict], ordered: bool, keep_refused: bool) -> list[str]:
    """insert_many; per document "stored", "taken" (duplicate key) or "not tried" (after an
    ordered insert stopped)."""
    inserted = insert_by_id(collection, documents, ordered=ordered, keep_refused=keep_refused)
    outcome = ["stored"] * len(documents)
    for index in inserted.duplicates:
        outcome[index] = "taken"
    for index in inserted.not_tried:
        outcome[index] = "not tried"
    for index, reason in inserted.refused.items():
        outcome[index] = _keep_refused(collection, documents[index]["_id"], reason)
    return outcome


def _keep_refused(collection: Collection, document_id: str, reason: str) -> str:
    log.warning("%s: entry %s refused: %s", collection.name, document_id, reason)
    try:
        collection.insert_one({"_id": document_id, "refused": reason})
        return "stored"
    except DuplicateKeyError:
        return "taken"
