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

import pytest

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
import MODULE
loaded = sorted(m for m in sys.modules if m.split(".")[0] in WATCHED or m.endswith((".services", ".durable_log")))
print(json.dumps({"loaded": loaded, "importers": importers}))
"""
SQLITE_CREATION = "/django/db/backends/sqlite3/creation.py"


def imports_of(code: str, **env: str | None) -> dict:
    """What a fresh interpreter running `code` loaded of the watched packages, and who imported
    each (`env`: variables to set, or with None to remove)."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT), **env}
    environment = {name: value for name, value in environment.items() if value is not None}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["packages"] = {name.split(".")[0] for name in report["loaded"]} | set(report["loaded"])
    return report


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_web_process_loads_no_process_code_zeromq_kafka_or_multiprocessing(database):
    """Importing labbook.asgi (the web process) loads neither the relay's nor the watcher's process
    code, so no ZeroMQ, Kafka client or multiprocessing (the consumers read group names from live.py).

    With PostgreSQL (production) nothing loads multiprocessing. With SQLite, Django itself does, at
    `django.setup()` and before any labbook code could defer it: every model class without an
    explicit `db_table` (django.contrib.auth's first) asks `connection.ops.max_name_length()`, which
    loads the backend, and the SQLite backend's `creation.py` imports multiprocessing at its top (for
    parallel test databases). That, and only that, importer is allowed; the next test shows a bare
    Django project does the same, and fails once Django stops, so this allowance goes with it.
    """
    url = "postgres://labbook@127.0.0.1:1/labbook" if database == "postgresql" else None  # None: SQLite
    report = imports_of(WEB_PROCESS_IMPORTS.replace("MODULE", "labbook.asgi"), DATABASE_URL=url)
    assert not report["packages"] & {"zmq", "kafka", "relay.services", "watcher.services", "relay.durable_log"}, report
    importer = report["importers"].get("multiprocessing")
    if database == "postgresql":
        assert "multiprocessing" not in report["packages"], report
    else:
        assert importer is None or importer.endswith(SQLITE_CREATION), report


# A Django project of nothing but Django: SQLite, contenttypes and auth, no labbook module.
BARE_DJANGO = """
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
import django
django.setup()
"""


def test_django_itself_loads_multiprocessing_with_sqlite_at_setup():
    """Why the SQLite web process has multiprocessing loaded: Django's own setup does it (see above).
    When this fails, Django no longer does: drop the SQLite allowance in the test above."""
    report = imports_of(WEB_PROCESS_IMPORTS.replace("import MODULE\n", BARE_DJANGO), DJANGO_SETTINGS_MODULE=None)
    assert report["importers"].get("multiprocessing", "").endswith(SQLITE_CREATION), report


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
