"""`manage.py watch`: consume the routed Kafka topics into MongoDB until SIGINT/SIGTERM."""

import gc

from django.core.management.base import BaseCommand

from labbook.runloop import StopFlag, stop_on_signals
from watcher.services import Watcher


class Command(BaseCommand):
    help = "Consume the Kafka topics of the enabled routes into their MongoDB collections."

    def add_arguments(self, parser):
        parser.add_argument("--group", help="Consumer group id (default: settings.WATCHER_GROUP_ID)")
        parser.add_argument("--batch-size", type=int, help="Records per poll and write (default: settings.WATCHER_BATCH_SIZE)")
        parser.add_argument("--name", help="This member's name in the live view")
        parser.add_argument("--no-live", action="store_true", help="Do not publish the live status")

    def handle(self, *args, group, batch_size, name, no_live, **options):
        # Batches keep tens of thousands of objects alive for a second. With Python's default
        # thresholds the cyclic GC scanned them, and everything start-up made, 1,000 times per
        # 80,000 messages (1.1-1.5 s of CPU); start-up frozen and a larger first threshold: 0.3 s.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        with stop_on_signals(StopFlag()) as stop:
            watcher = Watcher(group_id=group, batch_size=batch_size, stop=stop, live=not no_live, name=name)
            watcher.run()
        self.stdout.write(f"watch: {watcher.stored} stored, {watcher.duplicates} duplicates skipped, "
                          f"{watcher.replaced} replaced by newer versions, "
                          f"{watcher.dead} dead letters, {watcher.batches} batches")
