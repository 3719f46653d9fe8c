"""The import's preview and report in headless Chromium, on a shot log the way a lab keeps it (issue 10)."""

import pytest
from django.contrib.auth import get_user_model

from .legacy_log import legacy_log, legacy_sheet
from .test_browser import BrowserTestCase

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportInTheBrowser(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("marie", "m@example.org", "browser-pass-123")
        self.sheet = legacy_sheet()

    def upload(self, page, content: bytes):
        page.goto(f"{self.live_server_url}/sheets/legacy/import/")
        page.set_input_files("#id_file", files=[{"name": "campaign.xlsx", "mimeType": XLSX, "buffer": content}])
        page.click("button[type=submit]")
        page.wait_for_selector("#import-columns")

    def choose_columns(self, page):
        page.select_option("select[name=col_D]", "gas_pressure")
        page.select_option("select[name=col_F]", "(entry time)")
        page.select_option("select[name=col_G]", "(ignore)")
        page.click("button[name=check]")
        page.wait_for_selector("#import-ignored")

    def test_the_preview_shows_where_each_column_goes_and_the_report_names_each_bad_cell(self):
        log = legacy_log()
        page = self.logged_in_page()
        self.upload(page, log.content)
        assert page.inner_text("#import-rows") == "500" and page.inner_text("#import-empty") == "4"
        assert "Laser › Energy [J]: decimal comma, as the file shows (B10 '5,5')" in page.inner_text("#import-decimal")
        assert "Header in row 5 (rows 1–4 above it are left out)" in page.inner_text("#import-summary")
        row = page.locator("#import-columns tr[data-column=B]")
        assert "Laser › Energy [J]" in row.inner_text() and row.locator("select").input_value() == "energy"
        assert page.locator("tr[data-column=C] select").input_value() == "pulse"
        misspelt = page.locator("tr[data-column=D]")
        assert misspelt.locator("select").input_value() == ""  # nothing chosen for the user
        assert "did you mean Gas pressure [mbar]?" in misspelt.inner_text()
        assert "Column G “Remarks of the night” matches no field" in page.inner_text("#import-problems")
        assert page.is_disabled("button[name=import]")

        self.choose_columns(page)
        assert "G “Remarks of the night”" in page.inner_text("#import-ignored")
        assert page.query_selector("#import-problems") is None
        assert page.inner_text("#import-bad") == "3" and page.is_disabled("button[name=import]")
        report = page.inner_text("#import-report")
        assert "1 row in Laser › Energy [J]: Above the maximum of 100.0 J" in report
        for cell, value in log.bad_cells.items():
            assert f"{cell} “{value}”" in report
        assert "1 row in Conditions › target: Select a valid choice." in report

        page.select_option("#id_decimal_mark", "point")  # the wrong decimal mark: every text comma refused
        page.click("button[name=check]")
        page.wait_for_selector("#import-report:has-text('decimal comma, but this import reads decimal points')")
        assert "99 rows in Laser › Energy [J]: decimal comma" in page.inner_text("#import-report")
        assert self.stored() == 0

    def test_a_clean_log_imports_after_the_preview(self):
        page = self.logged_in_page()
        self.upload(page, legacy_log(bad=False).content)
        self.choose_columns(page)
        assert page.inner_text("#import-bad") == "0"
        page.click("button[name=import]")
        page.wait_for_url(f"{self.live_server_url}/sheets/legacy/")
        assert "Imported 500 entries from campaign.xlsx; 4 empty rows skipped." in page.inner_text("main")
        assert self.stored() == 500

    def stored(self) -> int:
        from core import mongo

        return mongo.database()["entries"].count_documents({"sheet": "legacy"})
