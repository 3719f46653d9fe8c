"""Relay inputs edited in the admin: the ZeroMQ endpoints the drive laser publishes on."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from core.times import is_time_zone


def validate_time_zone(name: str) -> None:
    if name and not is_time_zone(name):
        raise ValidationError(f"'{name}' is not an IANA time zone (e.g. Europe/Berlin, UTC)")


class RelayInput(models.Model):
    class Mode(models.TextChoices):
        SUB = "SUB", "SUB (connect, topic filters)"
        PULL = "PULL", "PULL (connect)"

    class Parser(models.TextChoices):
        JSON = "json", "JSON"
        MSGPACK = "msgpack", "msgpack"
        KEY_VALUE = "kv", "key=value text"
        AUTO = "auto", "auto (JSON object, msgpack map, else key=value)"

    name = models.SlugField(unique=True)
    endpoint = models.CharField(max_length=200, help_text="e.g. tcp://laser-daq:5555")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.SUB)
    topics = models.CharField(max_length=500, blank=True, help_text="SUB topic prefixes, comma-separated; empty = all.")
    parser = models.CharField(max_length=10, choices=Parser.choices, default=Parser.JSON)
    source = models.CharField(max_length=200, default="laser", help_text="The envelope's source name.")
    time_zone = models.CharField(
        max_length=60,
        blank=True,
        validators=[validate_time_zone],
        help_text="IANA zone of the laser's times without an offset (e.g. Europe/Berlin); empty = the lab's zone.",
    )
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.mode} {self.endpoint})"

    def as_spec(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "topics": self.topics,
            "parser": self.parser,
            "source": self.source,
            "time_zone": self.time_zone or settings.TIME_ZONE,
        }
