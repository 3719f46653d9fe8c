import shlex

from django.apps import apps
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from . import store
from .display import shown_bytes
from .forms import EventSearchForm
from .models import Route


def entry_url(shot_key: str | None) -> str | None:
    """The shot sheet entry of a shot key (the shot join), when the shot sheet offers one."""
    if not shot_key:
        return None
    try:
        return reverse("shotsheet:entry_by_shot", args=[shot_key])
    except NoReverseMatch:
        return None


def event_rows(events: list[dict]) -> list[dict]:
    return [
        {
            "event": event,
            "ts": event.get("_ts"),
            "ingest": event.get("_ingest", {}),
            "collection": event.get("_collection"),
            "entry_url": entry_url(event.get("shot_key")),
        }
        for event in events
    ]


def stopped_partitions(statuses: list[dict]) -> list[dict]:
    """Partitions a watch process stopped because it cannot decode their records."""
    return [
        {"watcher": status["watcher"], "route": name, **stopped}
        for status in statuses
        for name, route in status.get("routes", {}).items()
        for stopped in route.get("stopped", [])
    ]


def watcher_page(request):
    statuses = [{k: v for k, v in status.items() if k != "_id"} for status in store.statuses()]
    return render(
        request,
        "watcher/watcher.html",
        {
            "routes": Route.objects.all(),
            "statuses_json": statuses,
            "stopped": stopped_partitions(statuses),
            "dead_letter_count": store.dead_letter_count(),
        },
    )


def search(request):
    form = EventSearchForm(request.GET or None)
    result, error = store.SearchResult([]), None
    if form.is_bound and form.is_valid():
        try:
            result = store.search(form.query())
        except ValueError as exc:
            error = str(exc)
    return render(
        request,
        "watcher/search.html",
        {"form": form, "rows": event_rows(result.events), "result": result, "error": error},
    )


def shot_events(request, shot_key: str):
    """Every ingested event of one shot, across all routed collections (the shot join), and its
    shot sheet entry, or the forms to create one when it has none yet."""
    entries, new_entry_links = [], []
    if apps.is_installed("shotsheet"):
        from shotsheet import selectors

        entries = selectors.entries_of_shot(request.user, shot_key)
        new_entry_links = [] if entries else selectors.new_entry_links(request.user, shot_key)
    simulations = []
    if apps.is_installed("simulations"):
        from simulations import selectors as simulation_selectors

        simulations = simulation_selectors.simulations_of_shot(shot_key)
    return render(
        request,
        "watcher/shot_events.html",
        {
            "shot_key": shot_key,
            "simulations": simulations,
            "shotsheet": apps.is_installed("shotsheet"),
            "entries": entries,
            "new_entry_links": new_entry_links,
            "rows": event_rows(store.events_for_shot(shot_key)),
        },
    )


DEAD_LETTERS_SHOWN = 100


def dead_letter_list(request):
    """The newest dead letters, by route and by reason (a text the reason contains, any case), with
    their bytes as text or hex and the replay command for the same choice."""
    route, reason = request.GET.get("route", "").strip(), request.GET.get("reason", "").strip()
    letters = [
        {
            **letter,
            "shown": shown_bytes(letter.get("raw")),
            "key_shown": shown_bytes(letter.get("key"), 200),
            "headers_shown": [(h["key"], shown_bytes(h["value"], 200)) for h in letter.get("headers") or []],
        }
        for letter in store.dead_letters(DEAD_LETTERS_SHOWN, route=route, reason=reason)
    ]
    replay = ["manage.py", "dead_letters", "replay"]
    replay += (["--route", shlex.quote(route)] if route else []) + (["--reason", shlex.quote(reason)] if reason else [])
    return render(
        request,
        "watcher/dead_letters.html",
        {
            "letters": letters,
            "matching": store.dead_letter_count(route=route, reason=reason),
            "total": store.dead_letter_count(),
            "routes": store.dead_letter_routes(),
            "route": route,
            "reason": reason,
            "replay_command": " ".join(replay),
        },
    )
