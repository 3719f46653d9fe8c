from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from . import store
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


def watcher_page(request):
    return render(request, "watcher/watcher.html", {
        "routes": Route.objects.all(),
        "statuses": store.statuses(),
        "dead_letter_count": store.dead_letter_count(),
    })


def search(request):
    form = EventSearchForm(request.GET or None)
    events, error = [], None
    if form.is_bound and form.is_valid():
        try:
            events = store.search(form.query())
        except ValueError as exc:
            error = str(exc)
    rows = [{"event": event, "ts": event.get("_ts"), "ingest": event.get("_ingest", {}),
             "entry_url": entry_url(event.get("shot_key"))} for event in events]
    return render(request, "watcher/search.html", {"form": form, "rows": rows, "error": error})


def dead_letter_list(request):
    return render(request, "watcher/dead_letters.html", {"letters": store.dead_letters(100)})
