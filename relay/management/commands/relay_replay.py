"""`manage.py relay_replay`: produce logged envelopes to Kafka again, with the same event ids."""

from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.times import epoch_ns
from relay.services.replay import ReplayScope, replay, replay_plan


def to_ns(text: str | None, option: str) -> int | None:
    if not text:
        return None
    when = epoch_ns(text, settings.TIME_ZONE)
    if when is None:
        raise CommandError(f"{option}: '{text}' is not an ISO 8601 date/time")
    return when


def to_day(text: str | None) -> str | None:
    """YYYYMMDD, as in shot keys, from `20261202` or `2026-12-02`."""
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip()).strftime("%Y%m%d")
    except ValueError:
        raise CommandError(f"--date: '{text}' is not a date (YYYY-MM-DD or YYYYMMDD)") from None


def to_shots(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, _, last = text.partition("-")
    if not (first.isdigit() and last.isdigit()) or int(first) > int(last):
        raise CommandError("--shots takes a range like 100-250")
    return int(first), int(last)


def to_run(text: str | None) -> int | None:
    if text in (None, "all"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise CommandError("--run takes a run number (1 is the day's first) or 'all'")
    return int(text)


def describe(group_key, group) -> str:
    if group_key is None:
        return f"events of no shot (status …): {group.count}"
    day, run = group_key
    return f"{day} run {run}: {group.count} envelope(s), shots {group.first}–{group.last}"


class Command(BaseCommand):
    help = (
        "Replay the relay's durable log into Kafka (same event ids): a time window, a day, a run, a "
        "shot range. Shot numbers restart every day and run, so --shots needs --date or --since."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO 8601 start (laser time; no offset: the lab's zone)")
        parser.add_argument("--until", help="ISO 8601 end")
        parser.add_argument("--date", help="the local day of the shot keys, YYYY-MM-DD or YYYYMMDD")
        parser.add_argument(
            "--run",
            help="the day's run (1 = before the first counter reset), or 'all'; "
            "needed with --shots when the shots are in several runs",
        )
        parser.add_argument("--shots", help="shot number range, e.g. 100-250; needs --date or --since")
        parser.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
        parser.add_argument("--log-dir", default=str(settings.RELAY_LOG_DIR))
        parser.add_argument("--topic", default=settings.RELAY_KAFKA_TOPIC)

    def handle(self, *args, since, until, date, run, shots, dry_run, log_dir, topic, **options):
        scope = ReplayScope(
            since_ns=to_ns(since, "--since"),
            until_ns=to_ns(until, "--until"),
            date=to_day(date),
            run=to_run(run),
            shots=to_shots(shots),
        )
        if (shots or run) and not (date or since):
            raise CommandError("shot and run numbers restart every day: give --date (or --since) with --shots/--run")
        if not Path(log_dir).is_dir():
            raise CommandError(f"no relay log at {log_dir}")
        plan = replay_plan(Path(log_dir), scope)
        runs = sorted({key for key in plan if key is not None})
        if shots and run is None and len(runs) > 1:
            raise CommandError(
                f"shots {shots} are in {len(runs)} runs ("
                + ", ".join(f"{day} run {n}" for day, n in runs)
                + "): give --run N, or --run all for every one"
            )
        total = sum(group.count for group in plan.values())
        self.stdout.write(
            f"relay_replay: {total} envelope(s) from {log_dir} to {topic}"
            + (" (dry run: nothing sent)" if dry_run else "")
        )
        for group_key, group in plan.items():
            self.stdout.write(f"  {describe(group_key, group)}")
        if dry_run or not total:
            return
        sent = replay(Path(log_dir), scope, topic=topic)
        self.stdout.write(f"relay_replay: {sent} envelopes produced to {topic}")
