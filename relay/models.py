"""Relay inputs edited in the admin: the ZeroMQ endpoints the drive laser publishes on."""

from django.db import models


class RelayInput(models.Model):
    class Mode(models.TextChoices):
        SUB = "SUB", "SUB (connect, topic filters)"
        PULL = "PULL", "PULL (connect)"

    class Parser(models.TextChoices):
        JSON = "json", "JSON"
        MSGPACK = "msgpack", "msgpack"
        KEY_VALUE = "kv", "key=value text"

    name = models.SlugField(unique=True)
    endpoint = models.CharField(max_length=200, help_text="e.g. tcp://laser-daq:5555")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.SUB)
    topics = models.CharField(max_length=500, blank=True, help_text="SUB topic prefixes, comma-separated; empty = all.")
    parser = models.CharField(max_length=10, choices=Parser.choices, default=Parser.JSON)
    source = models.CharField(max_length=200, default="laser", help_text="The envelope's source name.")
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.mode} {self.endpoint})"

    def as_spec(self) -> dict:
        return {"endpoint": self.endpoint, "mode": self.mode, "topics": self.topics,
                "parser": self.parser, "source": self.source}
