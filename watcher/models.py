"""Watcher routes: which Kafka topics go to which MongoDB collections (edited in the admin)."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from .names import OLD_SHOT_INDEX, RESERVED

collection_name = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_]{0,62}$",
    "Letters, digits and underscores, starting with a letter (at most 63 characters).",
)
RESERVED_COLLECTIONS = RESERVED  # and any name starting with OLD_SHOT_INDEX
# A message over its route's limit goes to the dead letters with its bytes, and a MongoDB
# document holds at most 16 MiB: a larger limit would let through dead letters MongoDB refuses.
MAX_MESSAGE_BYTES_LIMIT = 15_000_000


class Route(models.Model):
    class IdStrategy(models.TextChoices):
        EVENT_ID = "event_id", "Envelope event id"
        FIELD = "field", "A field of the message"
        POSITION = "position", "Topic / partition / offset"

    class OnDuplicate(models.TextChoices):
        KEEP_FIRST = "keep_first", "Keep the first (a re-send is a duplicate)"
        REPLACE_NEWER = "replace_newer", "Replace with a newer version"

    name = models.SlugField(unique=True)
    topic = models.CharField(max_length=249, help_text="A topic name, or a regular expression if marked below.")
    topic_is_regex = models.BooleanField(default=False)
    collection = models.CharField(max_length=63, validators=[collection_name])
    id_strategy = models.CharField(max_length=10, choices=IdStrategy.choices, default=IdStrategy.EVENT_ID)
    id_field = models.CharField(
        max_length=200, blank=True, help_text="Dotted path of the id field when the id strategy is 'field'."
    )
    on_duplicate = models.CharField(
        max_length=16,
        choices=OnDuplicate.choices,
        default=OnDuplicate.KEEP_FIRST,
        help_text="A message with the id of a stored one: keep the stored one, or replace it when the message is "
        "newer (by the version field, else by Kafka offset within one partition; a different message that "
        "cannot be ordered goes to the dead letters). Not for time-series collections.",
    )
    version_field = models.CharField(
        max_length=200,
        blank=True,
        help_text="Dotted path of a version number or text for 'replace with a newer version' (empty: Kafka offset).",
    )
    timestamp_field = models.CharField(
        max_length=200,
        default="relay_ts_ns",
        blank=True,
        help_text="Dotted path of the event time (s, ms, µs or ns since the epoch, or ISO 8601); stored as _ts.",
    )
    timeseries = models.BooleanField(
        default=False,
        help_text="Create the collection as a MongoDB time-series collection on _ts "
        "(servers without time-series support get a normal collection).",
    )
    renames = models.JSONField(default=dict, blank=True, help_text='Top-level field renames, e.g. {"E": "energy"}.')
    require_envelope = models.BooleanField(
        default=True, help_text="Messages that are not valid shot envelopes go to the dead letters."
    )
    max_message_bytes = models.PositiveIntegerField(default=1_000_000)
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.topic} → {self.collection}"

    def clean(self) -> None:
        if self.collection in RESERVED_COLLECTIONS or self.collection.startswith(OLD_SHOT_INDEX):
            raise ValidationError({"collection": f"'{self.collection}' is used by the watcher itself."})
        if self.topic_is_regex:
            try:
                re.compile(f"^(?:{self.topic})$")  # how the watcher combines the routes' patterns
            except re.error as exc:
                raise ValidationError({"topic": f"Not a valid regular expression: {exc}"}) from exc
        if self.id_strategy == self.IdStrategy.FIELD and not self.id_field:
            raise ValidationError({"id_field": "Name the field that holds the id."})
        if self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT:
            raise ValidationError(
                {
                    "max_message_bytes": f"At most {MAX_MESSAGE_BYTES_LIMIT:,} bytes (15 MB): a MongoDB document, "
                    "a dead letter with the message's bytes too, holds at most 16 MiB."
                }
            )
        if self.on_duplicate == self.OnDuplicate.REPLACE_NEWER and self.timeseries:
            raise ValidationError({"on_duplicate": "Time-series collections cannot replace documents: keep the first."})
        if not isinstance(self.renames, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v and not v.startswith("$") and "." not in v
            for k, v in self.renames.items()
        ):
            raise ValidationError({"renames": "A JSON object of old name → new top-level name."})

    def matches(self, topic: str) -> bool:
        if self.topic_is_regex:
            return re.fullmatch(self.topic, topic) is not None
        return self.topic == topic
