"""Logged envelopes produced to Kafka again, as logged (same event ids): by time, day, run or shots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from kafka import KafkaProducer

from core.envelope import local_date, parse_shot_key

from ..durable_log import read_from


@dataclass(frozen=True)
class ReplayScope:
    """Which logged envelopes a replay sends. Shot numbers restart every day and every run, so
    a shot range means something only within a day (`date`) or time window, and a run."""

    since_ns: int | None = None
    until_ns: int | None = None
    date: str | None = None  # local YYYYMMDD, as in the shot key
    run: int | None = None  # None: every run
    shots: tuple[int, int] | None = None

    def includes(self, envelope: dict) -> bool:
        when = envelope.get("laser_ts_ns") or envelope.get("relay_ts_ns")
        if self.since_ns is not None and (when is None or when < self.since_ns):
            return False
        if self.until_ns is not None and (when is None or when > self.until_ns):
            return False
        if self.date is None and self.run is None and self.shots is None:
            return True
        key = parse_shot_key(envelope.get("shot_key"))
        if key is None:  # an event of no shot: only a day (of its time) can take it in
            return (
                self.run is None
                and self.shots is None
                and when is not None
                and local_date(when, settings.TIME_ZONE) == self.date
            )
        return (
            (self.date is None or key.date == self.date)
            and (self.run is None or key.run == self.run)
            and (self.shots is None or self.shots[0] <= key.number <= self.shots[1])
        )


@dataclass
class ReplayGroup:
    """The envelopes of one day's run (or of no shot) a replay sends."""

    count: int = 0
    first: int | None = None  # lowest and highest shot number
    last: int | None = None

    def add(self, number: int | None) -> None:
        self.count += 1
        if number is not None:
            self.first = number if self.first is None else min(self.first, number)
            self.last = number if self.last is None else max(self.last, number)


def logged_envelopes(directory, scope: ReplayScope):
    for _, _, record in read_from(Path(directory), "", 0, limit=2**62):
        if record.get("type") == "envelope" and scope.includes(record["envelope"]):
            yield record["envelope"]


def replay_plan(directory, scope: ReplayScope) -> dict[tuple[str, int] | None, ReplayGroup]:
    """What a replay of `scope` would send, by (day, run) of the shot key; None: events of no shot."""
    plan: dict[tuple[str, int] | None, ReplayGroup] = {}
    for envelope in logged_envelopes(directory, scope):
        key = parse_shot_key(envelope.get("shot_key"))
        plan.setdefault((key.date, key.run) if key else None, ReplayGroup()).add(key.number if key else None)
    return dict(sorted(plan.items(), key=lambda item: item[0] or ("", 0)))


def replay(directory, scope: ReplayScope, *, topic: str | None = None, bootstrap_servers: str | None = None) -> int:
    """Produce the logged envelopes in `scope` to Kafka again, as logged (same event ids)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    sent = 0
    for envelope in logged_envelopes(directory, scope):
        producer.send(
            topic or settings.RELAY_KAFKA_TOPIC,
            orjson.dumps(envelope),
            key=(envelope.get("shot_key") or envelope["event_id"]).encode(),
        )
        sent += 1
    producer.flush(60)
    producer.close()
    return sent
