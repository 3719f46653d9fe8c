"""The page a locked-out login gets (django-axes calls `locked_out` through AXES_LOCKOUT_CALLABLE).

Axes' own page is bare text; this one names the account, how long the lock lasts and how an
admin lifts it sooner, inside the site's layout.
"""

from datetime import timedelta

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def duration_text(duration: timedelta) -> str:
    seconds = round(duration.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """429 with the reason; the login form is not shown again until the cool-off has passed."""
    cool_off = get_cool_off(request)
    return render(
        request,
        "registration/locked_out.html",
        {
            "username": get_client_username(request, credentials) or "",
            "failure_limit": get_failure_limit(request, credentials),
            "cool_off": duration_text(cool_off) if cool_off else None,
        },
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
