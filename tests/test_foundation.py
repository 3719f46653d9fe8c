"""Smoke tests over the real services: each fails if its service is missing or faked."""

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import zmq
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from kafka import KafkaConsumer, KafkaProducer
from pymongo import MongoClient, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from labbook.asgi import application
from shotsheet.live import sheet_group
from shotsheet.models import Sheet

ROOT = Path(__file__).resolve().parent.parent


def test_admin_login_page_renders_and_superuser_lists_users(client, db):
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b"csrfmiddlewaretoken" in page.content

    get_user_model().objects.create_superuser("marie", "marie@example.org", "s3cret-pw-for-test")
    response = client.post(
        "/admin/login/?next=/admin/auth/user/", {"username": "marie", "password": "s3cret-pw-for-test"}, follow=True
    )
    assert response.status_code == 200
    assert response.request["PATH_INFO"] == "/admin/auth/user/"
    assert b"marie@example.org" in response.content


def test_pages_require_login(client, db):
    response = client.get("/sheets/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_mongodb_bulk_upsert_then_query_round_trip(mongo_db):
    hello = mongo_db.client.admin.command("hello")
    assert hello["maxWireVersion"] >= 17  # a MongoDB 6+ wire protocol server answered
    shots = mongo_db["smoke_shots"]
    shots.create_index("shot_key", unique=True)
    ops = [
        UpdateOne(
            {"_id": f"DEMO-20261124-{n:06d}"},
            {"$set": {"shot_key": f"DEMO-20261124-{n:06d}", "energy": n * 1.5}},
            upsert=True,
        )
        for n in range(20)
    ]
    assert shots.bulk_write(ops, ordered=False).upserted_count == 20
    assert shots.bulk_write(ops, ordered=False).upserted_count == 0  # idempotent
    found = list(shots.find({"energy": {"$gte": 15.0}}, {"_id": 0}).sort("energy", -1).limit(3))
    assert [doc["energy"] for doc in found] == [28.5, 27.0, 25.5]
    assert isinstance(found[0]["energy"], float)
    assert shots.count_documents({}) == 20


def id_indexes(database_file: Path) -> list[tuple[str, int, str]]:
    """(name, unique, SQL) of the _id indexes of every collection table in one FerretDB file."""
    with sqlite3.connect(f"file:{database_file}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql LIKE '%_id%'").fetchall()
    return [(name, int("UNIQUE" in sql), sql.split("(", 1)[1]) for name, sql in rows]


def test_ferretdb_tables_have_one_unique_id_index_that_lookups_use_and_duplicates_hit(private_mongodb, tmp_path):
    client = MongoClient(private_mongodb.uri, serverSelectionTimeoutMS=5000)
    events = client["idx"]["events"]
    events.insert_one({"_id": "a", "n": 1})
    data = tmp_path / "private-mongo" / "idx.sqlite"
    wait = time.monotonic() + 10
    while [name for name, _, _ in id_indexes(data) if not name.endswith("_labbook_uid")] and time.monotonic() < wait:
        time.sleep(0.1)  # the wrapper replaces FerretDB's index within a second
    [(name, unique, expression)] = id_indexes(data)
    assert name.endswith("_labbook_uid") and unique and expression == "_ferretdb_sjson->'$._id')"

    def duplicates_hit_it():
        with pytest.raises(DuplicateKeyError):
            events.insert_one({"_id": "a", "n": 2})
        with pytest.raises(BulkWriteError) as refused:
            events.insert_many([{"_id": "b"}, {"_id": "a"}, {"_id": "c"}], ordered=False)
        assert [e["code"] for e in refused.value.details["writeErrors"]] == [11000]
        assert events.find_one({"_id": "a"})["n"] == 1 and events.count_documents({}) == 3
        assert [index["name"] for index in events.list_indexes()] == ["_id_"]  # as MongoDB lists it
        events.delete_many({"_id": {"$in": ["b", "c"]}})

    duplicates_hit_it()
    # A database of an older wrapper (FerretDB's index plus a second, non-unique one) is changed
    # over as FerretDB starts, before any client can write.
    private_mongodb.kill()
    table = name.removesuffix("_labbook_uid")
    with sqlite3.connect(data) as con:
        con.execute(f'CREATE UNIQUE INDEX "{table}__id_" ON "{table}" (_ferretdb_sjson->"_id")')
        con.execute(f'CREATE INDEX "{table}_labbook_id" ON "{table}" (_ferretdb_sjson->\'$._id\')')
        con.execute(f'DROP INDEX "{name}"')
    assert len(id_indexes(data)) == 2
    private_mongodb.start()
    assert id_indexes(data) == [(name, 1, expression)]
    client.close()  # its pooled connections died with the server (a loaded machine saw AutoReconnect)
    client = MongoClient(private_mongodb.uri, serverSelectionTimeoutMS=5000)
    events = client["idx"]["events"]
    duplicates_hit_it()
    client.close()


def test_kafka_produce_consume_round_trip(kafka_topic):
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    sent = [f"shot {n} {uuid.uuid4()}".encode() for n in range(10)]
    for payload in sent:
        producer.send(kafka_topic, payload, key=b"k")
    producer.flush(10)
    producer.close()

    consumer = KafkaConsumer(
        kafka_topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        group_id=f"smoke-{uuid.uuid4().hex[:6]}",
    )
    received = []
    for record in consumer:
        received.append(record.value)
        if len(received) == len(sent):
            break
    consumer.close()
    assert received == sent  # one key → one partition → order kept


@pytest.mark.django_db(transaction=True)
def test_channel_layer_group_send_reaches_sheet_consumer():
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    user = get_user_model().objects.create_user("ada", password="pw-for-test-only")
    Sheet.objects.create(name="Demo", slug="demo", experiment="DEMO")

    async def scenario():
        communicator = WebsocketCommunicator(
            application,
            "/ws/sheets/demo/",
            headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
        )
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        layer = get_channel_layer()
        await layer.group_send(sheet_group("demo"), {"type": "entry.changed", "entry": {"shot": 42}})
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert asyncio.run(scenario()) == {"type": "entry", "entry": {"shot": 42}}


def test_websocket_refuses_anonymous_user():
    async def scenario():
        communicator = WebsocketCommunicator(
            application,
            "/ws/sheets/demo/",
            headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
        )
        connected, code = await communicator.connect()
        return connected, code

    assert asyncio.run(scenario()) == (False, 4401)


def test_zeromq_pub_sub_round_trip():
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = context.socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.setsockopt(zmq.SUBSCRIBE, b"laser")
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # PUB/SUB drops until the subscription arrives
            pub.send_multipart([b"laser", b'{"shot": 1}'])
            if sub.poll(100):
                assert sub.recv_multipart() == [b"laser", b'{"shot": 1}']
                break
        else:
            pytest.fail("no message crossed the PUB/SUB sockets")
    finally:
        sub.close(0)
        pub.close(0)
        context.term()


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "labbook.settings", **env},
    )


def test_check_and_makemigrations_are_clean():
    check = manage("check", DJANGO_DEBUG="1")
    assert check.returncode == 0, check.stderr
    migrations = manage("makemigrations", "--check", "--dry-run", DJANGO_DEBUG="1")
    assert migrations.returncode == 0, migrations.stdout + migrations.stderr


def test_production_settings_pass_check_deploy():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="p" + uuid.uuid4().hex + uuid.uuid4().hex,
        DJANGO_ALLOWED_HOSTS="labbook.example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "DJANGO_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "labbook.settings"},
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_services_script_names_the_service_that_is_not_answering():
    result = subprocess.run(
        [sys.executable, "scripts/services.py", "up", "redis"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "LABBOOK_SERVICES_TIMEOUT": "2"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "redis at redis://127.0.0.1:1/0 did not become ready within 2 s" in result.stderr


def test_two_services_scripts_starting_one_service_at_once_start_it_once(tmp_path):
    """`scripts/run` and `scripts/test` started together on a fresh checkout: a second `up` waits
    for the first, finds the server running and leaves it (it used to start a second one, which
    failed on the port and overwrote the pid file, so `down` could no longer stop the first)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LABBOOK_SERVICES_DIR": str(tmp_path), "LABBOOK_REDIS_PORT": str(port)}
    env.pop("REDIS_URL", None)
    script = [sys.executable, "scripts/services.py"]
    ups = [
        subprocess.Popen([*script, "up", "redis"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        outputs = sorted(up.communicate(timeout=60)[0] for up in ups)
        assert [up.returncode for up in ups] == [0] * 4, outputs
        assert sum("started" in output for output in outputs) == 1, outputs
        assert sum("already running" in output for output in outputs) == 3, outputs
        pid = int((tmp_path / "redis" / "redis.pid").read_text())
        assert f"127.0.0.1:{port}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    finally:
        down = subprocess.run([*script, "down", "redis"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "stopped" in down.stdout, down
    assert not port_open(port)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
