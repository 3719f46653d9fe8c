"""Voiding an entry instead of deleting it: a reason, who and when, hidden from the table, plot and
exports unless asked for, kept in the history, restorable; only for those who may change the sheet."""

import csv
import io

import pytest
from django.contrib.auth.models import Group, User

from shotsheet import store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def entries(sheet, make_entry):
    return [make_entry(sheet, shot_key=f"TST-20261202-00000{n}", energy=float(n)) for n in (1, 2, 3)]


def shown_ids(client, **params) -> list[str]:
    page = client.get("/sheets/test/", params).content.decode()
    return [part.split('"')[0] for part in page.split('data-entry="')[1:]]


def csv_rows(client, **params) -> list[dict]:
    return list(csv.DictReader(io.StringIO(client.get("/sheets/test/export.csv", params).content.decode())))


def void(client, entry, reason, rev=None):
    return client.post(
        f"/sheets/test/entries/{entry['_id']}/void/", {"reason": reason, "rev": entry["rev"] if rev is None else rev}
    )


def test_a_voided_entry_is_hidden_from_table_plot_and_exports_but_kept(admin_client, entries):
    first, second, third = entries
    response = void(admin_client, second, "wrong target logged")
    assert response.status_code == 302

    assert shown_ids(admin_client) == [third["_id"], first["_id"]]
    assert [row["entry"] for row in csv_rows(admin_client)] == [third["_id"], first["_id"]]
    assert "voided" not in csv_rows(admin_client)[0]
    plot = admin_client.get("/sheets/test/plot.json", {"y": "energy"}).json()
    assert sorted(plot["y"]) == [1.0, 3.0]

    stored = store.get_entry(second["_id"])
    assert stored["values"]["energy"] == 2.0  # nothing deleted
    assert stored["voided"]["reason"] == "wrong target logged" and stored["voided"]["who"] == "admin"
    assert stored["history"][-1]["changes"]["voided"][0] is None

    assert shown_ids(admin_client, voided="show") == [third["_id"], second["_id"], first["_id"]]
    assert shown_ids(admin_client, voided="only") == [second["_id"]]
    rows = {row["entry"]: row for row in csv_rows(admin_client, voided="show")}
    assert rows[second["_id"]]["voided"].startswith("voided by admin at ")
    assert rows[second["_id"]]["voided"].endswith(": wrong target logged") and rows[first["_id"]]["voided"] == ""

    page = admin_client.get(f"/sheets/test/entries/{second['_id']}/").content.decode()
    assert "This entry is <strong>voided</strong>" in page and "wrong target logged" in page
    assert "<strong>Voided</strong> in force → voided: wrong target logged" in page  # the history, in words


def test_a_voided_entry_can_be_restored(admin_client, entries):
    entry = entries[0]
    void(admin_client, entry, "mistake")
    voided = store.get_entry(entry["_id"])
    response = admin_client.post(f"/sheets/test/entries/{entry['_id']}/void/", {"restore": "1", "rev": voided["rev"]})
    assert response.status_code == 302
    assert entry["_id"] in shown_ids(admin_client)
    restored = store.get_entry(entry["_id"])
    assert restored.get("voided") is None and len(restored["history"]) == 2


def test_voiding_needs_a_reason_and_keeps_what_was_typed_on_a_conflict(admin_client, entries):
    entry = entries[0]
    response = void(admin_client, entry, "   ")
    assert store.get_entry(entry["_id"]).get("voided") is None
    page = admin_client.get(response["Location"]).content.decode()
    assert "Give a reason to void this entry" in page

    response = void(admin_client, entry, "beam dump hit", rev=entry["rev"] - 1)  # someone saved since
    assert store.get_entry(entry["_id"]).get("voided") is None
    page = admin_client.get(response["Location"]).content.decode()
    assert "Someone changed this entry since you opened it" in page and 'value="beam dump hit"' in page


def test_only_users_who_may_change_the_sheet_void(client, sheet, entries):
    viewer = User.objects.create_user("vic", password="pw-viewer-1")
    editors = Group.objects.create(name="editors")
    sheet.change_groups.add(editors)
    client.force_login(viewer)
    assert void(client, entries[0], "not mine to void").status_code == 403
    assert store.get_entry(entries[0]["_id"]).get("voided") is None
    page = client.get(f"/sheets/test/entries/{entries[0]['_id']}/").content.decode()
    assert "void-form" not in page
    assert client.get(f"/sheets/test/entries/{entries[0]['_id']}/void/").status_code == 405


def test_void_filter_values_are_plain_never_operators(admin_client, entries):
    void(admin_client, entries[0], "x")
    for value in ("$ne", '{"$ne": null}', "ONLY", "1"):
        assert len(shown_ids(admin_client, voided=value)) == 2  # anything else: hidden, as by default
