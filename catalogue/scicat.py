"""A small SciCat HTTP client: login, dataset create/get/patch, OrigDatablocks, with SciCat's
answers turned into what the outbox does next (done, refused for good, try again).

Why not scitacean's `ScicatClient` for the transport (its models do check every body, contract.py):
it opens a new connection per request (`httpx.request`), reports every failure as one
`ScicatCommError` whose status is only in the message text, and its `UploadDataset` has no `pid`,
so the deterministic pid that makes registration idempotent would be dropped. One `httpx.Client`
keeps the connection and gives the status code.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import httpx

PAGE = 1000


class ScicatError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Refused(ScicatError):
    """SciCat refused the content (400/422 or another 4xx): retrying the same body cannot help."""


class Unavailable(ScicatError):
    """Down, overloaded, timed out or not letting us in: try again later."""


class Conflict(ScicatError):
    """409: a dataset with this pid exists already."""


def message_of(response: httpx.Response) -> str:
    """SciCat's own words: `{"statusCode", "message": str | [str], "error"}`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code}: {response.text[:500]}"
    message = body.get("message", body) if isinstance(body, dict) else body
    if isinstance(message, list):
        message = "; ".join(map(str, message))
    return f"{response.status_code}: {message}"


class Client:
    """One connection pool and one token, shared by the sync's workers (httpx.Client is thread-safe)."""

    def __init__(
        self,
        base_url: str,
        api_version: str = "v4",
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        timeout: float = 10.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.version = api_version
        self.username, self.password = username, password
        self.token = token
        self.http = httpx.Client(timeout=timeout)
        self.login_lock = threading.Lock()
        self.shortest_wait: float | None = None  # see `take_shortest_wait`

    def close(self) -> None:
        self.http.close()

    def login(self) -> None:
        if not (self.username and self.password):
            raise Unavailable("no SciCat credentials: set the environment variables the server's configuration names")
        response = self._send(
            "POST", "v3/auth/login", {"username": self.username, "password": self.password}, timed=False
        )
        if not response.is_success:
            raise Unavailable(f"SciCat login failed: {message_of(response)}", response.status_code)
        self.token = response.json()["access_token"]

    def _send(self, method: str, path: str, body=None, params=None, timed: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            response = self.http.request(method, f"{self.base_url}/{path}", json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:  # connection refused, reset, timeout
            raise Unavailable(f"SciCat not reached: {type(exc).__name__}: {exc}") from None
        waited = (time.perf_counter() - started) - (time.thread_time() - cpu)
        if timed and response.is_success and (self.shortest_wait is None or waited < self.shortest_wait):
            self.shortest_wait = waited  # two threads at once may each keep theirs: either is a wait seen
        return response

    def take_shortest_wait(self) -> float | None:
        """The shortest time a dataset or datablock request answered with success waited for its
        answer (its time less the CPU time of the thread that made it) since the last call:
        SciCat's own answer time, as near as this process can see it (a request made while other
        threads hold the GIL waits for them too, but in a batch some meet none; a login or a
        refusal may be answered sooner than the work, and is left out). None: no such answer."""
        waited, self.shortest_wait = self.shortest_wait, None
        return waited

    def renew(self, refused: str) -> None:
        """Log in unless another thread already replaced the `refused` token: several requests in
        flight meeting one expiry make one login."""
        with self.login_lock:
            if self.token == refused:
                self.login()

    def call(self, method: str, path: str, body=None, params=None) -> httpx.Response:
        """One request; a 401 logs in again once (an expired token), then SciCat's answer decides."""
        if not self.token:
            self.renew("")
        token = self.token
        response = self._send(method, path, body, params)
        if response.status_code == 401 and self.username:
            self.renew(token)
            response = self._send(method, path, body, params)
        if response.is_success or (response.status_code == 404 and method != "POST"):
            return response  # a GET's or PATCH's 404 is "no such dataset", its caller's to judge
        if response.status_code == 409:
            raise Conflict(message_of(response), 409)
        if response.status_code == 404:  # nothing to create under: the server's API root or version is wrong
            raise Unavailable(f"{message_of(response)} (check the SciCat server's API root and version)", 404)
        if response.status_code in (401, 403, 408, 429) or response.status_code >= 500:
            raise Unavailable(message_of(response), response.status_code)
        raise Refused(message_of(response), response.status_code)

    def dataset_path(self, pid: str = "") -> str:
        return f"{self.version}/datasets" + (f"/{quote(pid, safe='')}" if pid else "")

    def create_dataset(self, body: dict) -> dict:
        return self.call("POST", self.dataset_path(), body).json()

    def get_dataset(self, pid: str) -> dict | None:
        response = self.call("GET", self.dataset_path(pid))
        return None if response.status_code == 404 or not response.content else response.json()

    def patch_dataset(self, pid: str, body: dict) -> dict:
        response = self.call("PATCH", self.dataset_path(pid), body)
        if response.status_code == 404:
            raise Refused(f"404: no dataset {pid} to update")
        return response.json()

    def create_origdatablock(self, body: dict) -> dict:
        return self.call("POST", f"{self.version}/origdatablocks", body).json()

    def origdatablock_paths(self, pid: str) -> set[str]:
        """The file paths in the dataset's OrigDatablocks (after a crash: what arrived)."""
        if self.version == "v3":
            response = self.call("GET", f"v3/datasets/{quote(pid, safe='')}/origdatablocks")
            return paths_of(response.json() if response.status_code != 404 else [])
        paths, skip = set(), 0
        while True:  # v4 answers a page at a time: a file past the first would look unsent, and go again
            query = json.dumps({"where": {"datasetId": pid}, "limits": {"limit": PAGE, "skip": skip}})
            response = self.call("GET", "v4/origdatablocks", params={"filter": query})
            blocks = response.json() if response.status_code != 404 else []
            paths |= paths_of(blocks)
            if len(blocks) < PAGE:
                return paths
            skip += PAGE


def paths_of(blocks: list[dict]) -> set[str]:
    return {item["path"] for block in blocks for item in block.get("dataFileList", [])}
