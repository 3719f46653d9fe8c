"""The web process's ASGI application (what daphne serves): an API request through it, in-process."""

import asyncio

import orjson
import pytest
from asgiref.sync import SyncToAsync


def asgi_get(path: str, query: bytes = b"", headers: tuple = ()) -> tuple[int, dict, bytes]:
    """One GET through labbook.asgi's application, as daphne would send it: (status, headers, body)."""
    from labbook.asgi import application

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
