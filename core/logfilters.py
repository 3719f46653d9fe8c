"""Logging filters for Django's request log."""

import logging


class ForbiddenInOneLine(logging.Filter):
    """A refused request (403) is an everyday event, not an error: one line with the reason, no traceback.

    Django logs `PermissionDenied` at WARNING with the whole traceback; a lab where view-only users
    click around filled the log with them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            reason = record.exc_info[1]
            request = getattr(record, "request", None)
            user = getattr(getattr(request, "user", None), "get_username", lambda: "")()
            record.msg = f"{record.getMessage()}{f' ({reason})' if str(reason) else ''} user {user or '-'}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True
