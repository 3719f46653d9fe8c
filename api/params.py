"""Reading query parameters: every problem is collected and reported at once, by parameter name,
and a parameter the endpoint does not read is refused (a typo or an operator such as
`f_energy[$gt]` never passes silently)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from .exceptions import BadParameters

COMMON = {"format", "page_size", "cursor"}  # read by every list endpoint


class Params:
    def __init__(self, query_params, known: set[str]):
        self.query = query_params
        self.problems: list[tuple[str, str]] = []
        unknown = sorted(set(query_params) - known - COMMON)
        for name in unknown:
            self.problem(name, f"unknown parameter; this endpoint reads {', '.join(sorted(known | COMMON))}")

    def problem(self, parameter: str, text: str) -> None:
        self.problems.append((parameter, text))

    def text(self, name: str, default: str = "") -> str:
        return self.query.get(name, default).strip()

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in choices:
            self.problem(name, f"'{value}' is not one of {', '.join(choices)}")
            return default
        return value

    def integer(self, name: str, default: int | None = None, *, low: int | None = None, high: int | None = None):
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problem(name, f"'{raw[:50]}' is not a whole number")
            return default
        if low is not None and value < low:
            self.problem(name, f"must be at least {low}")
            return default
        if high is not None and value > high:
            self.problem(name, f"must be at most {high}")
            return default
        return value

    def time(self, name: str) -> datetime | None:
        """An ISO 8601 time; without an offset it is UTC (the API's clock)."""
        raw = self.text(name)
        if not raw:
            return None
        try:
            value = datetime.fromisoformat(raw)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            self.problem(name, f"'{raw[:50]}' is not an ISO 8601 time (e.g. 2026-11-24T10:00:00Z)")
            return None
        return value

    def time_range(
        self, since_name: str = "since", until_name: str = "until"
    ) -> tuple[datetime | None, datetime | None]:
        """[since, until): not inverted, and at most API_MAX_TIME_RANGE_DAYS long (until: now if not given)."""
        since, until = self.time(since_name), self.time(until_name)
        if since and until and since >= until:
            self.problem(until_name, f"must be after {since_name}")
        elif since:
            limit = timedelta(days=settings.API_MAX_TIME_RANGE_DAYS)
            if (until or datetime.now(UTC)) - since > limit:
                self.problem(since_name, f"the range is longer than {settings.API_MAX_TIME_RANGE_DAYS} days: narrow it")
        return since, until

    def page_size(self) -> int:
        return self.integer("page_size", settings.API_PAGE_SIZE, low=1, high=settings.API_MAX_PAGE_SIZE)

    def done(self) -> None:
        """Refuse the request if any parameter had a problem."""
        if self.problems:
            raise BadParameters(self.problems)
