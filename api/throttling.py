"""Requests per token (or per logged-in user) per minute, from settings.API_REQUESTS_PER_MINUTE."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class PerTokenThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str:
        return f"{settings.API_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request, view) -> str:
        if request.auth is not None and hasattr(request.auth, "digest"):
            who = f"token:{request.auth.digest[:32]}"
        elif request.user and request.user.is_authenticated:
            who = f"user:{request.user.pk}"
        else:
            who = f"address:{self.get_ident(request)}"
        return f"api-throttle:{who}"

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()  # read per request: a changed setting applies at once
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)
