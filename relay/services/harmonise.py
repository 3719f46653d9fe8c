"""A drive-laser message → a harmonised shot envelope: shot number, run, times, flags.

No I/O: the relay is the one place where a shot's identity is made, and this is where. The
counters it moves (each source's shot counter and run, the relay's seq) survive a restart
through `counters.SavedCounters`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from core.envelope import local_date, make_envelope
from core.times import epoch_ns

from ..parsers import PARSERS


@dataclass
class ShotTracker:
    """Gap, duplicate and counter-reset detection on one source's shot numbers, and its runs.

    A counter that goes back within a local day starts the day's next run (the shot key names
    it, so a key never names two shots); a new day starts at run 1.
    """

    last: int | None = None
    date: str = ""  # local YYYYMMDD of the last shot
    run: int = 1
    shots: int = 0  # observed since this relay started (like the counts below; not saved)
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    resets: int = 0
    relay_down_since_ns: int | None = None  # restored after a restart: the next shot reports it
    last_laser_ts_ns: int | None = None  # of the last shot: a true re-send has the same time or none

    def observe(self, shot: int | None, date: str, laser_ts_ns: int | None = None) -> tuple[int, dict]:
        """The shot number to use (assigned when the laser gives none) and the flags to record;
        `self.run` is then the shot's run. The same number again with a different laser time is
        not a re-send but a new shot of a restarted counter: it starts the next run."""
        flags: dict = {}
        self.shots += 1
        if self.relay_down_since_ns is not None:  # whatever follows (gap, reset) happened while the relay was down
            flags["relay_restart"] = {"previous": self.last, "down_since_ns": self.relay_down_since_ns}
            self.relay_down_since_ns = None
        if shot is None:
            shot = 1 if self.last is None else self.last + 1
            flags["shot_number_assigned"] = True
        elif self.last is not None:
            if shot == self.last and self.resent(laser_ts_ns):
                self.duplicates += 1
                flags["duplicate"] = True
            elif shot > self.last + 1:
                self.gaps += 1
                self.missing += shot - self.last - 1
                flags["gap"] = shot - self.last - 1
            elif shot <= self.last:
                # The laser restarted (new day or run): a new counter, not thousands of gaps.
                self.resets += 1
                self.run = self.run + 1 if date == self.date else 1
                flags["counter_reset"] = {"previous": self.last, "run": self.run}
        if date != self.date:
            self.run, self.date = 1, date
        self.last, self.last_laser_ts_ns = shot, laser_ts_ns
        return shot, flags

    def resent(self, laser_ts_ns: int | None) -> bool:
        """The last shot's number again is a re-send if it has the last shot's laser time, or either has none."""
        return laser_ts_ns is None or self.last_laser_ts_ns is None or laser_ts_ns == self.last_laser_ts_ns

    def counters(self) -> dict:
        """What a restarted relay needs to go on counting (see SavedCounters.restore)."""
        return {"last": self.last, "date": self.date, "run": self.run, "last_laser_ts_ns": self.last_laser_ts_ns}

    def run_of(self, date: str) -> int:
        """The run a shot number of another kind of event (a diagnostic's) on `date` belongs to."""
        return self.run if date == self.date else 1


@dataclass
class ShotCounters:
    """What harmonisation counts: the relay's seq, each source's shot counter, the last shot."""

    seq: int = 0
    last_shot: dict | None = None
    trackers: dict[str, ShotTracker] = field(default_factory=dict)
    shot_source: str | None = None  # the source that last counted a shot: its run is the experiment's

    def current_run(self, date: str, source: str) -> int:
        """The experiment's run on `date`: one current run per experiment and day, set by the
        source that counts shots (a diagnostic's `shot=2` names that source's shot), else `source`'s own."""
        counting = self.shot_source or (self.last_shot or {}).get("source") or source
        tracker = self.trackers.get(counting) or self.trackers.get(source)
        return tracker.run_of(date) if tracker else 1


def laser_time_ns(message: dict, tz: str) -> int | None:
    """The laser's timestamp: `ts_ns` (int ns), or `timestamp`/`time` in any unit or ISO 8601
    (core.times; naive text in the input's zone `tz`). An unreadable time stays among the values."""
    if type(message.get("ts_ns")) is int:
        return message.pop("ts_ns")
    for key in ("timestamp", "time"):
        if key in message:
            ns = epoch_ns(message[key], tz)
            if ns is not None:
                del message[key]
                return ns
    return None


def shot_number_of(message: dict) -> int | None:
    for key in ("shot", "shot_number", "shot_id"):
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            message.pop(key)
            return value
        if isinstance(value, str) and value.isdigit():
            message.pop(key)
            return int(value)
    return None


class Harmoniser:
    """Raw input messages → envelopes, moving the shot counters (the relay loop's thread only)."""

    def __init__(self, experiment: str, counters: ShotCounters) -> None:
        self.experiment = experiment
        self.counters = counters

    def envelope_for(self, spec: dict, topic: bytes, raw: bytes) -> dict:
        """The envelope of one message from the input `spec`; ParseError if it cannot be read."""
        message = PARSERS[spec["parser"]](raw)
        shot = shot_number_of(message)
        laser_ts = laser_time_ns(message, spec["time_zone"])
        relay_ts = time.time_ns()
        source = spec["source"]
        kind = str(message.pop("kind", "shot"))
        flags: dict = {}
        run = 1
        if kind == "shot" or shot is not None:
            date = local_date(laser_ts or relay_ts, settings.TIME_ZONE)
            if kind == "shot":  # other kinds (status, probe …) neither take nor move a shot counter
                trackers = self.counters.trackers
                tracker = trackers.get(source) or trackers.setdefault(source, ShotTracker())
                shot, flags = tracker.observe(shot, date, laser_ts)
                self.counters.shot_source = source
            run = self.counters.current_run(date, source)
        self.counters.seq += 1
        return make_envelope(
            experiment=self.experiment,
            source=source,
            kind=kind,
            shot_number=shot,
            laser_ts_ns=laser_ts,
            tz=settings.TIME_ZONE,
            run=run,
            relay_ts_ns=relay_ts,
            seq=self.counters.seq,
            transport={"endpoint": spec["endpoint"], "mode": spec["mode"], "topic": topic.decode(errors="replace")},
            values=message,
            metadata=flags,
        )
