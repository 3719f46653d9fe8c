"""`manage.py dead_letters replay`: store the dead letters that pass their route now."""

from django.core.management.base import BaseCommand, CommandError

from watcher.models import Route
from watcher.services.replay import replay_dead_letters

SHOWN = 50  # dead letters left, listed with their reason


class Command(BaseCommand):
    help = "Work on the watcher's dead letters (messages it could not store)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        replay = actions.add_parser(
            "replay",
            help="After a route or schema fix: store the dead letters that pass their topic's route now "
            "and remove them; leave the rest. Running it again stores nothing twice.",
        )
        replay.add_argument("--route", default="", help="only the dead letters of this route's topics")
        replay.add_argument("--reason", default="", help="only dead letters whose error contains this text")
        replay.add_argument("--ids", nargs="+", metavar="ID", help="only these dead letters (topic|partition|offset)")

    def handle(self, *args, action, route, reason, ids, **options):
        if route and not Route.objects.filter(name=route, enabled=True).exists():
            raise CommandError(f"no enabled route named {route!r}")
        result = replay_dead_letters(route_name=route, reason=reason, ids=ids)
        self.stdout.write(
            f"dead_letters replay: {result.stored} stored, {result.duplicates} already stored, "
            f"{result.replaced} replaced older versions, {len(result.left)} left"
        )
        for letter_id, why in list(result.left.items())[:SHOWN]:
            self.stdout.write(f"  left {letter_id}: {why}")
        if len(result.left) > SHOWN:
            self.stdout.write(f"  … and {len(result.left) - SHOWN} more")
