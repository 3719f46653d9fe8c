"""One error shape for every API response: `{"errors": [{"parameter": ..., "problem": ...}]}`.

400s name the query parameter; other errors (401, 404, 405, 406, 429, 503) have `parameter: null`.
A MongoDB (or SQL database) failure is a 503 that says so, never a 500 and never the server's own
message.
"""

import logging

from django.db import DatabaseError
from pymongo.errors import PyMongoError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


class BadParameters(exceptions.APIException):
    """Query parameters the endpoint cannot answer; each (parameter, problem) is reported."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{parameter}: {problem}" for parameter, problem in problems))


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database cannot be reached; try again shortly."


def handler(exc, context):
    if isinstance(exc, PyMongoError | DatabaseError):
        log.warning("API request failed: a database is unreachable (%s)", type(exc).__name__)
        exc = Unavailable()
    response = exception_handler(exc, context)  # sets WWW-Authenticate, Retry-After, Allow
    if response is None:
        return None  # a bug: Django's 500 (and its log)
    if isinstance(exc, BadParameters):
        errors = [{"parameter": parameter, "problem": problem} for parameter, problem in exc.problems]
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        errors = [{"parameter": None, "problem": str(detail)}]
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = "10"
    response.data = {"errors": errors}
    return response
