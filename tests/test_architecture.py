"""The seams between the project, the apps and core (issue 11): what the web process loads, and
the one best-effort live send every app uses."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

from core import live

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: records which file first imported each watched package.
WEB_PROCESS_IMPORTS = """
import json, sys, traceback
WATCHED = {"zmq", "kafka", "multiprocessing", "mwclient"}
importers = {}
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in importers:
            frames = [f.filename for f in traceback.extract_stack() if "importlib" not in f.filename]
            importers[name] = frames[-2] if len(frames) > 1 else "?"
        return None
sys.meta_path.insert(0, Recorder())
import labbook.asgi
loaded = sorted(m for m in sys.modules if m.split(".")[0] in WATCHED or m.endswith((".services", ".durable_log")))
print(json.dumps({"loaded": loaded, "importers": importers}))
"""


def test_web_process_loads_no_process_code_zeromq_or_kafka():
    """Importing labbook.asgi (the web process) loads neither the relay's nor the watcher's process
    code, so no ZeroMQ, Kafka client or multiprocessing (the consumers read group names from live.py).

    Django's own SQLite backend imports multiprocessing (for parallel test databases): the only
    importer allowed.
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS_IMPORTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = {name.split(".")[0] for name in report["loaded"]} | set(report["loaded"])
    assert not loaded & {"zmq", "kafka", "relay.services", "watcher.services", "relay.durable_log"}, report
    importer = report["importers"].get("multiprocessing")
    assert importer is None or "/django/db/backends/sqlite3/" in importer, report


def test_failed_live_send_is_logged_once_until_it_works_again(caplog):
    """A send that fails (here: from a thread running an event loop, where Channels' sync send
    cannot run) returns False and logs one warning per outage, however often it is tried."""
    group = f"test.live.{uuid.uuid4().hex[:8]}"
    message = {"type": "nothing.here"}

    async def send_from_event_loop(times: int) -> list[bool]:
        return [live.send(group, message) for _ in range(times)]

    caplog.set_level(logging.INFO, logger="core.live")
    assert asyncio.run(send_from_event_loop(3)) == [False, False, False]
    warnings = [r for r in caplog.records if r.name == "core.live" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and group in warnings[0].getMessage()

    assert live.send(group, message) is True  # the shared Redis takes it
    assert any("sent again" in r.getMessage() for r in caplog.records if r.name == "core.live")

    assert asyncio.run(send_from_event_loop(2)) == [False, False]  # a new outage: one more line
    warnings = [r for r in caplog.records if r.name == "core.live" and r.levelno == logging.WARNING]
    assert len(warnings) == 2


def test_web_process_start_reads_the_tables_ahead_through_the_app_hook():
    """labbook/asgi.py imports no app module: it calls each AppConfig's `web_process_started()`,
    and the shot sheet's starts reading its tables (the warm-tables thread)."""
    code = (
        "import sys, threading\n"
        "from django.conf import settings\n"
        "settings.SHOTSHEET_WARM_TABLES = True\n"
        "started, start = [], threading.Thread.start\n"
        "threading.Thread.start = lambda thread: (started.append(thread.name), start(thread))[1]\n"
        "import labbook.asgi\n"
        "print(started, 'shotsheet.table' in sys.modules)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'warm-tables'" in done.stdout and done.stdout.strip().endswith("True"), done.stdout
