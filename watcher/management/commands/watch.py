"""`manage.py watch`: consume the routed Kafka topics into MongoDB until SIGINT/SIGTERM."""

import gc

from django.conf import settings
from django.core.management.base import BaseCommand

from core.metrics import process_registry, serve
from core.runloop import StopFlag, stop_on_signals
from watcher.services.loop import Watcher


class Command(BaseCommand):
    help = "Consume the Kafka topics of the enabled routes into their MongoDB collections."

    def add_arguments(self, parser):
        parser.add_argument(
            "--group",
            help="Consumer group id (default: settings.WATCHER_GROUP_ID). A group that "
            "has committed no offsets yet (a new one) reads every routed topic from the start, "
            "unless --from latest",
        )
        parser.add_argument(
            "--from",
            dest="start_from",
            choices=["earliest", "latest"],
            default="earliest",
            help="where partitions without a committed offset of the group start: earliest (the "
            "default: the whole topic, nothing missed) or latest (only new messages)",
        )
        parser.add_argument(
            "--batch-size", type=int, help="Records per poll and write (default: settings.WATCHER_BATCH_SIZE)"
        )
        parser.add_argument(
            "--name",
            help="This member's name in the live view and its static group membership: "
            "restarted under the same name it resumes within seconds. Unique per group",
        )
        parser.add_argument("--no-live", action="store_true", help="Do not publish the live status")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WATCHER_METRICS_PORT,
            help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (default: settings.WATCHER_METRICS_PORT; "
            "each watch process on a machine needs its own; 0: no metrics at all)",
        )

    def handle(self, *args, group, start_from, batch_size, name, no_live, metrics_port, **options):
        # Batches keep tens of thousands of objects alive for a second. With Python's default
        # thresholds the cyclic GC scanned them, and everything start-up made, 1,000 times per
        # 80,000 messages (1.1-1.5 s of CPU); start-up frozen and a larger first threshold: 0.3 s.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        registry = process_registry() if metrics_port else None
        with stop_on_signals(StopFlag()) as stop:
            watcher = Watcher(
                group_id=group,
                batch_size=batch_size,
                stop=stop,
                live=not no_live,
                name=name,
                start_from=start_from,
                metrics_registry=registry,
            )
            if registry is not None:
                serve(registry, metrics_port, f"watch {watcher.name}")
            watcher.run()
        self.stdout.write(
            f"watch: {watcher.stored} stored, {watcher.duplicates} duplicates skipped, "
            f"{watcher.replaced} replaced by newer versions, "
            f"{watcher.dead} dead letters, {watcher.batches} batches"
        )
