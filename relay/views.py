from django.conf import settings
from django.shortcuts import render

from core.times import from_ns

from . import store
from .display import figures


def status_page(request):
    status = store.status() or {}
    last_shot = status.get("last_shot")
    laser_time = from_ns(last_shot["laser_ts_ns"]) if last_shot and last_shot.get("laser_ts_ns") else None
    return render(
        request,
        "relay/status.html",
        {
            "status": status,
            "figures": figures(status),
            "last_shot": last_shot,
            "laser_time": laser_time,
            "time_zone": settings.TIME_ZONE,
        },
    )
