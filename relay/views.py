from django.shortcuts import render

from . import store

FIELDS = [
    "rate",
    "received",
    "published",
    "rejected",
    "gaps",
    "missing_shots",
    "duplicates",
    "counter_resets",
    "kafka_connected",
    "kafka_shipped",
    "kafka_backlog",
]


def status_page(request):
    status = store.status() or {}
    return render(
        request,
        "relay/status.html",
        {
            "status": status,
            "fields": [(name, status.get(name, "–")) for name in FIELDS],
            "last_shot": status.get("last_shot"),
        },
    )
