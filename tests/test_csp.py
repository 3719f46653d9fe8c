"""Content-Security-Policy: every page carries it, and no page needs what it forbids."""

from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse

from relay import store as relay_store
from shotsheet import schema
from shotsheet.entries import create_entry, update_entry
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
                self.found.append(f'<{tag} style="{value}"> at line {self.getpos()[0]}')
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f'<{tag} {name}="javascript:…"> at line {self.getpos()[0]}')


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder.found


@dataclass
class Page:
    """A page to check: how to reach it, and the status it answers with (200 unless named)."""

    name: str
    response: Callable[[], HttpResponse]
    status: int = 200


def get(client, url: str, status: int = 200) -> Page:
    return Page(url, lambda: client.get(url), status)


@pytest.fixture
def every_page(admin_client, client, db, mongo_db, settings) -> list[Page]:
    """Every page of the system, with data in it so the pages show their full markup: the import
    preview, an edit conflict and the lock-out page included."""
    sheet = Sheet.objects.create(name="CSP sheet", slug="csp", experiment="CSP")
    Field.objects.create(sheet=sheet, key="energy", label="Energy", unit="J", type=Field.Type.FLOAT, position=0)
    Field.objects.create(sheet=sheet, key="note", label="Note", type=Field.Type.TEXT, position=1)
    Field.objects.create(sheet=sheet, key="when", label="When", type=Field.Type.DATETIME, position=2)
    version = schema.save_version(sheet)
    entry = create_entry(sheet, version, {"energy": 1.5, "note": "n"}, author="admin", shot_key="CSP-20261124-000001")
    relay_store.save_state({"rate": 1.0}, {"shot_key": "CSP-20261124-000002"})
    upload = admin_client.post(
        "/sheets/csp/import/",
        {"file": SimpleUploadedFile("log.csv", b"shot_key,Energy [J],Remarks\nCSP-20261124-000003,abc,x\n")},
    )
    entry_url = f"/sheets/csp/entries/{entry['_id']}/"
    update_entry(sheet, entry, 1, {"energy": 2.5, "note": "n"}, author="other", comment="", shot_key="")

    def conflict():
        return admin_client.post(entry_url, {"energy": "3,5", "note": "n", "rev": "1", "shot_key": "", "comment": ""})

    def locked_out():
        get_user_model().objects.create_user("pierre", password="right-pass-for-test-7")
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            client.post("/accounts/login/", {"username": "pierre", "password": f"wrong-{attempt}"})
        return client.post("/accounts/login/", {"username": "pierre", "password": "wrong-again"})

    return [
        get(admin_client, url)
        for url in [
            "/sheets/",
            "/sheets/csp/",
            "/sheets/csp/?f_energy_min=1",
            "/sheets/csp/new/",
            entry_url,
            "/sheets/csp/import/",
            upload["Location"],
            "/sheets/shot/CSP-20261124-000009/",
            "/relay/",
            "/watcher/",
            "/watcher/search/",
            "/watcher/shot/CSP-20261124-000001/",
            "/watcher/dead-letters/",
            "/admin/",
            "/admin/shotsheet/sheet/",
            f"/admin/shotsheet/sheet/{sheet.pk}/change/",
            "/api/tokens/",
            "/api/v1/docs/",
            "/admin/api/apitoken/",
        ]
    ] + [
        get(client, "/accounts/login/"),
        Page("edit conflict", conflict, 409),
        Page("lock-out", locked_out, settings.AXES_HTTP_RESPONSE_CODE),
        Page("a new API token", lambda: admin_client.post("/api/tokens/", {"name": "csp", "expires": ""})),
    ]


def test_every_page_has_the_policy_header_and_no_inline_code(every_page):
    problems = {}
    for page in every_page:
        response = page.response()
        assert response.status_code == page.status, (page.name, response.status_code)
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (page.name, policy)
        assert "default-src 'self'" in policy and "object-src 'none'" in policy, (page.name, policy)
        found = inline_code(response.content.decode())
        if found:
            problems[page.name] = found
    assert problems == {}


def test_every_page_includes_the_import_preview_the_conflict_and_the_lock_out(every_page):
    texts = {
        page.name: page.response().content.decode()
        for page in every_page
        if page.name.startswith(("/sheets/csp/import/", "edit conflict", "lock-out"))
    }
    assert any('id="import-report"' in text for text in texts.values())  # the preview, with its report
    assert 'id="conflict-fields"' in texts["edit conflict"]  # the comparison, theirs and yours
    assert "Too many failed logins" in texts["lock-out"]


def test_the_inline_code_finder_finds_what_the_policy_blocks():
    html = (
        '<script>alert(1)</script><script src="/s.js"></script><script type="application/json">{}</script>'
        '<a href="javascript:x()" onclick="y()" style="color:red">'
    )
    assert len(inline_code(html)) == 4
