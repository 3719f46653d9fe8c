"""The relay's inputs thread against a PostgreSQL server of the test's own, restarted under it."""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq
from django.conf import settings

from relay.durable_log import read_all

from .test_relay import ROOT, Laser, free_port, wait_for

# Debian keeps PostgreSQL's server programs out of PATH, in a folder per major version.
PG_BIN = next(
    (
        Path(found)
        for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        if Path(found, "initdb").exists()
    ),
    Path("/usr/local/bin"),
)


class PrivatePostgres:
    """initdb'd in a directory of its own, run as the postgres user (initdb refuses root)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip("needs PostgreSQL's initdb")
        self.directory = Path(tempfile.mkdtemp(prefix="labbook-pg-"))
        self.port = free_port()
        self.user = pwd.getpwnam("postgres")
        os.chmod(self.directory, 0o755)
        os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)
        self.as_postgres("initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def as_postgres(self, program: str, *args: str) -> None:
        command = [str(PG_BIN / program), *args]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.directory / "data"), str(self.directory / "log")
        self.as_postgres("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-m", "fast", action)

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.mark.slow
def test_the_relay_reads_its_inputs_again_after_a_postgres_restart(tmp_path, mongo_db):
    """A restarted database leaves the inputs thread's connection broken: it is closed and opened
    again each round, so an input added after the restart is opened."""
    postgres = PrivatePostgres()
    context = zmq.Context()
    first, second = Laser(context), Laser(context)
    relay = None
    try:
        postgres.pg_ctl("start")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "labbook.settings",
            "DJANGO_DEBUG": "1",
            "MONGODB_DB": settings.MONGODB_DB,
            "DATABASE_URL": postgres.url,
        }
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=300)

        def add_input(name: str, laser: Laser) -> None:
            code = (
                "from relay.models import RelayInput; "
                f"RelayInput.objects.create(name={name!r}, endpoint={laser.endpoint_for_relay!r}, "
                f"parser='json', source={name!r})"
            )
            subprocess.run([*manage, "shell", "-c", code], env=env, cwd=ROOT, check=True, timeout=120)

        add_input("first", first)
        log_dir = tmp_path / "log"
        relay = subprocess.Popen(
            [
                *manage,
                "relay",
                "--log-dir",
                str(log_dir),
                "--pub",
                f"tcp://127.0.0.1:{free_port()}",
                "--snapshot",
                f"tcp://127.0.0.1:{free_port()}",
                "--no-live",
                "--no-kafka",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "relay.log", "wb"),
        )

        def logged_from(source: str, laser: Laser) -> bool:
            laser.send_multipart([b"laser", b'{"kind": "probe"}'])
            return log_dir.exists() and any(
                r["envelope"]["source"] == source for r in read_all(log_dir) if r["type"] == "envelope"
            )

        wait_for(lambda: logged_from("first", first), timeout=60, message="the first input read")
        time.sleep(3)  # the inputs thread has read the table (every 2 s): it holds a connection
        postgres.pg_ctl("restart")
        time.sleep(3)  # a round of re-reading on the broken connection
        add_input("second", second)
        wait_for(
            lambda: logged_from("second", second),
            timeout=30,
            message=f"the input added after the restart opened: {(tmp_path / 'relay.log').read_text()[-2000:]}",
        )
    finally:
        if relay is not None:
            relay.send_signal(signal.SIGTERM)
            relay.wait(30)
        first.pub.close(0)
        second.pub.close(0)
        context.term()
        postgres.remove()
