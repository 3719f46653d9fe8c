"""`manage.py relay_replay`: produce logged envelopes to Kafka again, with the same event ids."""

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relay.services import replay


def to_ns(text: str | None) -> int | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"'{text}' is not an ISO 8601 date/time") from None
    return int(when.timestamp() * 1e9)


class Command(BaseCommand):
    help = "Replay the relay's durable log (a time or shot range) into Kafka."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO 8601 start time (laser time)")
        parser.add_argument("--until", help="ISO 8601 end time")
        parser.add_argument("--shots", help="shot number range, e.g. 100-250")
        parser.add_argument("--log-dir", default=str(settings.RELAY_LOG_DIR))
        parser.add_argument("--topic", default=settings.RELAY_KAFKA_TOPIC)

    def handle(self, *args, since, until, shots, log_dir, topic, **options):
        shot_range = None
        if shots:
            first, _, last = shots.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise CommandError("--shots takes a range like 100-250")
            shot_range = (int(first), int(last))
        if not Path(log_dir).is_dir():
            raise CommandError(f"no relay log at {log_dir}")
        sent = replay(Path(log_dir), since_ns=to_ns(since), until_ns=to_ns(until), shots=shot_range, topic=topic)
        self.stdout.write(f"relay_replay: {sent} envelopes produced to {topic}")
