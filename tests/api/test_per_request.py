"""What changes between two requests shows in the second: nothing a request checks (the token, the
view groups, the sheet's fields) is kept from one request to the next where it could go stale."""

import csv
import io
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from shotsheet import schema
from shotsheet import selectors as shotsheet_selectors
from shotsheet.models import Field, SchemaVersion, Sheet

ENTRIES = "/api/v1/sheets/apisheet/entries/"


def test_a_revoked_token_is_refused_at_the_very_next_request(api_entries, member, token_of):
    token, plain = token_of(member)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert client.get(ENTRIES).status_code == 200
    tokens.revoke(token)
    assert client.get(ENTRIES).status_code == 401
    assert client.get("/api/v1/sheets/").status_code == 401


def test_a_token_is_refused_from_the_moment_it_expires(api_entries, member, token_of):
    token, plain = token_of(member, expires=timezone.now() + timedelta(days=1))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert client.get(ENTRIES).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert client.get(ENTRIES).status_code == 401


def test_leaving_the_view_group_is_a_404_at_the_very_next_request(api_entries, member, bearer):
    client = bearer(member)
    assert client.get(ENTRIES).status_code == 200
    assert client.get("/api/v1/sheets/apisheet/").status_code == 200
    member.groups.remove(Group.objects.get(name="laser"))
    assert client.get(ENTRIES).status_code == 404
    assert client.get("/api/v1/sheets/apisheet/").status_code == 404
    assert client.get("/api/v1/sheets/").json()["results"] == []
    member.groups.add(Group.objects.get(name="laser"))
    assert client.get(ENTRIES).status_code == 200


def test_a_field_edited_in_the_admin_shows_in_the_next_response(api_entries, api_sheet, member, bearer):
    client = bearer(member)
    before = client.get(ENTRIES).json()
    assert before["fields"]["energy"]["unit"] == "J"
    assert "Energy [J]" in next(csv.reader(io.StringIO(client.get(ENTRIES, {"format": "csv"}).content.decode())))
    Field.objects.filter(sheet=api_sheet, key="energy").update(label="Pulse energy", unit="mJ")
    schema.save_version(api_sheet)  # what the admin's save does
    after = client.get(ENTRIES).json()
    assert after["fields"]["energy"] == {"label": "Pulse energy", "type": "float", "unit": "mJ"}
    header = next(csv.reader(io.StringIO(client.get(ENTRIES, {"format": "csv"}).content.decode())))
    assert "Pulse energy [mJ]" in header and "Energy [J]" not in header
    detail = client.get("/api/v1/sheets/apisheet/").json()
    assert detail["schema_version"] == 2 and [v["number"] for v in detail["schema_versions"]] == [2, 1]
    assert detail["schema_versions"][1]["fields"][1]["unit"] == "J"  # the old version as it was


def test_a_field_changed_without_a_new_version_shows_in_the_next_response(api_entries, api_sheet, member, bearer):
    """A field saved outside the admin (a shell) gets its version at the next write; the API shows
    the fields as they are now at once."""
    client = bearer(member)
    assert client.get("/api/v1/sheets/apisheet/").json()["fields"][2]["unit"] == ""
    Field.objects.filter(sheet=api_sheet, key="count").update(unit="shots")
    Field.objects.create(sheet=api_sheet, key="gain", label="Gain", type=Field.Type.FLOAT, unit="dB", position=9)
    fields = client.get("/api/v1/sheets/apisheet/").json()["fields"]
    assert fields[2]["unit"] == "shots" and fields[-1]["key"] == "gain" and fields[-1]["unit"] == "dB"
    assert client.get(ENTRIES).json()["fields"]["gain"]["unit"] == "dB"


def test_saved_versions_are_decoded_once_per_process_not_per_request(api_entries, api_sheet, member, bearer):
    """A saved version never changes: its fields are read and typed at the first request only (the
    current fields are read at every request, above)."""
    client = bearer(member)
    assert client.get(ENTRIES).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get(ENTRIES).status_code == 200
    read = [q["sql"] for q in queries.captured_queries if "shotsheet_schemaversion" in q["sql"]]
    assert read and not any('"shotsheet_schemaversion"."fields"' in sql for sql in read), read
    Field.objects.filter(sheet=api_sheet, key="energy").update(unit="kJ")
    schema.save_version(api_sheet)  # a new version is read at the next request
    assert client.get(ENTRIES).json()["fields"]["energy"]["unit"] == "kJ"


def test_the_sheets_a_user_may_view_are_found_in_one_query_as_sheet_allows_says(db, member, outsider):
    """The sheet list and the shot join ask which sheets a user may view: one query for any number
    of sheets (it was one per sheet with view groups), the same answer as Sheet.allows."""
    laser, other = Group.objects.get_or_create(name="laser")[0], Group.objects.create(name="other")
    admin = get_user_model().objects.create_superuser("boss", password="boss-pass-123")
    for n, groups in enumerate([[], [laser], [other], [laser, other], [other], [laser]]):
        sheet = Sheet.objects.create(name=f"Sheet {n}", slug=f"sheet{n}", experiment="API", active=n % 2 == 0)
        sheet.view_groups.set(groups)
    for user in (member, outsider, admin):
        with CaptureQueriesContext(connection) as queries:
            visible = shotsheet_selectors.visible_sheets(user)
        assert len(queries.captured_queries) <= 2, [q["sql"] for q in queries.captured_queries]
        assert visible == [sheet for sheet in Sheet.objects.all() if sheet.allows(user, "view")], user
    assert [s.slug for s in shotsheet_selectors.visible_sheets(member)] == ["sheet0", "sheet1", "sheet3", "sheet5"]


def test_a_version_of_the_same_id_and_number_after_a_database_restore_is_read_afresh(
    api_entries, api_sheet, member, bearer
):
    """A restored Django database (or the next test's) may give a version the id and number of one this
    process already typed, with other fields: the cache is keyed by the id and the time it was saved."""
    client = bearer(member)
    first = client.get("/api/v1/sheets/apisheet/").json()["schema_versions"]
    assert [v["number"] for v in first] == [1]
    old = SchemaVersion.objects.get(sheet=api_sheet, number=1)
    fields = [{**f, "unit": "kJ"} if f["key"] == "energy" else f for f in old.fields]
    old.delete()
    SchemaVersion.objects.create(pk=old.pk, sheet=api_sheet, number=1, fields=fields)
    again = client.get("/api/v1/sheets/apisheet/").json()["schema_versions"]
    assert [f["unit"] for f in again[0]["fields"] if f["key"] == "energy"] == ["kJ"]
