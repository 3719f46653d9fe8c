"""The web process's ASGI application (what daphne serves): an API request through it, in-process."""

import asyncio
import inspect
import logging
import re
import threading
from urllib.parse import urlencode

import orjson
import pytest
from asgiref.sync import SyncToAsync, iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler

from labbook.asgi import SyncMiddlewareASGIHandler, application  # at import: django.setup() configures logging


def asgi_get(path: str, query: bytes = b"", headers: tuple = ()) -> tuple[int, dict, bytes]:
    """One GET through labbook.asgi's application, as daphne would send it: (status, headers, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages, asked = [], []

    async def receive():
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        messages.append(message)

    asyncio.run(application(scope, receive, send))
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.mark.django_db(transaction=True)  # the view runs in a thread of its own: it must see committed data
def test_an_api_request_runs_the_middleware_in_one_thread_hop(api_entries, member, token_of, monkeypatch):
    """Django's ASGI handler runs each middleware's request and response halves through
    sync_to_async (~19 hops, ~1.5 ms a request); the middleware chain runs in one thread instead."""
    _, plain = token_of(member)
    hops = []
    original = SyncToAsync.__call__

    def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    status, headers, body = asgi_get(
        "/api/v1/sheets/apisheet/entries/", b"page_size=2", ((b"authorization", f"Bearer {plain}".encode()),)
    )
    assert status == 200, body[:300]
    assert len(orjson.loads(body)["results"]) == 2
    assert "content-security-policy" in headers and headers["x-frame-options"] == "DENY"  # the middleware ran
    assert len(hops) <= 3, hops  # the chain, the response's close (and nothing per middleware)
    hops.clear()
    status, _, body = asgi_get("/api/v1/sheets/apisheet/entries/", headers=((b"authorization", b"Bearer lbk_nope"),))
    assert status == 401 and orjson.loads(body)["errors"][0]["parameter"] is None


# --- the same requests through Django's own ASGI handler and labbook.asgi's -----------------------------
def asgi_call(app, method: str, path: str, headers: tuple = (), body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request through an ASGI application: (status, headers — repeated ones joined by `\n` —, body)."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages, asked = [], []

    async def receive():
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    found = {}
    for name, value in messages[0]["headers"]:
        name = name.decode().lower()
        found[name] = f"{found[name]}\n{value.decode()}" if name in found else value.decode()
    return messages[0]["status"], found, b"".join(m.get("body", b"") for m in messages[1:])


RANDOM = re.compile(rb"(nonce-|nonce=\"|csrfmiddlewaretoken\" value=\"|csrftoken=|sessionid=|expires=)[^\";]+")


def comparable(response: tuple[int, dict, bytes]) -> tuple:
    """A response without what differs at every request (nonces, tokens, cookie expiry, the date and expiry)."""
    status, headers, body = response
    headers = {k: RANDOM.sub(rb"\1*", v.encode()).decode() for k, v in headers.items() if k not in ("date", "expires")}
    return status, headers, RANDOM.sub(rb"\1*", body)


class Browser:
    """Cookies and a CSRF token, kept over requests through one ASGI application."""

    def __init__(self, app):
        self.app, self.cookies = app, {}

    def __call__(self, method: str, path: str, form: dict | None = None, headers: tuple = ()):
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()
        extra = [(b"cookie", cookie)] if cookie else []
        body = b""
        if form is not None:
            form = {"csrfmiddlewaretoken": self.cookies.get("csrftoken", ""), **form}
            body = urlencode(form).encode()
            extra += [(b"content-type", b"application/x-www-form-urlencoded"), (b"referer", b"http://127.0.0.1/")]
        response = asgi_call(self.app, method, path, (*extra, *headers), body)
        for line in response[1].get("set-cookie", "").splitlines():
            name, _, rest = line.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return response


def both_handlers():
    return ASGIHandler(), SyncMiddlewareASGIHandler()  # made now: middleware reads some settings when made


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_response_is_the_same_through_djangos_asgi_handler(api_entries, member, token_of, settings):
    """The middleware chain in one thread answers as Django's handler does: redirects, the login
    page and its CSRF failure, 404, 500, a token's 401, an API page, a static file, HSTS and the
    HTTPS redirect, and the lock-out after too many wrong passwords."""
    settings.ROOT_URLCONF = "tests.api.asgi_urls"
    settings.DEBUG = False
    _, plain = token_of(member)
    bearer = ((b"authorization", f"Bearer {plain}".encode()),)
    answers = []
    for handler in both_handlers():
        browser = Browser(handler)
        answers.append(
            [
                comparable(browser("GET", "/")),
                comparable(browser("GET", "/accounts/login/")),
                comparable(asgi_call(handler, "POST", "/accounts/login/", body=b"username=member&password=x")),
                comparable(browser("GET", "/api/v1/sheets/apisheet/entries/?page_size=2", headers=bearer)),
                comparable(browser("GET", "/api/v1/sheets/apisheet/entries/?format=csv", headers=bearer)),
                comparable(browser("GET", "/api/v1/sheets/", headers=((b"authorization", b"Bearer lbk_nope"),))),
                comparable(browser("GET", "/static/admin/css/base.css")),
                comparable(browser("POST", "/accounts/login/", {"username": "member", "password": "member-pass-123"})),
                comparable(browser("GET", "/sheets/")),
                comparable(browser("GET", "/sheets/apisheet/export.csv")),
                comparable(browser("GET", "/no/such/page/")),
                comparable(browser("GET", "/fails/")),
            ]
        )
    django_answers, ours = answers
    for theirs, mine in zip(django_answers, ours, strict=True):
        assert mine == theirs
    statuses = [status for status, _, _ in ours]
    assert statuses == [302, 200, 403, 200, 200, 401, 200, 302, 200, 200, 404, 500]
    assert ours[-1][2].count(b"a view's bug") == 0  # debug off: the 500 page, no traceback


@pytest.mark.django_db(transaction=True)
def test_security_headers_and_the_https_redirect_are_the_same_through_djangos_asgi_handler(settings, db):
    settings.DEBUG = False
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https = ((b"x-forwarded-proto", b"https"),)
    answers = [
        [comparable(asgi_call(h, "GET", "/accounts/login/", headers)) for headers in ((), https)]
        for h in both_handlers()
    ]
    assert answers[1] == answers[0]
    (redirect, _, _), (ok, headers, _) = answers[1]
    assert redirect == 301 and ok == 200 and headers["strict-transport-security"].startswith("max-age=3600")


@pytest.mark.django_db(transaction=True)
def test_the_login_lock_out_is_the_same_through_djangos_asgi_handler(settings, db):
    from django.contrib.auth import get_user_model

    settings.DEBUG = False
    answers = []
    for n, handler in enumerate(both_handlers()):
        get_user_model().objects.create_user(f"locked{n}", password="right-pass-123")
        browser = Browser(handler)
        browser("GET", "/accounts/login/")
        tries = [browser("POST", "/accounts/login/", {"username": f"locked{n}", "password": "wrong"})]
        tries += [
            browser("POST", "/accounts/login/", {"username": f"locked{n}", "password": "wrong"})
            for _ in range(settings.AXES_FAILURE_LIMIT)
        ]
        tries.append(browser("POST", "/accounts/login/", {"username": f"locked{n}", "password": "right-pass-123"}))
        answers.append([(s, comparable((s, h, b.replace(f"locked{n}".encode(), b"U")))) for s, h, b in tries])
    assert answers[1] == answers[0]
    assert [s for s, _ in answers[1]][-2:] == [settings.AXES_HTTP_RESPONSE_CODE] * 2


@pytest.mark.django_db(transaction=True)
def test_a_request_closes_the_database_connections_it_opened_and_logs_a_failure_as_django_does(
    api_entries, member, token_of, settings, caplog
):
    """request_started/request_finished still run close_old_connections in the request's thread: a
    connection left open per request thread would be a slow leak. A view's exception is logged once,
    with its traceback, as by Django's handler."""
    from django.db.backends.signals import connection_created

    settings.ROOT_URLCONF = "tests.api.asgi_urls"
    settings.DEBUG = False
    _, plain = token_of(member)
    opened = []

    def note(sender, connection, **kwargs):
        opened.append((connection, threading.get_ident()))

    connection_created.connect(note)
    try:
        logged = []
        for handler in both_handlers():
            opened.clear()
            caplog.clear()
            status, _, _ = asgi_call(
                handler, "GET", "/api/v1/sheets/apisheet/entries/", ((b"authorization", f"Bearer {plain}".encode()),)
            )
            assert status == 200 and opened, "the request used the database"
            assert all(connection.connection is None for connection, _ in opened)  # closed at request_finished
            assert threading.get_ident() not in {thread for _, thread in opened}  # not the event loop's
            status, _, _ = asgi_call(handler, "GET", "/fails/")
            assert status == 500 and all(connection.connection is None for connection, _ in opened)
            logged.append(
                [
                    (r.name, r.levelname, r.getMessage(), r.exc_info is not None)
                    for r in caplog.records
                    if r.name == "django.request"
                ]
            )
    finally:
        connection_created.disconnect(note)
    assert logged[1] == logged[0] == [("django.request", "ERROR", "Internal Server Error: /fails/", True)]


def test_what_labbook_asgi_relies_on_in_django_is_still_there():
    """labbook.asgi.SyncMiddlewareASGIHandler leans on undocumented parts of Django's handlers (checked
    with Django 5.2): ASGIHandler() loads its middleware with load_middleware(is_async=True);
    load_middleware(is_async=False) leaves the sync chain in `_middleware_chain` and sync
    view/exception middleware lists; get_response_async awaits `_middleware_chain`; adapt_method_mode
    wraps a sync callable in a thread-sensitive sync_to_async. If Django changes any of these, this
    fails here rather than every request failing (or silently hopping per middleware again)."""
    assert "self.load_middleware(is_async=True)" in inspect.getsource(ASGIHandler.__init__)
    assert "await self._middleware_chain(request)" in inspect.getsource(BaseHandler.get_response_async)
    assert list(inspect.signature(BaseHandler.load_middleware).parameters) == ["self", "is_async"]
    assert list(inspect.signature(BaseHandler.adapt_method_mode).parameters)[:4] == [
        "self",
        "is_async",
        "method",
        "method_is_async",
    ]
    handler = SyncMiddlewareASGIHandler()
    chain = handler._middleware_chain
    assert isinstance(chain, SyncToAsync) and chain._thread_sensitive  # one hop, on the request's thread
    assert not iscoroutinefunction(chain.func)  # the whole chain is sync inside it
    assert handler._view_middleware and not any(map(iscoroutinefunction, handler._view_middleware))
    assert not any(map(iscoroutinefunction, handler._exception_middleware))


@pytest.mark.django_db(transaction=True)
def test_a_forbidden_page_is_one_log_line_through_both_asgi_handlers(api_sheet, outsider, settings, caplog):
    """PermissionDenied: the 403 page and core.logfilters' one line (with the user), as Django's handler gives."""
    settings.DEBUG = False
    answers = []
    for handler in both_handlers():
        browser = Browser(handler)
        browser("GET", "/accounts/login/")
        assert browser("POST", "/accounts/login/", {"username": "outsider", "password": "outsider-pass-123"})[0] == 302
        caplog.clear()
        response = comparable(browser("GET", "/sheets/apisheet/"))
        lines = [
            logging.Formatter("%(levelname)s %(name)s: %(message)s").format(r)
            for r in caplog.records
            if r.name == "django.request"
        ]
        answers.append((response, lines))
    assert answers[1] == answers[0]
    assert answers[1][0][0] == 403 and len(answers[1][1]) == 1 and answers[1][1][0].endswith("user outsider")
