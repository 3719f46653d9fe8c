"""The API's skeleton: tokens, sessions, read-only, errors in one shape, CSV, the sheets endpoints."""

import csv
import io

from django.contrib.auth import get_user_model
from django.test import Client


def test_a_member_reads_the_sheets_it_may_view_with_a_token(api_sheet, member, outsider, bearer):
    listed = bearer(member).get("/api/v1/sheets/")
    assert listed.status_code == 200, listed.content
    (sheet,) = listed.json()["results"]
    assert sheet["slug"] == "apisheet"
    assert {"key": "energy", "unit": "J", "type": "float"}.items() <= sheet["fields"][1].items()
    assert sheet["fields"][0]["choices"] == ["Al", "Cu", "Ti"]
    assert bearer(outsider).get("/api/v1/sheets/").json()["results"] == []


def test_sheet_detail_has_its_schema_versions(api_entries, member, bearer):
    detail = bearer(member).get("/api/v1/sheets/apisheet/").json()
    assert detail["schema_version"] == 1
    assert [v["number"] for v in detail["schema_versions"]] == [1]
    assert detail["schema_versions"][0]["fields"][1]["key"] == "energy"


def test_no_token_is_a_401_in_the_error_shape(api_sheet, db):
    response = Client().get("/api/v1/sheets/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {"errors": [{"parameter": None, "problem": response.json()["errors"][0]["problem"]}]}


def test_a_browser_session_works_too(api_sheet, member):
    client = Client()
    client.force_login(member)
    assert client.get("/api/v1/sheets/apisheet/").status_code == 200


def test_sheets_as_csv(api_sheet, member, bearer):
    for response in (
        bearer(member).get("/api/v1/sheets/?format=csv"),
        bearer(member).get("/api/v1/sheets/", HTTP_ACCEPT="text/csv"),
    ):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0][0] == "slug" and rows[1][0] == "apisheet"
        assert "Energy [J]" in rows[1][-1]


def test_an_unknown_format_is_a_406(api_sheet, member, bearer):
    response = bearer(member).get("/api/v1/sheets/apisheet/?format=xml")
    assert response.status_code == 406
    assert "json" in response.json()["errors"][0]["problem"]


def test_the_admin_sees_every_sheet(api_sheet, bearer, db):
    admin = get_user_model().objects.create_superuser("boss", password="boss-pass-123")
    assert [s["slug"] for s in bearer(admin).get("/api/v1/sheets/").json()["results"]] == ["apisheet"]


def test_entries_newest_first_with_typed_values_and_a_cursor(api_entries, member, bearer):
    client = bearer(member)
    first = client.get("/api/v1/sheets/apisheet/entries/", {"page_size": 2}).json()
    assert first["count"] == 5
    assert [e["shot_key"] for e in first["results"]] == ["API-20261124-000005", "API-20261124-000004"]
    assert first["fields"]["energy"] == {"label": "Energy", "type": "float", "unit": "J"}
    assert first["results"][1]["values"]["when"] == "2026-11-24T09:30:00Z"
    assert first["results"][0]["created"].endswith("Z")
    seen = [e["id"] for e in first["results"]]
    url = first["next"]
    while url:
        page = client.get(url).json()
        seen += [e["id"] for e in page["results"]]
        url = page["next"]
    assert seen == [e["_id"] for e in reversed(api_entries)]
    one = client.get(f"/api/v1/sheets/apisheet/entries/{api_entries[0]['_id']}/").json()
    assert one["values"]["energy"] == 1.5 and one["history"] == []


def test_the_sheet_list_pages_by_cursor_newest_first(db, member, bearer):
    from shotsheet.models import Sheet

    for n in range(5):
        Sheet.objects.create(name=f"Sheet {n}", slug=f"s{n}", experiment="X")
    client, seen, url, query = bearer(member), [], "/api/v1/sheets/", {"page_size": 2}
    while url:
        page = client.get(url, query).json()
        assert page["count"] == 5
        seen += [sheet["slug"] for sheet in page["results"]]
        url, query = page["next"], None
    assert seen == ["s4", "s3", "s2", "s1", "s0"]


def test_a_sql_database_error_is_a_503_not_a_500(api_sheet, member, bearer, monkeypatch):
    from django.db import OperationalError

    from shotsheet import selectors

    client = bearer(member)

    def locked(user):
        raise OperationalError("database is locked")

    monkeypatch.setattr(selectors, "visible_sheets", locked)
    response = client.get("/api/v1/sheets/")
    assert response.status_code == 503
    assert b"locked" not in response.content and response.json()["errors"][0]["problem"]
