"""Voiding in Chromium: from the entry page with a reason, and live out of every open table."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model

from shotsheet import entries, schema, store
from shotsheet.models import Field, Sheet
from tests.browser import BrowserTestCase, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


class VoidInTheBrowser(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("marie", "m@example.org", "browser-pass-123")
        self.sheet = Sheet.objects.create(name="Void sheet", slug="voids", experiment="VOI")
        Field.objects.create(sheet=self.sheet, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT)
        version = schema.save_version(self.sheet)
        self.kept, self.wrong = (
            entries.create_entry(self.sheet, version, {"energy": e}, author="marie", shot_key=f"VOI-20261202-00000{n}")
            for n, e in ((1, 1.5), (2, 2.5))
        )

    def test_voiding_from_the_entry_page_takes_the_row_out_of_an_open_table(self):
        table_page = self.browser.new_context().new_page()
        self.log_in(table_page, "marie", "browser-pass-123")
        table_page.goto(f"{self.live_server_url}/sheets/voids/")
        table_page.wait_for_selector("#grid[data-loaded]")  # the grid, its rows read
        table_page.wait_for_selector("#live-state:has-text('live')")
        row = f'.tabulator-row[data-entry="{self.wrong["_id"]}"]'
        assert table_page.locator(row).count() == 1

        entry_page = self.browser.new_context().new_page()
        self.log_in(entry_page, "marie", "browser-pass-123")
        entry_page.goto(f"{self.live_server_url}/sheets/voids/entries/{self.wrong['_id']}/")
        entry_page.fill("#void-reason", "energy meter not armed")
        entry_page.get_by_role("button", name="Void this entry").click()
        entry_page.wait_for_selector("#voided")
        assert "energy meter not armed" in entry_page.locator("#voided").inner_text()

        wait_until(lambda: table_page.locator(row).count() == 0)  # live, without a reload
        assert table_page.locator(f'.tabulator-row[data-entry="{self.kept["_id"]}"]').count() == 1
        with ThreadPoolExecutor(1) as pool:  # the ORM outside Playwright's event loop thread
            assert pool.submit(store.get_entry, self.wrong["_id"]).result()["values"]["energy"] == 2.5
