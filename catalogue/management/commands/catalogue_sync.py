"""`manage.py catalogue_sync`: register the ruled sheets' entries as SciCat datasets until SIGINT/SIGTERM."""

from django.core.management.base import BaseCommand

from catalogue.services import Sync
from core.runloop import StopFlag, stop_on_signals


class Command(BaseCommand):
    help = "Work off the catalogue outbox: new and edited entries of sheets with a catalogue rule → SciCat."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One scan and every job due now, then exit (cron)")
        parser.add_argument("--batch-size", type=int, help="Jobs read at once (default: CATALOGUE_BATCH_SIZE)")

    def handle(self, *args, once, batch_size, **options):
        with stop_on_signals(StopFlag()) as stop:
            sync = Sync(stop=stop, batch_size=batch_size)
            if not once and not sync.configured():
                self.stdout.write(
                    "catalogue_sync: no enabled SciCat server with a catalogue rule yet; idle until the admin "
                    "configures one (Catalogue › Servers, Rules)",
                )
            try:
                sync.run_once() if once else sync.run()
            finally:
                sync.close()
        s = sync.stats
        self.stdout.write(
            f"catalogue_sync: {s.created} created, {s.existed} already there, {s.patched} updated, "
            f"{s.blocks} datablocks, {s.unchanged} unchanged, {s.failed} refused, {s.retries} retries"
        )
