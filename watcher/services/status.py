"""The watcher page's live status: counts, rates and a few sampled messages per route.

Counted on the loop's thread only, and sent aggregated (never single messages) at most
4 times a second; every few seconds it is also saved, for pages opened later.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import orjson
from pymongo.errors import ConnectionFailure

from .. import live, store
from ..models import Route
from .writer import Prepared, RouteCounts

log = logging.getLogger(__name__)
SAMPLES_PER_UPDATE = 3  # messages per route in one live update (4 updates a second at most)
LIVE_INTERVAL = 0.25
STATUS_SAVE_INTERVAL = 2.0


@dataclass
class RouteStats:
    """What the live view shows of one route: counts, rate and a few sampled messages."""

    total: int = 0
    dead: int = 0
    window: deque = field(default_factory=lambda: deque(maxlen=64))  # (time, count)
    samples: deque = field(default_factory=lambda: deque(maxlen=SAMPLES_PER_UPDATE))

    def add(self, counts: RouteCounts) -> None:
        self.total += counts.stored
        self.dead += counts.dead
        self.window.append((time.monotonic(), counts.stored + counts.dead))
        # Only the newest few messages of a batch are kept: a sample, whatever the rate.
        self.samples.extend(preview(document) for document in counts.documents[-SAMPLES_PER_UPDATE:])

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
    return {
        "id": document["_id"],
        "shot_key": document.get("shot_key"),
        "kafka": f"{ingest.get('topic')}/{ingest.get('partition')}@{ingest.get('offset')}",
        "json": text if len(text) <= limit else text[:limit] + "…",
    }


class LiveStatus:
    """This process's figures per route; the live view sums them over all watch processes."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled
        self.stats: dict[str, RouteStats] = {}
        self.batches = 0
        self.last_publish = 0.0
        self.last_save = 0.0

    def stats_for(self, route_name: str) -> RouteStats:
        return self.stats.setdefault(route_name, RouteStats())

    def count(self, finished: list[Prepared]) -> None:
        """Add the batches the writer finished (on the loop's thread: `status` reads them there)."""
        for prepared in finished:
            self.batches += 1
            for name, counts in prepared.per_route.items():
                self.stats_for(name).add(counts)

    def route_status(self, route: Route, kind: str, lag: int, partitions: list[int], stopped: list[dict]) -> dict:
        stats = self.stats_for(route.name)
        return {
            "topic": route.topic,
            "collection": route.collection,
            "collection_kind": kind,
            "total": stats.total,
            "dead_letters": stats.dead,
            "rate": round(stats.rate(), 1),
            "lag": lag,
            "partitions": partitions,
            "stopped": stopped,
            "samples": stats.take_samples(),
        }

    def publish_if_due(self, status: Callable[[], dict], mongo_down: bool) -> None:
        """Send `status()` if the last update is LIVE_INTERVAL old; save it too now and then."""
        now = time.monotonic()
        if self.enabled and now - self.last_publish >= LIVE_INTERVAL:
            save = now - self.last_save >= STATUS_SAVE_INTERVAL and not mongo_down
            self.publish(status(), save=save)
            self.last_publish, self.last_save = now, (now if save else self.last_save)

    def publish(self, status: dict, save: bool = False) -> None:
        """Send the aggregated status to browsers; with `save`, store it without the samples."""
        live.send_status(status)  # best effort: ingestion goes on without it
        if save:  # for pages opened later: the figures before the first live update
            with suppress(ConnectionFailure):  # MongoDB away: the next save brings it up to date
                store.save_status(
                    self.name,
                    {k: v for k, v in status.items() if k != "routes"}
                    | {
                        "routes": {
                            name: {k: v for k, v in r.items() if k != "samples"} for name, r in status["routes"].items()
                        }
                    },
                )
