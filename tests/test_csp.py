"""Content-Security-Policy: every page carries it, and no page needs what it forbids."""

from html.parser import HTMLParser

import pytest

from relay import store as relay_store
from shotsheet import schema
from shotsheet.entries import create_entry
from shotsheet.models import Field, Sheet

# Script types a browser does not execute (data blocks such as Django's json_script).
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


class InlineCodeFinder(HTMLParser):
    """Collects what a policy without 'unsafe-inline' blocks: inline scripts, on* handlers, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") not in DATA_SCRIPT_TYPES:
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style":
            self.found.append(f"inline <style> at line {self.getpos()[0]}")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> at line {self.getpos()[0]}")
            if name == "style":
                self.found.append(f"<{tag} style=\"{value}\"> at line {self.getpos()[0]}")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=\"javascript:…\"> at line {self.getpos()[0]}")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.found


@pytest.fixture
def every_page(db, mongo_db):
    """The URL of every page of the system, with data in it so the pages show their full markup."""
    sheet = Sheet.objects.create(name="CSP sheet", slug="csp", experiment="CSP")
    Field.objects.create(sheet=sheet, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT, position=0)
    Field.objects.create(sheet=sheet, key="note", label="Note", type=Field.Type.TEXT, position=1)
    Field.objects.create(sheet=sheet, key="when", label="When", type=Field.Type.DATETIME, position=2)
    version = schema.save_version(sheet)
    entry = create_entry(sheet, version, {"energy": 1.5, "note": "n"}, author="admin",
                         shot_key="CSP-20261124-000001")
    relay_store.save_state({"rate": 1.0}, {"shot_key": "CSP-20261124-000002"})
    return [
        "/accounts/login/", "/sheets/", "/sheets/csp/", "/sheets/csp/?f_energy_min=1", "/sheets/csp/new/",
        f"/sheets/csp/entries/{entry['_id']}/", "/sheets/csp/import/", "/sheets/shot/CSP-20261124-000009/",
        "/relay/", "/watcher/", "/watcher/search/", "/watcher/shot/CSP-20261124-000001/", "/watcher/dead-letters/",
        "/admin/", "/admin/shotsheet/sheet/", f"/admin/shotsheet/sheet/{sheet.pk}/change/",
    ]


def test_every_page_has_the_policy_header_and_no_inline_code(admin_client, every_page):
    problems = {}
    for url in every_page:
        response = admin_client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (url, policy)
        assert "default-src 'self'" in policy and "object-src 'none'" in policy, (url, policy)
        found = inline_code(response.content.decode())
        if found:
            problems[url] = found
    assert problems == {}


def test_the_inline_code_finder_finds_what_the_policy_blocks():
    html = ('<script>alert(1)</script><script src="/s.js"></script><script type="application/json">{}</script>'
            '<a href="javascript:x()" onclick="y()" style="color:red">')
    assert len(inline_code(html)) == 4
