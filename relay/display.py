"""The relay page's figures with the words and units a physicist on shift reads them by (the
status the relay saves and sends has terse keys: `kafka_backlog`, `counter_resets`, …)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str  # in the relay's status
    label: str
    unit: str  # after the value; "" when the label says it
    hint: str


FIGURES = [
    Figure("received", "Messages received", "messages", "from the drive laser, since the relay started"),
    Figure("rejected", "Unreadable messages", "messages", "logged and skipped: see the relay's log"),
    Figure("published", "Shots published", "shots", "harmonised envelopes on the PUB socket and the durable log"),
    Figure("gaps", "Gaps in the shot counter", "gaps", "the laser's counter jumped"),
    Figure("missing_shots", "Missing shots", "shots", "shot numbers a gap skipped"),
    Figure("duplicates", "Repeated shots", "shots", "a shot number sent again: kept, flagged"),
    Figure("counter_resets", "Counter resets", "resets", "the laser's counter went back (a restart)"),
    Figure("kafka_shipped", "Acknowledged by Kafka", "shots", "written to Kafka and acknowledged"),
    Figure("kafka_shipper_restarts", "Kafka shipper restarts", "restarts", "its process was restarted"),
]


def figures(status: dict) -> list[dict]:
    return [
        {"key": f.key, "label": f.label, "unit": f.unit, "hint": f.hint, "value": status.get(f.key, "–")}
        for f in FIGURES
    ]
