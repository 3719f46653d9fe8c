"""The login lock-out cannot be kept up by a stranger, and behind the TLS proxy it is per client
(review of issue 10's hardening)."""

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.db.models import F

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "right-pass-for-test-7"


def log_in(client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def minutes_pass(minutes: float) -> None:
    """Time passing for the lock-out: its failures' times moved back (axes counts from them)."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_a_wrong_password_during_the_lock_out_does_not_start_it_again(client, db, settings):
    get_user_model().objects.create_superuser("admin", "a@example.org", PASSWORD)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "admin", f"wrong-{attempt}")
    assert log_in(client, "admin", PASSWORD).status_code == 429
    minutes_pass(14)
    assert log_in(client, "admin", "a stranger's guess").status_code == 429  # restarted the 15 minutes
    minutes_pass(2)
    assert log_in(client, "admin", PASSWORD).status_code == 302


class Daphne:
    """`daphne --proxy-headers` as the README says to run it behind the TLS proxy, on a database of its own."""

    def __init__(self, tmp_path: Path, proxy_headers: bool = True):
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        }
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=self.env, cwd=ROOT, check=True, timeout=300)
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model; "
                f"get_user_model().objects.create_superuser('admin', 'a@example.org', '{PASSWORD}')",
            ],
            env=self.env,
            cwd=ROOT,
            check=True,
            timeout=120,
        )
        flags = ["--proxy-headers"] if proxy_headers else []
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                *flags,
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "labbook.asgi:application",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not self.up():
            assert time.monotonic() < deadline and self.process.poll() is None, "daphne did not start"
            time.sleep(0.3)

    def up(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2)
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def log_in(self, client_address: str, password: str) -> int:
        """A login through the proxy, which puts the client's address in X-Forwarded-For."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())
        headers = {"X-Forwarded-For": client_address}
        url = f"http://127.0.0.1:{self.port}/accounts/login/"
        page = opener.open(urllib.request.Request(url, headers=headers), timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": "admin", "password": password}
        ).encode()
        try:
            return opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.django_db(transaction=True)
def test_behind_the_proxy_a_stranger_locks_out_only_their_own_address(tmp_path, settings):
    daphne = Daphne(tmp_path)
    try:
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            daphne.log_in("203.0.113.5", f"wrong-{attempt}")
        assert daphne.log_in("203.0.113.5", PASSWORD) == 429
        assert daphne.log_in("198.51.100.7", PASSWORD) == 302  # the admin at their own address
    finally:
        daphne.stop()
