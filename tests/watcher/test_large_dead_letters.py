"""Dead letters MongoDB would refuse (a document is at most 16 MiB) must not be committed past."""

import hashlib
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from kafka.consumer.fetcher import ConsumerRecord

from watcher import store
from watcher.models import Route
from watcher.services.convert import dead_letter


def test_a_route_refuses_a_message_limit_its_dead_letters_could_not_hold(db):
    route = Route(name="big", topic="t.big", collection="big_events", max_message_bytes=20_000_000)
    with pytest.raises(ValidationError) as error:
        route.full_clean()
    assert "max_message_bytes" in error.value.message_dict
    assert "MB" in " ".join(error.value.message_dict["max_message_bytes"])


def test_a_dead_letter_of_a_message_too_large_for_mongodb_is_stored_truncated_with_size_and_sha256(mongo_db):
    value = b"x" * (17 * 2**20)  # larger than a MongoDB document may be
    record = ConsumerRecord("t.big", 0, None, 7, 0, 0, None, value, [], None, -1, len(value), -1)
    letter = dead_letter(record, None, "too large", datetime.now(UTC), "too_large")
    result = store.add_dead_letters([letter])
    assert result.inserted == 1 and not result.rejected, result.rejected
    (stored,) = store.dead_letters()
    assert stored["raw_size"] == len(value) and stored["raw_sha256"] == hashlib.sha256(value).hexdigest()
    assert stored["raw_truncated"] is True and bytes(stored["raw"]) == value[: len(stored["raw"])]
