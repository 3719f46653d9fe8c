"""scripts/processes (the part of scripts/run that runs the system's processes) stops every one of them.

It runs here for real, with every port and name of its own (web, laser, relay PUB/REP, MongoDB
database, Kafka topic and group, data folder), against the shared services, which it never touches.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pymongo
import pytest
from django.conf import settings

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("relay", "laser_sim", "watch", "catalogue_sync")  # manage.py commands, besides daphne


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (children, grandchildren…), with its command line."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands.get(child, "")
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def listening(port: int) -> bool:
    """Whether a server holds the port (a bind with SO_REUSEADDR fails only then)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def web_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for(check, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.3)


@pytest.fixture
def system_env(tmp_path, kafka_admin):
    """The environment of a system of the test's own, migrated, its watcher route on a topic of its own."""
    name = f"runtest{uuid.uuid4().hex[:10]}"
    ports = {
        "web": free_port(),
        "laser": free_port(),
        "pub": free_port(),
        "snapshot": free_port(),
        "relay_metrics": free_port(),
        "watch_metrics": free_port(),
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "labbook.settings",
            "DJANGO_DEBUG": "1",
            "LABBOOK_KEEP_SERVICES": "1",  # belt and braces: the shared services are never this test's to stop
            "LABBOOK_WEB_PORT": str(ports["web"]),
            "RELAY_LASER_ENDPOINT": f"tcp://127.0.0.1:{ports['laser']}",
            "RELAY_PUB_ENDPOINT": f"tcp://127.0.0.1:{ports['pub']}",
            "RELAY_SNAPSHOT_ENDPOINT": f"tcp://127.0.0.1:{ports['snapshot']}",
            "RELAY_METRICS_PORT": str(ports["relay_metrics"]),
            "WATCHER_METRICS_PORT": str(ports["watch_metrics"]),
            "LABBOOK_DATA_DIR": str(tmp_path / "data"),
            "RELAY_LOG_DIR": str(tmp_path / "relay-log"),
            "MONGODB_URI": settings.MONGODB_URI,
            "MONGODB_DB": name,
            "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
            "REDIS_URL": settings.REDIS_URL,
            "RELAY_KAFKA_TOPIC": f"test.{name}",
            "WATCHER_GROUP_ID": name,
            "SHOTSHEET_WARM_TABLES": "0",
        }
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=300)
    route_on_own_topic = f"from watcher.models import Route; Route.objects.update(topic='test.{name}')"
    subprocess.run([*manage, "shell", "-c", route_on_own_topic], env=env, cwd=ROOT, check=True, timeout=120)
    yield env, ports
    client = pymongo.MongoClient(settings.MONGODB_URI)
    for database in (name, f"{name}_shots"):
        client.drop_database(database)
    client.close()
    if f"test.{name}" in kafka_admin.list_topics():
        kafka_admin.delete_topics([f"test.{name}"])


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_run_script_stops_every_process_it_started_and_frees_their_ports(system_env, tmp_path, stop_signal):
    env, ports = system_env
    log = open(tmp_path / "processes.log", "wb")
    script = subprocess.Popen(
        [str(ROOT / "scripts" / "processes")],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: web_answers(ports["web"]),
            120,
            f"the web app never answered on LABBOOK_WEB_PORT "
            f"{ports['web']}: {(tmp_path / 'processes.log').read_text()[-3000:]}",
        )

        def all_parts_running() -> bool:
            commands = " | ".join(descendants(script.pid).values())
            return all(f"manage.py {part}" in commands for part in PARTS) and "daphne" in commands

        wait_for(all_parts_running, 120, f"not every part started: {descendants(script.pid)}")
        watch_name = f"{socket.gethostname()}-watch"  # static group membership: a restart resumes within seconds
        assert any(f"manage.py watch --name {watch_name}" in c for c in descendants(script.pid).values())
        wait_for(
            lambda: all(listening(port) for port in ports.values()),
            60,
            f"not every port is served: { {k: listening(p) for k, p in ports.items()} }",
        )
        started = descendants(script.pid)

        script.send_signal(stop_signal)
        assert script.wait(timeout=90) == 0

        def leftovers() -> dict[int, str]:
            return {pid: command for pid, command in started.items() if alive(pid)}

        wait_for(lambda: not leftovers(), 30, f"still running after the script ended: {leftovers()}")
        assert {name: port for name, port in ports.items() if listening(port)} == {}
    finally:
        try:  # never leave the test's processes behind, orphans included (they keep the script's group)
            os.killpg(script.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        script.wait(timeout=30)
        log.close()
