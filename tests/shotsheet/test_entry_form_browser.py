"""The new-entry form in Chromium during a shift: the relay's values arrive with each shot, a typed
value stays, a shot that has an entry is said, "Save & next" lands on the first field to type."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from relay import store as relay_store
from relay.live import STATUS_GROUP
from shotsheet import entries, schema
from shotsheet.models import Field, Sheet
from tests.browser import BrowserTestCase, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


def relay_fires(shot_key: str, **values) -> None:
    """What the relay does for a shot: its envelope saved as the latest, its status sent."""
    relay_store.save_state({"rate": 1.0}, {"shot_key": shot_key, "values": values})
    message = {"type": "relay.status", "status": {"rate": 1.0, "last_shot": {"shot_key": shot_key}}}
    with ThreadPoolExecutor(1) as pool:
        pool.submit(async_to_sync(get_channel_layer().group_send), STATUS_GROUP, message).result(timeout=10)


class FastEntry(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("marie", "m@example.org", "browser-pass-123")
        self.sheet = Sheet.objects.create(name="Shift sheet", slug="shift", experiment="SFT")
        Field.objects.create(
            sheet=self.sheet,
            key="target",
            label="Target",
            choices="Al\nCu",
            sticky=True,
            type=Field.Type.CHOICE,
            position=0,
        )
        Field.objects.create(
            sheet=self.sheet,
            key="energy",
            label="Energy",
            unit="J",
            type=Field.Type.FLOAT,
            relay_value="values.energy_J",
            max_value=100,
            position=1,
        )
        Field.objects.create(sheet=self.sheet, key="note", label="Note", position=2)
        version = schema.save_version(self.sheet)
        self.old = entries.create_entry(
            self.sheet, version, {"energy": 1.0}, author="marie", shot_key="SFT-20261202-000007"
        )
        self.page = self.browser.new_context().new_page()
        self.log_in(self.page, "marie", "browser-pass-123")

    def value(self, selector: str) -> str:
        return self.page.locator(selector).input_value()

    def test_relay_values_fill_the_form_for_each_shot_until_typed_over(self):
        self.page.goto(f"{self.live_server_url}/sheets/shift/new/")
        assert self.page.evaluate("document.activeElement.id") == "id_energy"  # target is sticky
        box = lambda name: self.page.locator(f'[data-field="{name}"]').bounding_box()  # noqa: E731
        first, second, third = box("shot_key"), box("target"), box("energy")  # two columns, the shot key first
        assert first["y"] == second["y"] and first["x"] < second["x"] and third["y"] > first["y"]
        assert "up to" not in self.page.inner_text("body") and "at most 100 J" in self.page.inner_text("body")

        shot = 10
        while True:  # the page's websocket may still be connecting when the first shots go out
            shot += 1
            relay_fires(f"SFT-20261202-{shot:06d}", energy_J=40.0 + shot)
            try:
                wait_until(lambda: self.value("#id_shot_key") == f"SFT-20261202-{shot:06d}", timeout=0.5)  # noqa: B023
                break
            except AssertionError:
                assert shot < 40, "the form never followed the relay"
        wait_until(lambda: self.value("#id_energy") == f"{40.0 + shot}")
        assert self.page.locator('[data-field="energy"] .relay-filled').count() == 1

        self.page.fill("#id_energy", "12.5")  # typed over: the relay never overwrites it
        assert self.page.locator('[data-field="energy"] .relay-filled').count() == 0
        relay_fires(f"SFT-20261202-{shot + 1:06d}", energy_J=99.0)
        wait_until(lambda: self.value("#id_shot_key") == f"SFT-20261202-{shot + 1:06d}")
        self.page.wait_for_timeout(500)
        assert self.value("#id_energy") == "12.5"

    def test_a_typed_shot_key_with_an_entry_is_said_and_save_and_next_lands_on_the_first_field(self):
        self.page.goto(f"{self.live_server_url}/sheets/shift/new/")
        assert not self.page.locator("#shot-taken").is_visible()
        self.page.fill("#id_shot_key", "SFT-20261202-000007")
        self.page.locator("#shot-taken").wait_for(state="visible")
        link = self.page.locator("#shot-taken a")
        assert link.get_attribute("href") == f"/sheets/shift/entries/{self.old['_id']}/"

        self.page.fill("#id_shot_key", "SFT-20261202-000008")
        self.page.locator("#shot-taken").wait_for(state="hidden")
        self.page.select_option("#id_target", "Cu")
        self.page.fill("#id_energy", "3,5")
        self.page.press("#id_energy", "Enter")  # Save & next
        self.page.wait_for_selector(".alert-success")
        assert self.page.evaluate("document.activeElement.id") == "id_energy"
        assert self.value("#id_target") == "Cu"  # sticky
