"""Fixtures over the real services started by scripts/services.py (or named by env vars)."""

import importlib.util
import multiprocessing
import os
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymongo
import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from core import mongo


def fresh_sync_executor_after_fork() -> None:
    """A forked child (the browser tests' live daphne) inherits asgiref's executor for
    database_sync_to_async with the worker thread an earlier test started, but not the thread:
    every database call of its websockets then waited for good. The child gets a fresh one."""
    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


os.register_at_fork(after_in_child=fresh_sync_executor_after_fork)

# The relay and watch processes tests start serve no metrics unless a test gives them a port: the
# default ports (9101, 9102) belong to a system scripts/run may be running on this machine.
os.environ.setdefault("RELAY_METRICS_PORT", "0")
os.environ.setdefault("WATCHER_METRICS_PORT", "0")


@pytest.fixture(scope="session", autouse=True)
def mongo_test_database():
    """This run's MongoDB database, dropped when the run ends."""
    db = mongo.database()
    db.client.admin.command("ping")
    yield db
    mongo.drop_databases()


@pytest.fixture
def mongo_db(mongo_test_database):
    """The test database, emptied after the test so tests never see each other's data."""
    yield mongo_test_database
    for db in mongo.databases():
        for name in db.list_collection_names():
            db.drop_collection(name)


@pytest.fixture(scope="session")
def kafka_admin():
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=10000)
    yield admin
    admin.close()


@pytest.fixture
def kafka_topic(kafka_admin, request):
    """A fresh topic (3 partitions) for one test, deleted afterwards."""
    name = f"test.{request.node.name[:40]}.{uuid.uuid4().hex[:8]}".replace("[", "_").replace("]", "_")
    kafka_admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    yield name
    try:
        kafka_admin.delete_topics([name])
    except Exception:  # the broker may be gone in a fault test; the topic dies with it
        pass


FERRETDB = Path(__file__).resolve().parents[1] / ".services" / "bin" / "ferretdb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMongoDB:
    """A FerretDB of one test's own, for fault tests: stopping it stops nobody else's server."""

    def __init__(self, data_dir: Path) -> None:
        self.uri = f"mongodb://127.0.0.1:{free_port()}"
        self.command = [str(FERRETDB), "-listen", self.uri.removeprefix("mongodb://"), "-data", str(data_dir)]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"the test's own FerretDB did not start: {self.command}") from None
                time.sleep(0.1)
        client.close()

    def kill(self) -> None:
        """kill -9: no goodbye to the clients."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def private_mongodb(tmp_path, settings):
    """MongoDB for this test only (settings.MONGODB_URI points at it), to kill and restart."""
    if not FERRETDB.exists():
        pytest.skip("needs the FerretDB binary built by scripts/services.py")
    server = PrivateMongoDB(tmp_path / "private-mongo")
    server.start()
    settings.MONGODB_URI = server.uri
    yield server
    server.kill()


def services_module():
    """scripts/services.py, the one place that knows how to run the servers."""
    spec = importlib.util.spec_from_file_location("labbook_services", FERRETDB.parents[2] / "scripts" / "services.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PrivateKafka:
    """A Kafka broker of one test's own (the jars of the project's broker, its own ports and data)."""

    def __init__(self, directory: Path) -> None:
        services = services_module()
        shared_lib = services.Kafka().lib
        if not (shared_lib / ".complete").exists():
            pytest.skip("needs Kafka's jars fetched by scripts/services.py")

        class Broker(services.Kafka):
            lib = shared_lib  # the project's jars, not a copy
            port, controller_port = free_port(), free_port()

            def __init__(self) -> None:
                self.dir, self.pid_file = directory, directory / "kafka.pid"

        self.broker = Broker()
        self.address = self.broker.local_address()
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.broker.prepare()  # server.properties and the formatted storage, once

    def answers(self) -> bool:
        try:
            self.broker.ping(self.address)
            return True
        except Exception:
            return False

    def start(self) -> None:
        log = open(self.broker.dir / "kafka.log", "ab")
        self.process = subprocess.Popen(
            self.broker.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.broker.dir, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while not self.answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the test's own Kafka did not start; see {self.broker.dir / 'kafka.log'}")
            time.sleep(0.3)

    def kill(self) -> None:
        """kill -9: the broker vanishes mid-conversation."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)


@pytest.fixture
def private_kafka(tmp_path):
    broker = PrivateKafka(tmp_path / "private-kafka")
    broker.start()
    yield broker
    broker.kill()


def pytest_sessionfinish(session, exitstatus):
    """A child process a test left behind must not keep pytest (and CI) from exiting."""
    for child in multiprocessing.active_children():
        print(f"\nkilling a child process left behind by a test: {child.name} (pid {child.pid})")
        child.kill()
        child.join(5)
