"""The relay's append-only durable log: JSON Lines, one file per UTC day.

Every envelope and every rejected raw message is a line. Each line is flushed to the OS
at once (a crash of the relay loses nothing); fdatasync follows the configured policy:
"always" (per line, ~5-7 k lines/s), "interval" (group commit: at most every N seconds, a
power loss can lose that interval) or "never". Kafka is fed from this log, by a cursor.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

PREFIX = "relay-"
DAY_NS = 86_400 * 10**9


def day_file(directory: Path, when_ns: int) -> Path:
    return directory / f"{PREFIX}{datetime.fromtimestamp(when_ns / 1e9, UTC):%Y%m%d}.jsonl"


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{PREFIX}*.jsonl"))


class DurableLog:
    def __init__(self, directory: Path, fsync: str = "interval", fsync_seconds: float = 0.01) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"unknown fsync policy '{fsync}' (always, interval or never)")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync, self.fsync_seconds = fsync, fsync_seconds
        self.path: Path | None = None
        self.file = None
        self.unsynced = False
        self.unsynced_since = 0.0  # monotonic time of the first line written since the last fdatasync
        self.fsync_observer = None  # called with each interval fdatasync's duration (s), for the metrics
        self.lines = 0
        self.offset = 0  # where the next line starts in self.path
        self.day_ends_ns = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        if fsync == "interval":
            # Group commit off the hot path: fdatasync releases the GIL, so the relay loop
            # keeps publishing while the disk catches up.
            threading.Thread(target=self._sync_every_interval, daemon=True, name="relay-log-sync").start()

    def append(self, record: dict) -> None:
        self.append_line(orjson.dumps(record))

    def append_line(self, line: bytes) -> None:
        """One JSON document, already encoded, as a line."""
        self.append_lines([line])

    def append_lines(self, lines: list[bytes]) -> None:
        """JSON documents, already encoded, a line each, in one write."""
        now_ns = time.time_ns()
        if now_ns >= self.day_ends_ns:  # a new UTC day: rotate
            with self.lock:
                self._close_file()
                self.path = day_file(self.directory, now_ns)
                self.file = open(self.path, "ab", buffering=0)
                self.offset = os.fstat(self.file.fileno()).st_size
                self.day_ends_ns = (now_ns // DAY_NS + 1) * DAY_NS
        # Unbuffered: one write(2) per call, in the OS at once, so a crash of the relay loses nothing.
        data = memoryview(b"\n".join(lines) + b"\n")
        self.offset += len(data)
        while data:  # a regular file takes it all in one write, short of a full disk
            data = data[self.file.write(data) :]
        self.lines += len(lines)
        if not self.unsynced:
            self.unsynced_since = time.monotonic()
        self.unsynced = True
        if self.fsync == "always":
            os.fdatasync(self.file.fileno())
            self.unsynced = False

    def position(self) -> tuple[str, int] | None:
        """(file name, offset) after the last line written, None before the first."""
        return (self.path.name, self.offset) if self.path else None

    def unsynced_seconds(self) -> float:
        """How long the oldest line not yet on disk (fdatasync) has waited; 0 when all are."""
        return time.monotonic() - self.unsynced_since if self.unsynced else 0.0

    def _sync_every_interval(self) -> None:
        while not self.closed.wait(self.fsync_seconds):
            with self.lock:
                if self.file and self.unsynced:
                    self.unsynced = False
                    began = time.perf_counter()
                    os.fdatasync(self.file.fileno())
                    if self.fsync_observer is not None:
                        self.fsync_observer(time.perf_counter() - began)

    def _close_file(self) -> None:
        if self.file:
            if self.fsync != "never":
                os.fdatasync(self.file.fileno())
            self.file.close()
            self.file = None
            self.unsynced = False
            self.day_ends_ns = 0

    def close(self) -> None:
        self.closed.set()
        with self.lock:
            self._close_file()


class StateFile:
    """A small JSON document saved atomically beside the log (temp file, then os.replace)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict:
        """The saved document, or {} when there is none (or it was cut short)."""
        try:
            saved = orjson.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def save(self, document: dict) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(document))
        os.replace(temporary, self.path)


class Cursor:
    """Where the Kafka shipper is in the log: (file name, byte offset), saved atomically."""

    def __init__(self, path: Path) -> None:
        self.state = StateFile(path)
        saved = self.state.load()
        self.file, self.offset = saved.get("file", ""), saved.get("offset", 0)

    def save(self, file: str, offset: int) -> None:
        self.file, self.offset = file, offset
        self.state.save({"file": file, "offset": offset})


def tail_start(directory: Path, size: int) -> tuple[str, int]:
    """(file, offset) of the first whole line of the newest log file's last `size` bytes."""
    files = log_files(directory)
    if not files:
        return "", 0
    newest = files[-1]
    start = max(0, newest.stat().st_size - size)
    if start:
        with open(newest, "rb") as f:
            f.seek(start - 1)
            start += len(f.readline()) - 1  # past the line the cut fell into
    return newest.name, start


def read_from(directory: Path, file: str, offset: int, limit: int) -> Iterator[tuple[str, int, dict]]:
    """Complete lines after (file, offset): yields (file name, end offset of the line, record)."""
    count = 0
    for path in log_files(directory):
        if path.name < file:
            continue
        start = offset if path.name == file else 0
        with open(path, "rb") as f:
            f.seek(start)
            position = start
            for line in f:
                if not line.endswith(b"\n"):
                    break  # being written right now: read it next time
                position += len(line)
                yield path.name, position, orjson.loads(line)
                count += 1
                if count >= limit:
                    return


def read_all(directory: Path) -> Iterator[dict]:
    for _, _, record in read_from(directory, "", 0, limit=2**62):
        yield record
