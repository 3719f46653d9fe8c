"""Browser tests in headless Chromium (Debian's), driven by Playwright, against a live daphne."""

import os
import shutil
from unittest import mock

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.contrib.auth import get_user_model

from shotsheet.models import Field, Sheet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


class BrowserTestCase(ChannelsLiveServerTestCase):
    """Chromium and a live daphne for the test class; log in as the superuser `marie` of setUp."""

    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        # Playwright's sync API runs an event loop in this thread; the Django ORM calls of the
        # test itself are ordinary synchronous ones. Scoped to this class so the variable does
        # not leak into other tests' subprocesses (check --deploy refuses it).
        cls.async_unsafe = mock.patch.dict(os.environ, {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"})
        cls.async_unsafe.start()
        super().setUpClass()
        from playwright.sync_api import sync_playwright

        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()
        cls.async_unsafe.stop()

    def logged_in_page(self):
        page = self.browser.new_context().new_page()
        page.set_default_timeout(15000)
        page.goto(f"{self.live_server_url}/accounts/login/")
        page.fill("#id_username", "marie")
        page.fill("#id_password", "browser-pass-123")
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.live_server_url}/sheets/")
        return page


class ShotSheetInTheBrowser(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("marie", "m@example.org", "browser-pass-123")
        self.sheet = Sheet.objects.create(name="Browser sheet", slug="browser", experiment="BRW")
        Field.objects.create(sheet=self.sheet, key="target", label="Target", type=Field.Type.CHOICE,
                             choices="Al\nCu", position=0)
        Field.objects.create(sheet=self.sheet, key="energy", label="Energy", unit="J",
                             type=Field.Type.FLOAT, required=True, max_value=100, position=1)
        Field.objects.create(sheet=self.sheet, key="note", label="Note", type=Field.Type.TEXT, position=2)

    def test_bad_value_shows_its_error_and_keeps_the_other_inputs(self):
        page = self.logged_in_page()
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        page.select_option("#id_target", "Cu")
        page.fill("#id_note", "kept at 3 a.m.")
        page.fill("#id_energy", "150")  # above the field's maximum of 100 J
        page.press("#id_energy", "Enter")  # keyboard-first: Enter saves
        page.wait_for_selector("#error_1_id_energy")
        assert "less than or equal to 100" in page.inner_text("#error_1_id_energy")
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
        watcher.wait_for_selector("#entries td:text-is('42.5')", timeout=5000)  # no reload
        assert watcher.url == f"{self.live_server_url}/sheets/browser/"

    def test_a_field_added_in_the_admin_shows_in_the_entry_form_without_restart(self):
        page = self.logged_in_page()
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        assert page.query_selector("#id_gas_pressure") is None
        page.goto(f"{self.live_server_url}/admin/shotsheet/sheet/{self.sheet.pk}/change/")
        page.fill("input[name='fields-3-key']", "gas_pressure")
        page.fill("input[name='fields-3-label']", "Gas pressure")
        page.select_option("select[name='fields-3-type']", "float")
        page.fill("input[name='fields-3-unit']", "mbar")
        page.fill("input[name='fields-3-position']", "3")
        page.click("input[name='_save']")
        page.wait_for_selector(".messagelist .success")
        page.goto(f"{self.live_server_url}/sheets/browser/new/")
        assert "Gas pressure [mbar]" in page.inner_text("label[for='id_gas_pressure']")
