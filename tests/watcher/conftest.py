import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from kafka import KafkaProducer
from kafka.admin import NewTopic

from core.envelope import make_envelope
from core.runloop import StopFlag
from watcher.models import Route
from watcher.services.loop import Watcher

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["handmade", "native"])
def index_strategy(request, settings) -> str:
    """Run the test under each index strategy (watcher/indexes). On FerretDB the native one reads
    whole collections: correct, but slow, so the tests that use this fixture stay small."""
    settings.LABBOOK_INDEX_STRATEGY = request.param
    return request.param


@pytest.fixture
def handmade_indexes(settings) -> None:
    """For tests of the hand-made indexes themselves, whatever the server."""
    settings.LABBOOK_INDEX_STRATEGY = "handmade"


def wait_for(condition, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def envelopes(count: int, experiment: str = "TEST", start: int = 1, **extra) -> list[dict]:
    base = 1_764_000_000_000_000_000
    return [
        make_envelope(
            experiment=experiment,
            source="laser",
            kind="shot",
            shot_number=n,
            laser_ts_ns=base + n * 1_000_000,
            tz="UTC",
            seq=n,
            values={"energy": n / 10},
            **extra,
        )
        for n in range(start, start + count)
    ]


@pytest.fixture
def producer():
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", linger_ms=5)
    yield producer
    producer.close(5)


@pytest.fixture
def make_topic(kafka_admin):
    created = []

    def make(partitions: int = 3, prefix: str = "test.watch") -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        kafka_admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    yield make
    try:
        kafka_admin.delete_topics(created)
    except Exception:
        pass


@pytest.fixture
def routes(transactional_db):
    """Start from no routes (the default relay route is not what these tests are about)."""
    Route.objects.all().delete()

    def add(topic: str, collection: str, **options) -> Route:
        route = Route(
            name=options.pop("name", collection.replace("_", "-")), topic=topic, collection=collection, **options
        )
        route.full_clean()
        route.save()
        return route

    return add


@pytest.fixture
def run_watcher(make_topic):  # stops the watchers before their topics are deleted
    """Start in-process watchers in threads; all are stopped and joined after the test."""
    running = []

    def start(**options) -> Watcher:
        options.setdefault("group_id", f"test-{uuid.uuid4().hex[:8]}")
        options.setdefault("live", False)
        options.setdefault("route_refresh_seconds", 0.5)
        watcher = Watcher(stop=StopFlag(), **options)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        running.append((watcher, thread))
        return watcher

    yield start
    for watcher, _ in running:
        watcher.stop.set()
    for _, thread in running:
        thread.join(30)
        assert not thread.is_alive(), "a watcher did not stop within 30 s"


@pytest.fixture
def watch_env(tmp_path, mongo_db):
    """Environment for `manage.py watch` subprocesses: a migrated SQLite file of their own."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.sqlite3'}",
        "MONGODB_DB": settings.MONGODB_DB,
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    return env


def add_route_in(env: dict, topic: str, collection: str) -> None:
    code = (
        "from watcher.models import Route; Route.objects.all().delete(); "
        f"Route.objects.create(name='r', topic={topic!r}, collection={collection!r})"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def start_watch(env: dict, group: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "watch", "--group", group, "--batch-size", "200", "--no-live", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
