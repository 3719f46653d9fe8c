"""A live daphne and headless Chromium (Debian's, driven by Playwright) for browser tests."""

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import ChannelsLiveServerTestCase

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class BrowserTestCase(ChannelsLiveServerTestCase):
    host = "127.0.0.1"
    # The live server is a process forked from this one, with this process's ContentType cache.
    # The flush after each test makes the content types anew; with the ids counting on, the
    # admin's log entry of a later test named a content type that no longer existed (FOREIGN KEY
    # constraint failed, only after other tests had filled the cache). Same ids, valid cache.
    reset_sequences = True

    @classmethod
    def setUpClass(cls):
        # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
        # ordinary synchronous ones. Scoped to the class so it never leaks into other tests.
        cls.async_unsafe = mock.patch.dict(os.environ, {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"})
        cls.async_unsafe.start()
        super().setUpClass()
        from playwright.sync_api import sync_playwright

        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        cls.async_unsafe.stop()

    def log_in(self, page, username: str, password: str) -> None:
        page.set_default_timeout(15000)
        page.goto(f"{self.live_server_url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.live_server_url}/sheets/")


def send_relay_shot(shot_key: str) -> None:
    """What the relay's status thread sends when a shot arrives (from a thread of its own: Playwright's
    event loop runs in the test's thread)."""
    send = async_to_sync(get_channel_layer().group_send)
    message = {"type": "relay.status", "status": {"rate": 1.0, "last_shot": {"shot_key": shot_key}}}
    with ThreadPoolExecutor(1) as pool:
        pool.submit(send, "relay.status", message).result(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float = 15, every: float = 0.2) -> None:
    """Poll a check from Python (Playwright's wait_for_function evaluates text in the page, which the
    Content-Security-Policy refuses as eval)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {check.__doc__ or check}"
        time.sleep(every)


def relay_shot_until(shot_key: str, check: Callable[[], bool], timeout: float = 15) -> None:
    """Send the relay's shot until the page shows it: the page's websocket may still be connecting
    when the first one goes out."""
    deadline = time.monotonic() + timeout
    while True:
        send_relay_shot(shot_key)
        try:
            wait_until(check, timeout=0.5)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"the page never showed the relay's shot {shot_key}"
