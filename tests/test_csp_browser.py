"""The pages still work in Chromium under the Content-Security-Policy: nothing refused, live parts live."""

import pytest
from django.contrib.auth import get_user_model

from relay import store as relay_store
from shotsheet import schema
from shotsheet.entries import create_entry
from shotsheet.models import Field, Sheet
from tests.browser import BrowserTestCase, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]

# Runs before any page script (Playwright's init scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`);
});
"""


class PagesUnderThePolicy(BrowserTestCase):
    def setUp(self):
        get_user_model().objects.create_superuser("ada", "a@example.org", "csp-pass-123")
        sheet = Sheet.objects.create(name="Policy sheet", slug="policy", experiment="POL")
        Field.objects.create(sheet=sheet, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT, position=0)
        Field.objects.create(sheet=sheet, key="when", label="When", type=Field.Type.DATETIME, position=1)
        create_entry(sheet, schema.save_version(sheet), {"energy": 2.5}, author="ada", shot_key="POL-20261124-000001")
        relay_store.save_state({"rate": 1.0}, {"shot_key": "POL-20261124-000002"})
        self.context = self.browser.new_context()
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.console: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.log_in(self.page, "ada", "csp-pass-123")

    def tearDown(self):
        self.context.close()

    def assert_nothing_refused(self, url: str) -> None:
        violations = self.page.evaluate("window.cspViolations")
        refused = [line for line in self.console if "Content Security Policy" in line or "Refused to" in line]
        assert (violations, refused) == ([], []), url

    def test_main_pages_run_their_scripts_and_styles_under_the_policy(self):
        base = self.live_server_url
        self.page.goto(f"{base}/sheets/policy/")
        self.page.wait_for_selector("#live-state:has-text('live')")  # live_table.js ran, its websocket connected
        number_filter = self.page.locator("input.filter-input[inputmode]").first
        font_size = float(self.page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
        assert abs(number_filter.bounding_box()["width"] - 6 * font_size * 0.875) < 0.5 * font_size  # 6em, small
        self.page.wait_for_selector("#grid[data-loaded] .tabulator-row")  # the grid (Tabulator) drew its rows
        self.page.wait_for_selector("#plot canvas")  # uPlot drew
        self.page.click("#column-chooser summary")
        self.page.click("input[name=density][value=comfortable] + label")
        self.assert_nothing_refused("/sheets/policy/")

        self.page.goto(f"{base}/sheets/policy/?view=table")
        self.page.wait_for_selector("#live-state:has-text('live')")  # the plain table: live_table.js
        self.assert_nothing_refused("/sheets/policy/?view=table")

        self.page.goto(f"{base}/sheets/policy/new/")
        wait_until(lambda: self.page.evaluate("document.activeElement && document.activeElement.id") == "id_energy")
        self.assert_nothing_refused("/sheets/policy/new/")

        self.page.goto(f"{base}/relay/")
        self.page.wait_for_selector("#live-state:has-text('live')")  # status.js ran
        self.assert_nothing_refused("/relay/")

        self.page.goto(f"{base}/watcher/")
        self.page.wait_for_selector("#live-state:has-text('live')")
        self.assert_nothing_refused("/watcher/")

        for path in ("/sheets/", "/watcher/search/", "/admin/", "/admin/shotsheet/sheet/1/change/"):
            self.page.goto(f"{base}{path}")
            self.page.wait_for_load_state("load")
            self.assert_nothing_refused(path)

        # The policy is in force and the recorder sees what it refuses: an injected inline script does not run.
        self.page.evaluate("""() => { const s = document.createElement("script");
                                      s.textContent = "window.inlineRan = true"; document.body.append(s); }""")
        wait_until(lambda: self.page.evaluate("window.cspViolations.length") > 0)
        assert self.page.evaluate("window.inlineRan") is None
