"""The relay page's live status: rates, counts, the last shot and the Kafka shipper's state.

Sent and saved by a thread of its own, twice a second: MongoDB and Redis writes on the loop
would delay shots by milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from .. import live, store
from .counters import RelayStats
from .harmonise import ShotCounters

if TYPE_CHECKING:  # importing this module loads no Kafka client
    from .shipper import ShipperProcess

log = logging.getLogger(__name__)


def relay_status(stats: RelayStats, counters: ShotCounters, shipper: ShipperProcess | None) -> dict:
    """The figures the relay page shows (read beside the loop, which goes on counting)."""
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    shot = counters.last_shot
    trackers = list(counters.trackers.values())  # the loop may add a source meanwhile
    shipped = shipper.shipped if shipper else 0
    return {
        "rate": round(stats.published / elapsed, 2),
        "received": stats.received,
        "rejected": stats.rejected,
        "published": stats.published,
        "last_shot": {k: shot[k] for k in ("shot_key", "shot_number", "laser_ts_ns", "event_id")} if shot else None,
        "gaps": sum(t.gaps for t in trackers),
        "missing_shots": sum(t.missing for t in trackers),
        "duplicates": sum(t.duplicates for t in trackers),
        "counter_resets": sum(t.resets for t in trackers),
        "kafka_connected": bool(shipper and shipper.connected),
        "kafka_shipped": shipped,
        "kafka_shipper_restarts": shipper.restarts if shipper else 0,
        "kafka_backlog": max(0, stats.published - shipped),
        "at": time.time(),
    }


def publish_status(
    status: dict, shots: list[dict], last_shot: dict | None, index_state: store.ShotIndexState | None = None
) -> None:
    """Record the shots by key (and index them by time and number), save the status and send it
    to browsers; best effort."""
    index_state = index_state if index_state is not None else store.ShotIndexState()
    try:
        store.record_shots(shots, index_state, index=False)
        store.save_state(status, last_shot)
        store.index_recorded(index_state)  # after the status: the page and the latest shot wait for nothing
    except PyMongoError as exc:  # the status is best effort; relaying goes on
        log.warning("relay status not saved: %s", exc)
    live.send_status(status)


def drain(queue: deque) -> list:
    """What is in a deque now, taken out (the relay loop appends meanwhile; the last status
    round, at exit, may drain beside the status thread)."""
    taken = []
    for _ in range(len(queue)):
        try:
            taken.append(queue.popleft())
        except IndexError:
            break
    return taken
