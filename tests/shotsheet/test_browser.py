"""Browser tests in headless Chromium (Debian's), driven by Playwright, against a live daphne."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model

from shotsheet import schema, store
from shotsheet.models import Field, Sheet
from tests import browser

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


class BrowserTestCase(browser.BrowserTestCase):
    """Chromium and a live daphne for the test class; pages logged in as the superuser `marie` of setUp."""

    def logged_in_page(self, locale: str | None = None, timezone_id: str | None = None):
        page = self.browser.new_context(locale=locale, timezone_id=timezone_id).new_page()
        self.log_in(page, "marie", "browser-pass-123")
        return page


class ShotSheetInTheBrowser(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("marie", "m@example.org", "browser-pass-123")
        self.sheet = Sheet.objects.create(name="Browser sheet", slug="browser", experiment="BRW")
        Field.objects.create(
            sheet=self.sheet, key="target", label="Target", type=Field.Type.CHOICE, choices="Al\nCu", position=0
        )
        Field.objects.create(
            sheet=self.sheet,
            key="energy",
            label="Energy",
            unit="J",
            type=Field.Type.FLOAT,
            required=True,
            max_value=100,
            position=1,
        )
        Field.objects.create(sheet=self.sheet, key="note", label="Note", type=Field.Type.TEXT, position=2)

    def test_bad_value_shows_its_error_and_keeps_the_other_inputs(self):
        page = self.logged_in_page()
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        page.select_option("#id_target", "Cu")
        page.fill("#id_note", "kept at 3 a.m.")
        page.fill("#id_energy", "150")  # above the field's maximum of 100 J
        page.press("#id_energy", "Enter")  # keyboard-first: Enter saves
        page.wait_for_selector("#error_1_id_energy")
        assert "Above the maximum of 100.0 J." in page.inner_text("#error_1_id_energy")
        assert page.input_value("#id_note") == "kept at 3 a.m."
        assert page.input_value("#id_target") == "Cu"
        assert page.input_value("#id_energy") == "150"

    def test_an_entry_saved_in_one_browser_appears_in_another_browsers_table(self):
        watcher = self.logged_in_page()
        watcher.goto(f"{self.live_server_url}/sheets/browser/")
        watcher.wait_for_selector("#live-state:has-text('live')")
        writer = self.logged_in_page()
        writer.goto(f"{self.live_server_url}/sheets/browser/new/")
        writer.select_option("#id_target", "Al")
        writer.fill("#id_energy", "42.5")
        writer.press("#id_energy", "Enter")
        writer.wait_for_url(f"{self.live_server_url}/sheets/browser/new/")  # the next entry opens
        watcher.wait_for_selector("#grid .tabulator-cell:text-is('42.5')", timeout=5000)  # no reload
        assert watcher.url == f"{self.live_server_url}/sheets/browser/"

    def test_a_field_added_in_the_admin_shows_in_the_entry_form_without_restart(self):
        page = self.logged_in_page()
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        assert page.query_selector("#id_gas_pressure") is None
        page.goto(f"{self.live_server_url}/admin/shotsheet/sheet/{self.sheet.pk}/change/")
        page.click("#fields-group .add-row a")
        page.fill("input[name='fields-3-key']", "gas_pressure")
        page.fill("input[name='fields-3-label']", "Gas pressure")
        page.select_option("select[name='fields-3-type']", "float")
        page.fill("input[name='fields-3-unit']", "mbar")
        page.click("input[name='_save']")
        page.wait_for_selector(".messagelist .success")
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        assert "Gas pressure [mbar]" in page.inner_text("label[for='id_gas_pressure']")

    def test_a_refused_edit_shows_both_values_and_overwrites_only_when_asked_to(self):
        from shotsheet import store
        from shotsheet.entries import create_entry

        entry = create_entry(
            self.sheet,
            schema.save_version(self.sheet),
            {"energy": 1.0, "note": ""},
            author="marie",
            shot_key="BRW-20251124-000001",
        )
        url = f"{self.live_server_url}/sheets/browser/entries/{entry['_id']}/"
        a, b = self.logged_in_page(), self.logged_in_page()  # two browser contexts: two people
        a.goto(url)
        b.goto(url)
        a.fill("#id_energy", "2.5")
        a.click("button:text-is('Save changes')")
        a.wait_for_selector(".alert-success")
        b.fill("#id_energy", "3.5")
        b.fill("#id_note", "from b")
        b.click("button:text-is('Save changes')")
        b.wait_for_selector("#conflict-fields")
        assert b.inner_text("tr[data-field=energy] .theirs") == "2.5"
        assert b.inner_text("tr[data-field=energy] .yours") == "3.5"
        assert "changed by marie" in b.inner_text("tr[data-field=energy]")
        assert b.inner_text("tr[data-field=note] .yours") == "from b"
        assert b.input_value("#id_energy") == "3.5"  # B's values stay in the form

        b.click("button:text-is('Save changes')")  # Save again on the conflict page: still refused
        b.wait_for_selector("#conflict-fields")
        assert store.get_entry(entry["_id"])["values"]["energy"] == 2.5

        a.fill("#id_energy", "4.0")  # A saves again while B reads the comparison
        a.click("button:text-is('Save changes')")
        a.wait_for_selector(".alert-success")
        b.click("button:text-is('Overwrite with my values')")  # chosen for what B saw: refused
        b.wait_for_selector("tr[data-field=energy] .theirs:text-is('4.0')")
        assert store.get_entry(entry["_id"])["values"]["energy"] == 4.0

        b.click("button:text-is('Overwrite with my values')")
        b.wait_for_selector(".alert-success")
        stored = store.get_entry(entry["_id"])
        assert (stored["values"]["energy"], stored["values"]["note"], stored["rev"]) == (3.5, "from b", 4)
        assert b.input_value("#id_energy") == "3.5"

    def test_the_entry_comment_shows_under_its_header_in_a_live_row(self):
        watcher = self.logged_in_page()
        watcher.goto(f"{self.live_server_url}/sheets/browser/?view=table")  # the plain table
        watcher.wait_for_selector("#live-state:has-text('live')")
        writer = self.logged_in_page()
        writer.goto(f"{self.live_server_url}/sheets/browser/new/")
        writer.fill("#id_energy", "7.5")
        writer.fill("#id_comment", "refocused the OAP")
        writer.click("button[name=save]")
        writer.wait_for_url(f"{self.live_server_url}/sheets/browser/")
        cell = watcher.wait_for_selector("#entries tbody td:text-is('refocused the OAP')", timeout=5000)
        headers = watcher.eval_on_selector_all("#entries thead th", "ths => ths.map(th => th.textContent.trim())")
        assert headers[cell.evaluate("td => td.cellIndex")] == "comment"

    # --- values and times as a physicist types and reads them, in a German and a US browser (issue 10)
    LOCALES = ["de-DE", "en-US"]

    def saved_elsewhere(self, save):
        """Run a save in a thread of its own: this thread runs Playwright's event loop, where the
        channel layer's async_to_sync cannot send (and a save's broadcast gives up silently)."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(save).result()

    def type_and_save(self, page, selector: str, text: str) -> None:
        """Typed key by key, as a person would (fill() would bypass what the browser does to keys)."""
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        page.locator(selector).press_sequentially(text)
        page.press(selector, "Enter")

    def test_a_decimal_comma_is_the_decimal_mark_and_an_ambiguous_value_is_refused(self):
        for number, locale in enumerate(self.LOCALES, start=1):
            with self.subTest(locale=locale):
                page = self.logged_in_page(locale)
                page.goto(f"{self.live_server_url}/sheets/browser/new/")
                page.fill("#id_note", f"typed in {locale}")
                self.type_and_save(page, "#id_energy", "3,7")
                page.wait_for_url(f"{self.live_server_url}/sheets/browser/new/")
                page.wait_for_selector(".alert-success")
                saved = [e["values"]["energy"] for e in store.sheet_entries("browser")]
                assert len(saved) == number and saved.count(3.7) == number, saved

                page.fill("#id_note", "kept")
                page.locator("#id_energy").press_sequentially("1,234.5")
                page.press("#id_energy", "Enter")
                page.wait_for_selector("#error_1_id_energy")
                assert "both a comma and a point" in page.inner_text("#error_1_id_energy")
                assert page.input_value("#id_energy") == "1,234.5"  # everything typed is kept
                assert page.input_value("#id_note") == "kept"
                assert len(store.sheet_entries("browser")) == number
                page.context.close()

    def test_a_row_that_arrives_live_shows_its_times_in_the_labs_zone(self):
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        from shotsheet.entries import create_entry

        Field.objects.create(sheet=self.sheet, key="aligned", label="Aligned", type=Field.Type.DATETIME, position=3)
        for locale in self.LOCALES:
            with self.subTest(locale=locale):
                page = self.logged_in_page(locale)
                page.goto(f"{self.live_server_url}/sheets/browser/?view=table")  # the plain table, then the grid
                page.wait_for_selector("#live-state:has-text('live')")
                assert "created [Europe/Berlin]" in page.inner_text("#entries thead")
                grid = self.logged_in_page(locale)
                grid.goto(f"{self.live_server_url}/sheets/browser/")
                grid.wait_for_selector("#grid[data-loaded]")
                grid.wait_for_selector("#live-state:has-text('live')")
                assert "created [Europe/Berlin]" in grid.inner_text("#grid .tabulator-col.col-created")
                entry = self.saved_elsewhere(
                    lambda: create_entry(
                        self.sheet,
                        schema.save_version(self.sheet),
                        {"energy": 1.5, "aligned": datetime(2026, 11, 24, 9, 0, tzinfo=UTC)},
                        author="marie",
                        shot_key=None,
                    )
                )
                created = store.get_entry(entry["_id"])["created"].astimezone(ZoneInfo("Europe/Berlin"))
                row = f"#entries tr[data-entry='{entry['_id']}']"
                page.wait_for_selector(row)
                for shown in ("live", "after a reload"):
                    cells = [cell.inner_text() for cell in page.query_selector_all(f"{row} td")]
                    assert cells[0] == f"{created:%Y-%m-%d %H:%M:%S}", (shown, cells)
                    assert "2026-11-24 10:00:00" in cells, (shown, cells)
                    page.reload()
                grid_row = f"#grid .tabulator-row[data-entry='{entry['_id']}']"
                grid.wait_for_selector(grid_row)
                for shown in ("live", "after a reload"):
                    assert grid.inner_text(f"{grid_row} .col-created") == f"{created:%Y-%m-%d %H:%M:%S}", shown
                    assert grid.inner_text(f"{grid_row} .col-aligned") == "2026-11-24 10:00:00", shown
                    grid.reload()
                    grid.wait_for_selector(grid_row)
                page.context.close()
                grid.context.close()

    def test_an_open_table_redraws_for_fields_added_after_it_was_opened(self):
        from shotsheet.entries import create_entry

        page = self.logged_in_page()
        page.goto(f"{self.live_server_url}/sheets/browser/?view=table")  # the plain table (the grid: below)
        page.wait_for_selector("#live-state:has-text('live')")
        grid = self.logged_in_page()
        grid.goto(f"{self.live_server_url}/sheets/browser/")
        grid.wait_for_selector("#grid[data-loaded]")
        grid.wait_for_selector("#live-state:has-text('live')")
        Field.objects.create(
            sheet=self.sheet, key="gas_pressure", label="Gas pressure", unit="mbar", type=Field.Type.FLOAT, position=1
        )
        Field.objects.create(sheet=self.sheet, key="shots", label="Shots", type=Field.Type.INTEGER, position=5)
        entry = self.saved_elsewhere(
            lambda: create_entry(
                self.sheet,
                schema.save_version(self.sheet),
                {"energy": 7.5, "gas_pressure": 12.5, "shots": 3},
                author="marie",
                shot_key=None,
            )
        )
        row = f"#entries tr[data-entry='{entry['_id']}']"
        page.wait_for_selector(f"{row} td:text-is('12.5')")
        headers = [th.inner_text() for th in page.query_selector_all("#entries thead th")]
        cells = [td.inner_text() for td in page.query_selector_all(f"{row} td")]
        assert len(cells) == len(headers), (headers, cells)
        by_header = dict(zip(headers, cells, strict=True))
        assert (by_header["Energy [J]"], by_header["Gas pressure [mbar]"], by_header["Shots"]) == ("7.5", "12.5", "3")

        grid_row = f"#grid .tabulator-row[data-entry='{entry['_id']}']"
        grid.wait_for_selector(f"{grid_row} .col-gas_pressure:text-is('12.5')")  # the grid redrew for the new fields
        assert grid.inner_text("#grid .tabulator-col.col-gas_pressure .tabulator-col-title").startswith(
            "Gas pressure [mbar]"
        )
        assert (grid.inner_text(f"{grid_row} .col-energy"), grid.inner_text(f"{grid_row} .col-shots")) == ("7.5", "3")

    def test_the_plot_reads_time_on_the_labs_clock_in_a_browser_elsewhere(self):
        from zoneinfo import ZoneInfo

        from shotsheet.entries import create_entry

        entries = [
            self.saved_elsewhere(
                lambda energy=energy: create_entry(
                    self.sheet, schema.save_version(self.sheet), {"energy": energy}, author="marie", shot_key=None
                )
            )
            for energy in (1.0, 2.0)
        ]
        page = self.logged_in_page("en-US", timezone_id="America/New_York")
        page.goto(f"{self.live_server_url}/sheets/browser/")
        page.wait_for_selector("#plot .u-over")
        assert "time [Europe/Berlin]" in page.inner_text("#plot .u-legend")
        box = page.query_selector("#plot .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)  # the newest point
        shown = page.inner_text("#plot .u-legend .u-series:first-child .u-value")
        created = store.get_entry(entries[-1]["_id"])["created"].astimezone(ZoneInfo("Europe/Berlin"))
        assert shown.startswith(f"{created:%Y-%m-%d} {created.hour % 12 or 12}:{created:%M}"), shown
