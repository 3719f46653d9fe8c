"""`manage.py relay_index_shots`: index the shots recorded before the relay indexed them by time
and number, so the read API finds them without reading the whole collection (relay/store.py)."""

import time

from django.core.management.base import BaseCommand

from relay import store


class Command(BaseCommand):
    help = "Index the relay's shot records made by versions before the time and number indexes (once, after upgrading)."

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        count = store.index_old_shots()
        self.stdout.write(f"relay_index_shots: {count} shots indexed in {time.monotonic() - started:.1f} s")
