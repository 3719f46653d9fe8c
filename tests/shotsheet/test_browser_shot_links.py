"""In Chromium: from a shot without entry to its new entry, and the relay badge telling the truth."""

import pytest
from django.contrib.auth import get_user_model

from relay import store as relay_store
from shotsheet.models import Field, Sheet
from tests.browser import BrowserTestCase, relay_shot_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


class ShotLinksInTheBrowser(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("lise", "l@example.org", "links-pass-123")
        sheet = Sheet.objects.create(name="Links sheet", slug="links", experiment="LNK")
        Field.objects.create(sheet=sheet, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT, position=0)
        relay_store.save_state({"rate": 1.0}, {"shot_key": "LNK-20261124-000010"})
        self.context = self.browser.new_context()
        self.page = self.context.new_page()
        self.log_in(self.page, "lise", "links-pass-123")

    def tearDown(self):
        self.context.close()

    def test_the_form_shows_the_relays_shot_at_once_and_follows_it(self):
        page = self.page
        page.goto(f"{self.live_server_url}/sheets/links/new/")
        assert page.input_value("#id_shot_key") == "LNK-20261124-000010"
        assert page.inner_text("#relay-shot") == "relay: shot LNK-20261124-000010"  # not "waiting for a shot…"
        relay_shot_until("LNK-20261124-000011", lambda: page.input_value("#id_shot_key") == "LNK-20261124-000011")
        assert page.inner_text("#relay-shot") == "relay: shot LNK-20261124-000011"

    def test_a_shot_without_entry_leads_to_a_form_that_keeps_its_shot_key(self):
        page = self.page
        page.goto(f"{self.live_server_url}/watcher/shot/LNK-20261124-000003/")
        assert "no entry yet" in page.inner_text("main")
        page.click("text=create one in Links sheet")
        page.wait_for_url("**/sheets/links/new/?shot_key=LNK-20261124-000003")
        assert page.input_value("#id_shot_key") == "LNK-20261124-000003"
        assert page.inner_text("#relay-shot") == "shot key from the link"
        # The relay moves on: the badge says so, the key stays.
        relay_shot_until("LNK-20261124-000012", lambda: "000012" in page.inner_text("#relay-shot"))
        assert page.input_value("#id_shot_key") == "LNK-20261124-000003"
        page.fill("#id_energy", "4.5")
        page.press("#id_energy", "Enter")
        page.wait_for_url("**/sheets/links/new/")
        page.goto(f"{self.live_server_url}/watcher/shot/LNK-20261124-000003/")
        page.click("text=Shot sheet entry of LNK-20261124-000003")
        page.wait_for_url("**/sheets/links/entries/**")
        assert page.input_value("#id_energy") == "4.5"
