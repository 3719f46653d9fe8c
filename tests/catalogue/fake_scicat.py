"""A small SciCat for tests: login, dataset create/get/patch and OrigDatablock create/list, with
the backend's status codes, every body checked against its OpenAPI schemas (an invalid one is a
400 with the schema's messages, and is recorded so that a test can say none arrived)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import openapi

USERS = {"ingestor": "secret"}


@dataclass
class State:
    version: str = "v4"
    token_seconds: float = 3600.0
    datasets: dict[str, dict] = field(default_factory=dict)
    blocks: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    invalid: list[str] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # token → expiry (monotonic)
    refuse_names: set[str] = field(default_factory=set)  # datasetName → 400
    connections: set = field(default_factory=set)  # open client sockets, cut when the server stops
    server_errors: int = 0  # the next n requests (after login) answer 500
    proxy_pages: int = 0  # the next n requests (after login) answer 200 with a proxy's HTML page, not SciCat's
    too_large: int = 0  # the next n requests (after login) answer 413, as a proxy's body size limit does
    listing_errors: int = 0  # the next n listings of a dataset's OrigDatablocks answer 503
    validate: bool = True  # off only for benchmarks (the schema check costs the server ~1 ms a body)
    delay: float = 0.0  # seconds each dataset request takes after its change is made (a real SciCat: 10-50 ms)
    in_flight: int = 0  # dataset requests being answered now, and the most there were at once
    most_in_flight: int = 0
    patches: list[tuple[str, int]] = field(default_factory=list)  # pid, the labbook entry revision sent
    # given: an OrigDatablock POST waits (counted in `held`) until this event is set, then is
    # stored, or with `drop_held` lost (a test kills its sender meanwhile)
    hold_blocks: threading.Event | None = None
    held: int = 0
    drop_held: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)

    def count(self, method: str, prefix: str, status: int | None = None) -> int:
        return sum(
            1 for m, p, s in self.requests if m == method and p.startswith(prefix) and (status is None or s == status)
        )

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server behind its proxy
    state: State

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer back 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self):
        with self.state.lock:
            self.state.connections.discard(self.connection)
        super().finish()

    def answer(self, status: int, body=None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        with self.state.lock:  # what the server did, whether or not its answer arrives
            self.state.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def page(self, status: int, html: bytes) -> None:
        with self.state.lock:
            self.state.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        self.wfile.write(html)

    def error(self, status: int, message, error: str = "") -> None:
        self.answer(status, {"statusCode": status, "message": message, "error": error})

    def body(self):
        return self.received

    def read_body(self) -> bool:
        """Read before any answer: a body left unread would be taken for the next request. False
        when the client went away before all of it arrived (a sync killed -9 between a request's
        headers and its body): a server drops such a request, it does not judge a body it never got."""
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        if len(data) < length:
            self.close_connection = True
            return False
        self.received = json.loads(data or b"null")
        return True

    def authorised(self) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.state.lock:
            expiry = self.state.tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            self.error(401, "Unauthorized")
            return False
        return True

    def checked(self, body, schema: str) -> bool:
        errors = openapi.errors(body, schema) if self.state.validate else []
        if errors:
            with self.state.lock:
                self.state.invalid.append(f"{self.command} {self.path}: {errors}")
            self.error(400, errors, "Bad Request")
        return not errors

    def route(self):
        if not self.read_body():
            return
        dataset_request = "/datasets" in self.path or "/origdatablocks" in self.path
        if dataset_request:
            with self.state.lock:
                self.state.in_flight += 1
                self.state.most_in_flight = max(self.state.most_in_flight, self.state.in_flight)
        try:
            self.respond()
        finally:
            if dataset_request:
                with self.state.lock:
                    self.state.in_flight -= 1

    def slow(self) -> None:
        """The request's change is made; its answer takes `delay` (lost if the server stops meanwhile)."""
        if self.state.delay:
            time.sleep(self.state.delay)

    def respond(self):
        state, path = self.state, urlsplit(self.path).path.removeprefix("/api/")
        version, _, rest = path.partition("/")
        if self.command == "POST" and path == "v3/auth/login":
            body = self.body()
            if not self.checked(body, openapi.LOGIN):
                return
            if USERS.get(body["username"]) != body["password"]:
                return self.error(401, "Unauthorized")
            token = uuid.uuid4().hex
            with state.lock:
                state.tokens[token] = time.monotonic() + state.token_seconds
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            return self.answer(
                201,
                {
                    "access_token": token,
                    "id": token,
                    "expires_in": state.token_seconds,
                    "ttl": state.token_seconds,
                    "created": now,
                    "userId": body["username"],
                    "user": {"username": body["username"]},
                },
            )
        if version != state.version:
            return self.error(404, f"Cannot {self.command} /api/{path}", "Not Found")
        if not self.authorised():
            return
        with state.lock:
            if state.server_errors:
                state.server_errors -= 1
                return self.error(500, "Internal server error")
            if state.too_large:
                state.too_large -= 1
                return self.error(413, "request entity too large", "Payload Too Large")
            if state.proxy_pages:
                state.proxy_pages -= 1
                return self.page(200, b"<html><body>Maintenance: back soon</body></html>")
        if rest == "datasets" and self.command == "POST":
            body = self.body()
            creates = openapi.DERIVED_CREATE if body.get("type") == "derived" else openapi.DATASET_CREATE
            schema = creates[version]
            if not self.checked(body, schema):
                return
            if body["datasetName"] in state.refuse_names:
                return self.error(400, [f"datasetName '{body['datasetName']}' is refused"], "Bad Request")
            with state.lock:
                if body["pid"] in state.datasets:
                    return self.error(409, f"Dataset with pid {body['pid']} already exists", "Conflict")
                state.datasets[body["pid"]] = {**body, "version": 1}
            self.slow()
            return self.answer(201, state.datasets[body["pid"]])
        if rest.startswith("datasets/") and rest.count("/") == 1:
            pid = unquote(rest.split("/", 1)[1])
            with state.lock:
                dataset = state.datasets.get(pid)
            if dataset is None:
                return self.error(404, f"Dataset {pid} not found", "Not Found")
            if self.command == "GET":
                self.slow()
                return self.answer(200, dataset)
            if self.command == "PATCH":
                body = self.body()
                patches = openapi.DERIVED_PATCH if dataset.get("type") == "derived" else openapi.DATASET_PATCH
                if not self.checked(body, patches[version]):
                    return
                with state.lock:
                    dataset.update(body)
                    dataset["version"] += 1
                    revision = ((body.get("scientificMetadata") or {}).get("labbook") or {}).get("entry_revision")
                    state.patches.append((pid, revision))
                self.slow()
                return self.answer(200, dataset)
        if rest == "origdatablocks" and self.command == "POST":
            body = self.body()
            if not self.checked(body, openapi.ORIGDATABLOCK_CREATE):
                return
            if (gate := state.hold_blocks) is not None:
                with state.lock:
                    state.held += 1
                gate.wait(60)
                if state.drop_held:
                    return self.error(503, "Service Unavailable")
            with state.lock:
                if body["datasetId"] not in state.datasets:
                    return self.error(400, "dataset not found", "Bad Request")
                block = {**body, "_id": uuid.uuid4().hex}
                state.blocks.append(block)
            self.slow()
            return self.answer(201, block)
        if "origdatablocks" in rest and self.command == "GET":
            with state.lock:
                if state.listing_errors:
                    state.listing_errors -= 1
                    return self.error(503, "Service Unavailable")
        if rest == "origdatablocks" and self.command == "GET":
            query = json.loads(parse_qs(urlsplit(self.path).query).get("filter", ["{}"])[0])
            where, limits = query.get("where", {}), query.get("limits") or {}
            with state.lock:
                found = [b for b in state.blocks if b["datasetId"] == where.get("datasetId")]
            skip = limits.get("skip", 0)  # a page at a time, as the backend answers
            return self.answer(200, found[skip : skip + limits["limit"]] if "limit" in limits else found[skip:])
        if rest.startswith("datasets/") and rest.endswith("/origdatablocks") and self.command == "GET":
            pid = unquote(rest.split("/")[1])
            with state.lock:
                found = [b for b in state.blocks if b["datasetId"] == pid]
            return self.answer(200, found)
        return self.error(404, f"Cannot {self.command} /api/{path}", "Not Found")

    do_GET = do_POST = do_PATCH = route


class FakeScicat:
    """The server in a thread; `stop()` and `start()` again on the same port (SciCat down, back)."""

    def __init__(self, version: str = "v4", port: int = 0):
        self.state = State(version=version)
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> FakeScicat:
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-scicat", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            with self.state.lock:
                for connection in list(self.state.connections):
                    try:
                        connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self.thread.join(10)
            assert not self.thread.is_alive()
            self.server = None


if __name__ == "__main__":  # a SciCat in a process of its own (the benchmark): prints its URL, serves until killed
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--no-validate", action="store_true", help="do not check bodies against the OpenAPI schemas")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each dataset request takes")
    options = parser.parse_args()
    scicat = FakeScicat().start()
    scicat.state.validate = not options.no_validate
    scicat.state.delay = options.delay
    print(scicat.url, flush=True)
    scicat.thread.join()
