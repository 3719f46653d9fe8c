"""The API's docs page (Swagger UI from drf-spectacular-sidecar) works in Chromium under the
Content-Security-Policy: no CDN, nothing inline refused, the operations shown from the schema."""

import pytest
from django.contrib.auth import get_user_model

from tests.browser import BrowserTestCase
from tests.test_csp_browser import RECORD_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("mongo_db")]


class DocsPage(BrowserTestCase):
    def test_the_docs_page_shows_every_operation_with_nothing_refused(self):
        get_user_model().objects.create_user("ada", password="docs-pass-123")
        context = self.browser.new_context()
        context.add_init_script(RECORD_VIOLATIONS)
        console: list[str] = []
        requested: list[str] = []
        page = context.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("request", lambda request: requested.append(request.url))
        try:
            self.log_in(page, "ada", "docs-pass-123")
            page.goto(f"{self.live_server_url}/api/v1/docs/")
            page.wait_for_selector(".opblock-summary-path")  # Swagger UI ran and read the schema (session)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/api/v1/sheets/{slug}/entries/" in [p.replace("\u200b", "") for p in paths]
            violations = page.evaluate("window.cspViolations")
            refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
            assert (violations, refused) == ([], [])
            assert all(url.startswith(self.live_server_url) for url in requested), requested  # no CDN
        finally:
            context.close()
