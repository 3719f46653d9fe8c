"""Kafka record → MongoDB document, or the reason it goes to the dead letters.

Pure: no server is touched, so the watcher's loop and the dead-letter replay convert a
record the same way, and a replay gives the document the same `_id` and provenance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson
from bson import Binary
from django.conf import settings

from core import times
from core.envelope import validation_errors
from core.matching import lookup

from ..models import MAX_MESSAGE_BYTES_LIMIT, Route

TYPED_ID = "#"


class Rejected(ValueError):
    """A message that cannot be stored; it goes to the dead letters with this message, and `reason`,
    one word of a fixed few (the dead letters' `reason`, the metrics' label)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Converted:
    """One record, the route that took it and the document it became, on its way to the writer."""

    record: object  # a kafka ConsumerRecord, or a dead letter as one (replay.ReplayedRecord)
    route: Route
    document: dict


def to_datetime(value) -> datetime | None:
    """An event time in UTC, read as the relay reads laser times (core.times: s, ms, µs or ns
    by size, ISO 8601, a naive time in the lab's zone); None for anything else, e.g. out of range."""
    return times.to_datetime(value, settings.TIME_ZONE)


def stored_id(value) -> str:
    """The string `_id` of a message id, one per distinct JSON value (FerretDB finds only string
    `_id`s fast). A string is kept as it is, so ids stored by earlier versions stay the same; a
    number or boolean becomes `#` + its JSON text (`#1`, `#true`, `#1.5`), and a string that itself
    begins with `#` becomes `#` + its JSON text (`#"#1"`), so 1, "1", true and "True" stay apart."""
    if isinstance(value, str) and not value.startswith(TYPED_ID):
        return value
    return TYPED_ID + orjson.dumps(value).decode()


def to_document(route: Route, record, now: datetime) -> dict:
    """The MongoDB document for one Kafka record, or Rejected with the reason."""
    raw = record.value
    if raw is None:
        raise Rejected("empty message (no value)", "empty")
    if len(raw) > route.max_message_bytes:
        raise Rejected(
            f"message of {len(raw)} bytes exceeds the route's limit of {route.max_message_bytes} bytes", "too_large"
        )
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise json_rejection(raw, exc) from None
    if not isinstance(document, dict):
        raise Rejected(f"expected a JSON object, got {type(document).__name__}", "not_object")
    if route.require_envelope:
        errors = validation_errors(document)
        if errors:
            raise Rejected("not a valid shot envelope: " + "; ".join(errors[:5]), "invalid_envelope")
    for old, new in route.renames.items():
        if old in document:
            document[new] = document.pop(old)

    if route.id_strategy == Route.IdStrategy.EVENT_ID:
        doc_id = document.get("event_id")
    elif route.id_strategy == Route.IdStrategy.FIELD:
        doc_id = lookup(document, route.id_field)
    else:
        doc_id = f"{record.topic}|{record.partition}|{record.offset}"
    if doc_id is None or doc_id == "" or isinstance(doc_id, dict | list):
        raise Rejected(f"no usable id ({route.get_id_strategy_display()}: {route.id_field or 'event_id'})", "no_id")

    document["_id"] = stored_id(doc_id)
    document["_ts"] = to_datetime(lookup(document, route.timestamp_field)) if route.timestamp_field else None
    # No usable event time: the record's Kafka timestamp (the same when a replay re-reads it),
    # else the ingest time.
    kafka_ts = getattr(record, "timestamp", None)
    document["_ts"] = document["_ts"] or (to_datetime(kafka_ts / 1000) if kafka_ts and kafka_ts > 0 else None) or now
    document["_ingest"] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key else None,
        "at": now,
    }
    if record.headers:
        document["_ingest"]["headers"] = [{"key": key, "value": header_text(value)} for key, value in record.headers]
    return document


def header_text(value: bytes | None) -> str | bytes | None:
    """A Kafka header value as text when it is UTF-8, else its bytes (stored as BSON binary)."""
    try:
        return value.decode() if value is not None else None
    except UnicodeDecodeError:
        return value


def json_rejection(raw: bytes, exc: orjson.JSONDecodeError) -> Rejected:
    """Why a message is not JSON; for bytes that are not UTF-8, where (orjson's own message for
    those is "surrogates not allowed", whatever the bytes)."""
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return Rejected(f"not valid UTF-8 at byte {bad.start}", "not_utf8")
    return Rejected(f"not valid JSON: {exc}", "invalid_json")


def dead_letter(record, route: Route | None, error: str, now: datetime, reason: str) -> dict:
    """The dead letter of a record: its bytes as they came, so a replay can convert it again.
    Bytes beyond MAX_MESSAGE_BYTES_LIMIT (only a message over its route's limit has them) are cut
    off, with the full size and SHA-256 kept: MongoDB refuses a document over 16 MiB, and a dead
    letter it refuses would be committed past, lost."""
    letter = {
        "_id": f"{record.topic}|{record.partition}|{record.offset}",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": Binary(record.key) if record.key is not None else None,
        "raw": Binary(record.value) if record.value is not None else None,
        "headers": [{"key": key, "value": value} for key, value in record.headers or []],
        "timestamp": getattr(record, "timestamp", None),  # Kafka's, ms: a replay's `_ts` falls back to it
        "route": route.name if route else None,
        "error": error,
        "reason": reason,
        "at": now,
    }
    if record.value is not None and len(record.value) > MAX_MESSAGE_BYTES_LIMIT:
        letter["raw"] = Binary(record.value[:MAX_MESSAGE_BYTES_LIMIT])
        letter["raw_truncated"] = True
        letter["raw_size"] = len(record.value)
        letter["raw_sha256"] = hashlib.sha256(record.value).hexdigest()
    return letter
