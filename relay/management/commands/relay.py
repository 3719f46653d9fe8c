"""`manage.py relay`: drive laser (ZeroMQ) → shot envelopes → PUB socket, durable log, Kafka."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.metrics import process_registry, serve
from core.runloop import StopFlag, stop_on_signals
from core.times import is_time_zone
from relay.parsers import PARSERS
from relay.services.loop import Relay


class Command(BaseCommand):
    help = "Relay drive-laser messages as harmonised shot envelopes until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument(
            "--input",
            action="append",
            metavar="ENDPOINT",
            help="SUB endpoint of the laser, read with --parser; repeatable. Default: the admin's "
            "Relay inputs (re-read every 2 s), or settings.RELAY_DEFAULT_INPUT when there are none",
        )
        parser.add_argument(
            "--parser",
            default="json",
            choices=sorted(PARSERS),
            help="how --input messages are read (default json; auto: JSON object, msgpack map, else key=value)",
        )
        parser.add_argument(
            "--time-zone",
            default="",
            help="zone of --input times without an offset (default the lab's, settings.TIME_ZONE)",
        )
        parser.add_argument("--pub", help="PUB endpoint to bind (default settings.RELAY_PUB_ENDPOINT)")
        parser.add_argument("--snapshot", help="REP endpoint for the last shot (default settings)")
        parser.add_argument("--log-dir", help="Durable log folder (default settings.RELAY_LOG_DIR)")
        parser.add_argument("--fsync", choices=["always", "interval", "never"])
        parser.add_argument("--no-kafka", action="store_true")
        parser.add_argument("--no-live", action="store_true")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.RELAY_METRICS_PORT,
            help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (default settings.RELAY_METRICS_PORT; "
            "0: no metrics at all)",
        )

    def handle(self, *args, **options):
        inputs = None
        if options["input"]:
            if options["time_zone"] and not is_time_zone(options["time_zone"]):
                raise CommandError(f"--time-zone: '{options['time_zone']}' is not an IANA time zone (e.g. UTC)")
            inputs = [
                {
                    "endpoint": e,
                    "mode": "SUB",
                    "topics": "",
                    "parser": options["parser"],
                    "source": "laser",
                    "time_zone": options["time_zone"],
                }
                for e in options["input"]
            ]
        registry = process_registry() if options["metrics_port"] else None
        with stop_on_signals(StopFlag()) as stop:
            relay = Relay(
                inputs=inputs,
                pub_endpoint=options["pub"],
                snapshot_endpoint=options["snapshot"],
                log_dir=options["log_dir"],
                fsync=options["fsync"],
                stop=stop,
                live=not options["no_live"],
                kafka=not options["no_kafka"],
                metrics_registry=registry,
            )
            if registry is not None:
                serve(registry, options["metrics_port"], "relay")
            relay.run()
        self.stdout.write(relay.summary())
