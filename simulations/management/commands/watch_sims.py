from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.runloop import StopFlag, stop_on_signals
from simulations.watch import SimulationWatcher


class Command(BaseCommand):
    help = "Extract simulation runs under FOLDER as they finish (until SIGINT/SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("folder", help="a folder whose subfolders are simulation runs")
        parser.add_argument("--experiment", help="the experiment the runs belong to")
        parser.add_argument("--settle", type=float, default=60, help="seconds of quiet before a run is read")
        parser.add_argument("--interval", type=float, default=10, help="seconds between scans")

    def handle(self, *args, folder, experiment=None, settle=60, interval=10, **options):
        if not Path(folder).is_dir():
            raise CommandError(f"{folder}: not a folder")
        with stop_on_signals(StopFlag()) as stop:
            watcher = SimulationWatcher(
                Path(folder), stop, settle_seconds=settle, interval=interval, experiment=experiment
            )
            watcher.run()
        self.stdout.write(f"watch_sims stopped: {watcher.extracted} runs extracted")
