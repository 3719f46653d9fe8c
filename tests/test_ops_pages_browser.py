"""The relay and watcher pages in Chromium as someone on shift reads them: words and units, the rate
now and its history, the last shot's age, the Kafka backlog's trend; a navbar that fits a phone."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from relay.live import STATUS_GROUP
from tests.browser import BrowserTestCase, wait_until
from watcher.live import LIVE_GROUP
from watcher.models import Route

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


def send(group: str, message: dict) -> None:
    """From a thread of its own: Playwright's event loop runs in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(async_to_sync(get_channel_layer().group_send), group, message).result(timeout=10)


def relay_status(n: int, start: float) -> dict:
    """The n-th status of a relay publishing 10 shots/s (5 per half second) whose Kafka falls behind."""
    return {
        "at": start + 0.5 * n,
        "rate": 9.5,
        "received": 5 * n + 1,
        "published": 5 * n,
        "rejected": 1,
        "gaps": 2,
        "missing_shots": 7,
        "duplicates": 0,
        "counter_resets": 0,
        "kafka_connected": True,
        "kafka_shipped": 4 * n,
        "kafka_backlog": n,
        "kafka_shipper_restarts": 0,
        "last_shot": {"shot_key": f"OPS-20261202-{n:06d}", "shot_number": n, "laser_ts_ns": int((start - 3) * 1e9)},
    }


class OpsPages(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("ada", "a@example.org", "ops-pass-123")
        self.context = self.browser.new_context()
        self.page = self.context.new_page()
        self.log_in(self.page, "ada", "ops-pass-123")

    def tearDown(self):
        self.context.close()

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def test_relay_page_shows_the_rate_now_the_last_shots_age_and_the_backlog_trend(self):
        self.page.goto(f"{self.live_server_url}/relay/")
        assert "Missing shots" in self.text("#relay-figures") and "shots not yet acknowledged" in self.text("body")
        start, n = time.time(), 0
        while "OPS-" not in self.text("#last-shot") or n < 12:  # the websocket may still be connecting
            send(STATUS_GROUP, {"type": "relay.status", "status": relay_status(n, start)})
            n += 1
            time.sleep(0.05)
            assert n < 400, "the page never showed the relay's statuses"
        wait_until(lambda: self.text("#last-shot") == f"OPS-20261202-{n - 1:06d}")
        assert self.text("#rate-now") == "10.0"  # 5 shots per 0.5 s, over the last 5 s
        assert self.text("#rate-average") == "9.5"
        assert self.text("#backlog-trend") == "growing"
        assert self.text("#kafka-state") == "connected"
        assert self.text("#last-shot-number") == str(n - 1)
        assert "s ago" in self.text("#last-shot-age")
        zone = self.text("#last-shot-time").split()[-1]
        assert zone in ("CET", "CEST", "GMT+1", "GMT+2"), self.text("#last-shot-time")  # the lab's zone, named
        figures = {row.split("\t")[0]: row.split("\t")[1] for row in self.text("#relay-figures").splitlines()}
        assert figures["Missing shots"] == "7 shots" and figures["Gaps in the shot counter"] == "2 gaps"
        points = self.page.locator("#rate-history polyline").get_attribute("points").split()
        assert len(points) >= 10

        # Kafka catches up: the backlog shrinks.
        for k in range(12):
            status = relay_status(n + k, start) | {"kafka_backlog": max(0, n - 3 * k)}
            send(STATUS_GROUP, {"type": "relay.status", "status": status})
        wait_until(lambda: self.text("#backlog-trend") == "shrinking")

    def test_watcher_page_folds_the_stream_as_pretty_json_and_draws_each_routes_rate(self):
        Route.objects.create(name="r1", topic="diag", collection="diag")
        self.page.goto(f"{self.live_server_url}/watcher/")
        self.page.wait_for_selector("#live-state:has-text('live')")
        document = '{"shot_key":"OPS-20261202-000001","values":{"E_J":2.5,"note":"<b>x</b>"}}'
        for n in range(6):
            sample = {"kafka": f"diag/0@{n}", "shot_key": "OPS-20261202-000001", "json": document}
            route = {"rate": 4.0 + n, "total": 7 + n, "lag": 0, "dead_letters": 0, "partitions": [0]}
            status = {"watcher": "w1", "at": time.time(), "routes": {"r1": route | {"samples": [sample]}}}
            send(LIVE_GROUP, {"type": "watcher.status", "status": status})
            time.sleep(0.3)
        newest = self.page.locator('tr[data-stream="r1"] .stream details').first
        newest.wait_for()
        assert "diag/0@5" in newest.locator("summary").inner_text()
        assert not newest.locator("pre").is_visible()  # folded
        newest.locator("summary").click()
        pretty = newest.locator("pre").inner_text()
        assert '"values": {\n    "E_J": 2.5,' in pretty and '"note": "<b>x</b>"' in pretty  # indented, as text
        assert self.page.locator('tr[data-stream="r1"] b').count() == 0  # never HTML
        assert self.text('tr[data-route="r1"] [data-k="rate"]') == "9.0"
        points = self.page.locator('tr[data-route="r1"] .sparkline polyline').get_attribute("points").split()
        assert len(points) >= 5

    def test_navbar_collapses_and_log_out_stays_reachable_at_390_px(self):
        self.page.set_viewport_size({"width": 390, "height": 844})
        self.page.goto(f"{self.live_server_url}/relay/")
        log_out = self.page.get_by_role("button", name="Log out")
        assert not log_out.is_visible()  # folded away behind the toggler, not cut off
        self.page.locator(".navbar-toggler").click()
        log_out.wait_for(state="visible")
        box = log_out.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways: {width} px"
