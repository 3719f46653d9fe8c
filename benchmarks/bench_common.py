"""What several benchmarks share (imported as `bench_common`: a benchmark's own folder is first on
its path)."""

import socket
import threading
import time
import urllib.request


def timed(function, repeat: int = 9) -> float:
    """Best of `repeat` calls, in ms."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_every_second(port: int, stop: threading.Event) -> None:
    """Read a process's /metrics as Prometheus would, until `stop`."""
    while not stop.wait(1):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
        except OSError:
            pass  # not up yet
