"""The admin's form designer in Chromium: fields reordered by dragging, common settings first and the
rest folded, archived fields apart, and a live preview of the entry form as the fields make it."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Error as PlaywrightError

from shotsheet.models import Field, Sheet
from tests.browser import BrowserTestCase, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


def field_keys(sheet: Sheet) -> list[str]:
    with ThreadPoolExecutor(1) as pool:  # the ORM outside Playwright's event loop thread
        return pool.submit(lambda: list(sheet.fields.filter(archived=False).values_list("key", flat=True))).result()


class FormDesigner(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("ada", "a@example.org", "designer-pass-1")
        self.sheet = Sheet.objects.create(name="Designer sheet", slug="designer", experiment="DSG")
        for n, (key, label, unit) in enumerate(
            [("target", "Target", ""), ("energy", "Energy", "J"), ("note", "Note", "")]
        ):
            Field.objects.create(sheet=self.sheet, key=key, label=label, unit=unit, position=n + 1)
        Field.objects.create(sheet=self.sheet, key="old_gas", label="Old gas", archived=True, position=9)
        self.page = self.browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.log_in(self.page, "ada", "designer-pass-1")

    def preview(self):
        return self.page.frame_locator("#form-preview-frame")

    def preview_labels(self) -> list[str]:
        """The preview's labels; [] while the frame is being replaced by a newer preview."""
        try:
            return [text.strip() for text in self.preview().locator("#preview-form label").all_inner_texts()]
        except PlaywrightError:
            return []

    def test_dragging_a_field_reorders_the_preview_and_the_entry_form(self):
        self.page.goto(f"{self.live_server_url}/admin/shotsheet/sheet/{self.sheet.pk}/change/")
        wait_until(lambda: self.preview_labels()[:4] == ["Shot key", "Target", "Energy [J]", "Note"])
        assert self.page.locator("#fields-group .inline-related.has_original").count() == 3  # active ones only
        assert "Old gas" in self.page.locator("#archived_fields-group").text_content()  # apart, folded
        more = self.page.locator("#fields-group .inline-related").first.locator("details")
        assert more.count() == 1 and more.get_attribute("open") is None  # the rest folded

        self.page.fill("input[name='fields-1-unit']", "mJ")  # live: edited, not saved
        wait_until(lambda: "Energy [mJ]" in self.preview_labels())

        handles = self.page.locator("#fields-group .inline-related.has_original h3")
        handles.nth(1).evaluate("h3 => h3.scrollIntoView({block: 'start'})")
        handles.nth(2).drag_to(handles.nth(1), target_position={"x": 10, "y": 2})  # Note above Energy
        wait_until(lambda: self.preview_labels()[:4] == ["Shot key", "Target", "Note", "Energy [mJ]"])
        handles.nth(0).evaluate("h3 => h3.scrollIntoView({block: 'start'})")  # both in view, as a person scrolls
        handles.nth(1).drag_to(handles.nth(0), target_position={"x": 10, "y": 2})  # and above Target
        wait_until(lambda: self.preview_labels()[:4] == ["Shot key", "Note", "Target", "Energy [mJ]"])
        self.page.click("input[name='_save']")
        self.page.wait_for_selector(".messagelist .success")
        assert field_keys(self.sheet) == ["note", "target", "energy"]

        self.page.goto(f"{self.live_server_url}/sheets/designer/new/")
        labels = self.page.locator("#entry-form label").all_inner_texts()
        assert [label.strip() for label in labels][:4] == ["Shot key", "Note", "Target", "Energy [mJ]"]
        assert not [line for line in self.console if "Content Security Policy" in line or "Refused" in line]
