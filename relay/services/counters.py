"""The relay's counters: those a restarted relay goes on from, and its message counts.

Saved beside the durable log once a second (atomically, `StateFile`), and brought up to date
on start with the log lines after them, so a relay killed with -9 loses no count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from core.envelope import parse_shot_key

from ..durable_log import DurableLog, StateFile, read_from, tail_start
from .harmonise import ShotCounters, ShotTracker

log = logging.getLogger(__name__)
COUNTERS_TAIL_BYTES = 8 * 2**20  # without saved counters: where to look for the last shots in the log


@dataclass
class RelayStats:
    """Messages since this relay started (the live view's rate divides by its age)."""

    received: int = 0
    rejected: int = 0
    published: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class InputCounts:
    """Messages of one input (by endpoint) since this relay started, for the metrics."""

    received: int = 0
    published: int = 0
    rejected: int = 0


class SavedCounters:
    """The shot counters in `counters.json` beside the log, and up to where in the log they hold."""

    def __init__(self, durable_log: DurableLog) -> None:
        self.durable_log = durable_log
        self.file = StateFile(durable_log.directory / "counters.json")
        self.log_position: tuple[str, int] = ("", 0)

    def restore(self) -> ShotCounters:
        """Seq, the last shot and each source's shot counter and run as the previous relay left
        them: the counters it saved (every second), brought up to date with the log lines after
        them (a relay killed -9 saved up to a second before its last line). Each source's next
        shot then reports the relay's downtime, and the shots missed in it as a gap."""
        saved = self.file.load()
        counters = ShotCounters(
            seq=saved.get("seq", 0),
            last_shot=saved.get("last_shot"),
            trackers={source: ShotTracker(**tracker) for source, tracker in saved.get("sources", {}).items()},
        )
        down_since = saved.get("alive_ns")
        start = saved.get("log") or tail_start(self.durable_log.directory, COUNTERS_TAIL_BYTES)
        self.log_position = tuple(start)
        for file, offset, record in read_from(self.durable_log.directory, *start, limit=2**62):
            self.log_position = (file, offset)
            envelope = record.get("envelope") if record.get("type") == "envelope" else None
            if envelope:
                down_since = max(down_since or 0, envelope.get("relay_ts_ns") or 0)
                self.count_logged(counters, envelope)
        for tracker in counters.trackers.values():
            tracker.relay_down_since_ns = down_since
        if saved or counters.seq:
            log.info(
                "relay: counters restored (seq %d, %d source(s)); the relay was down since %s",
                counters.seq,
                len(counters.trackers),
                down_since,
            )
        return counters

    @staticmethod
    def count_logged(counters: ShotCounters, envelope: dict) -> None:
        """Move the counters past an envelope logged after they were saved."""
        counters.seq = max(counters.seq, envelope.get("seq") or 0)
        key = parse_shot_key(envelope.get("shot_key"))
        if envelope.get("kind") == "shot" and key:
            counters.trackers[envelope["source"]] = ShotTracker(
                last=envelope["shot_number"], date=key.date, run=key.run, last_laser_ts_ns=envelope.get("laser_ts_ns")
            )
            counters.last_shot = envelope

    def save(self, counters: ShotCounters) -> None:
        """Once a second from the loop (the only thread that moves them), so they match the log position."""
        self.log_position = self.durable_log.position() or self.log_position
        self.file.save(
            {
                "log": self.log_position,
                "seq": counters.seq,
                "alive_ns": time.time_ns(),
                "last_shot": counters.last_shot,
                "sources": {source: tracker.counters() for source, tracker in counters.trackers.items()},
            }
        )
