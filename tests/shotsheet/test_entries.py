"""An entry's shot identity, editing it, the edit conflict and the entry's own keys (issue 10)."""

import re
from datetime import UTC, datetime

import pytest

from relay import store as relay_store
from shotsheet import importer, schema, store
from shotsheet.entries import entry_document, update_entry
from shotsheet.export import export_rows

LASER_NS = 1_764_000_000_123_456_789  # 2025-11-24 16:00:00.123456789 UTC


def relay_shot(number: int, laser_ts_ns: int = LASER_NS) -> dict:
    return {
        "shot_key": f"TST-20251124-{number:06d}",
        "shot_number": number,
        "laser_ts_ns": laser_ts_ns,
        "event_id": f"e{number}",
        "source": "laser",
    }


def test_an_entry_takes_its_number_from_any_well_formed_key_and_its_laser_time_from_the_relays_record(
    admin_client, sheet, mongo_db
):
    relay_store.record_shots([relay_shot(41), relay_shot(43, LASER_NS + 2_000_000)])
    relay_store.save_state({"rate": 1.0}, relay_shot(43, LASER_NS + 2_000_000))  # 41 is not the latest
    for key in ("TST-20251124-000041", "TST-r2-20251124-000007", "shot twelve"):
        response = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1", "shot_key": key})
        assert response.status_code == 302
    entries = {e["shot_key"]: e for e in mongo_db["entries"].find({"sheet": "test"})}
    assert entries["TST-20251124-000041"]["shot_number"] == 41
    assert entries["TST-20251124-000041"]["laser_ts_ns"] == LASER_NS
    assert entries["TST-r2-20251124-000007"]["shot_number"] == 7  # well formed, never seen by the relay
    assert entries["TST-r2-20251124-000007"]["laser_ts_ns"] is None
    assert entries["shot twelve"]["shot_number"] is None and entries["shot twelve"]["laser_ts_ns"] is None


def test_imported_entries_get_their_shot_numbers_and_laser_times(sheet, mongo_db):
    relay_store.record_shots([relay_shot(2)])
    grid = importer.Grid(
        "log.csv",
        [
            ["Shot", "Energy [J]", "Target"],
            ["TST-20251124-000001", "1.5", "Al"],
            ["TST-20251124-000002", "2.5", "Cu"],
            ["", "3.5", "Al"],
        ],
    )
    stored, checked = importer.import_grid(sheet, grid, author="ada")
    assert (stored, checked.problems) == (3, [])
    entries = {e["values"]["energy"]: e for e in mongo_db["entries"].find({"sheet": "test"})}
    assert [entries[e]["shot_number"] for e in (1.5, 2.5, 3.5)] == [1, 2, None]
    assert [entries[e]["laser_ts_ns"] for e in (1.5, 2.5, 3.5)] == [None, LASER_NS, None]


def test_the_plot_says_how_many_entries_have_no_value_for_its_axes(admin_client, sheet, make_entry):
    make_entry(sheet, shot_key="TST-20251124-000001", energy=1.0)
    make_entry(sheet, shot_key="TST-20251124-000002")
    make_entry(sheet, shot_key=None, energy=3.0)
    make_entry(sheet, shot_key="legacy shot 4", energy=4.0)
    make_entry(sheet, shot_key="TST-20251124-000005", energy=None)
    data = admin_client.get("/sheets/test/plot.json", {"y": "energy", "x": "shot"}).json()
    assert data["x"] == [1, 2] and data["y"] == [1.0, 1.0]
    assert data["missing"] == "Not plotted: of 5 entries, 2 have no shot number, 1 has no Energy [J]."
    complete = admin_client.get("/sheets/test/plot.json", {"y": "energy", "x": "time"}).json()
    assert complete["missing"] == "Not plotted: of 5 entries, 1 has no Energy [J]."


def test_editing_the_shot_key_saves_it_with_history_and_derives_number_and_laser_time_again(
    admin_client, sheet, make_entry, mongo_db
):
    relay_store.record_shots([relay_shot(9)])
    entry = make_entry(sheet, shot_key="TST-20251124-000008")
    url = f"/sheets/test/entries/{entry['_id']}/"
    response = admin_client.post(
        url, {"target": "Al", "energy": "1.0", "shot_key": "TST-20251124-000009", "rev": "1", "comment": ""}
    )
    assert response.status_code == 302
    stored = store.get_entry(entry["_id"])
    assert (stored["shot_key"], stored["shot_number"], stored["laser_ts_ns"]) == ("TST-20251124-000009", 9, LASER_NS)
    assert stored["rev"] == 2
    assert stored["history"][0]["changes"] == {"shot_key": ["TST-20251124-000008", "TST-20251124-000009"]}
    page = admin_client.get(url).content.decode()
    assert "TST-20251124-000008 → TST-20251124-000009" in page
    assert "shot number 9 ·\n    laser time 2025-11-24 17:00:00.123456 CET" in page  # the lab's zone
    assert admin_client.get("/sheets/shot/TST-20251124-000009/")["Location"].endswith(url)  # the table follows
    admin_client.post(url, {"target": "Al", "energy": "1.0", "shot_key": "", "rev": "2", "comment": ""})
    cleared = store.get_entry(entry["_id"])
    assert (cleared["shot_key"], cleared["shot_number"], cleared["laser_ts_ns"]) == (None, None, None)


def hidden_rev(html: str) -> str:
    return re.search(r'name="rev" value="(\d+)"', html).group(1)


def overwrite_rev(html: str) -> str:
    return re.search(r'name="overwrite" value="(\d+)"', html).group(1)


def test_a_refused_edit_shows_what_changed_and_overwrites_only_when_asked_to(admin_client, sheet, make_entry):
    entry = make_entry(sheet, shot_key="TST-20251124-000001", energy=1.0)
    url = f"/sheets/test/entries/{entry['_id']}/"
    opened_by_b = admin_client.get(url).content.decode()
    assert (
        admin_client.post(
            url,
            {
                "target": "Al",
                "energy": "2.5",
                "shot_key": "TST-20251124-000001",
                "rev": hidden_rev(opened_by_b),
                "comment": "by A",
            },
        ).status_code
        == 302
    )
    b_typed = {"target": "Cu", "energy": "3.5", "shot_key": "TST-20251124-000001", "comment": ""}
    refused = admin_client.post(url, {**b_typed, "rev": hidden_rev(opened_by_b)})
    html = refused.content.decode()
    assert refused.status_code == 409 and "changed by someone else" in html
    rows = dict(re.findall(r'<tr data-field="(\w+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {"energy", "target", "comment"}
    assert re.search(r'class="theirs">2.5<.*class="yours">3.5<.*admin', rows["energy"], re.S)
    assert re.search(r'class="theirs">Al<.*class="yours">Cu<', rows["target"], re.S)
    assert re.search(r'class="theirs">by A<.*class="yours"><', rows["comment"], re.S)
    assert 'value="3.5"' in html  # B's values stay in the form

    again = admin_client.post(url, {**b_typed, "rev": hidden_rev(html)})  # a plain Save on the conflict page
    assert again.status_code == 409 and store.get_entry(entry["_id"])["values"]["energy"] == 2.5

    admin_client.post(
        url, {"target": "Al", "energy": "4.0", "shot_key": "TST-20251124-000001", "rev": "2", "comment": "by A"}
    )  # A saves again while B looks at the comparison
    stale = admin_client.post(url, {**b_typed, "rev": hidden_rev(html), "overwrite": overwrite_rev(html)})
    assert stale.status_code == 409 and store.get_entry(entry["_id"])["values"]["energy"] == 4.0
    assert 'class="theirs">4.0<' in stale.content.decode()

    chosen = admin_client.post(
        url, {**b_typed, "rev": hidden_rev(html), "overwrite": overwrite_rev(stale.content.decode())}
    )
    assert chosen.status_code == 302
    stored = store.get_entry(entry["_id"])
    assert (stored["values"]["energy"], stored["values"]["target"], stored["comment"], stored["rev"]) == (
        3.5,
        "Cu",
        "",
        4,
    )
    assert stored["history"][-1]["changes"] == {"energy": [4.0, 3.5], "target": ["Al", "Cu"], "comment": ["by A", ""]}


def test_a_field_cannot_take_a_key_or_label_the_entry_itself_uses(admin_client, sheet):
    from django.core.exceptions import ValidationError

    from shotsheet.models import RESERVED_NAMES, Field

    for key, label in [
        ("comment", "Remark"),
        ("Shot_Number", "Shot no."),
        ("laser_ts_ns", "Laser"),
        ("remark", "Comment"),
        ("shot_no", "Shot"),
        ("created_at", "created"),
    ]:
        with pytest.raises(ValidationError, match="the entry's own"):
            Field(sheet=sheet, key=key, label=label, type=Field.Type.TEXT).full_clean()
    Field(sheet=sheet, key="gas_comment", label="Gas comment", type=Field.Type.TEXT).full_clean()  # fine
    older = Field.objects.create(sheet=sheet, key="comment", label="Comment", type=Field.Type.TEXT, position=9)
    with pytest.raises(ValidationError, match="choose another label"):
        older.full_clean()  # made before the rule: its stored key stays, its label must change
    older.label = "Operator remark"
    older.full_clean()
    response = admin_client.post(
        "/admin/shotsheet/sheet/add/",
        {
            "name": "New",
            "slug": "new",
            "experiment": "NEW",
            "active": "on",
            "fields-TOTAL_FORMS": "1",
            "fields-INITIAL_FORMS": "0",
            "fields-MIN_NUM_FORMS": "0",
            "fields-MAX_NUM_FORMS": "1000",
            "fields-0-key": "comment",
            "fields-0-label": "Comment",
            "fields-0-type": "text",
            "fields-0-position": "0",
        },
    )
    assert response.status_code == 200 and "the entry&#x27;s own" in response.content.decode()
    # every name an entry document or an export uses is reserved
    entry = entry_document(
        sheet, 1, {}, author="ada", shot_key=None, comment="", created=datetime.now(UTC), import_id="i"
    )
    header, _ = export_rows(schema.schema_for(sheet), {"sheet": "test"}, [("created", -1)])
    reserved = {name.lower() for name in RESERVED_NAMES}
    assert set(entry) <= reserved
    assert {name.split(" [")[0].lower() for name in header[: header.index("comment") + 1]} <= reserved  # created [zone]


def test_the_entry_comment_is_shown_in_the_table(admin_client, sheet, make_entry):
    entry = make_entry(sheet, energy=2.0)
    update_entry(sheet, store.get_entry(entry["_id"]), 1, {}, author="ada", comment="refocused <OAP>", shot_key=None)
    page = admin_client.get("/sheets/test/").content.decode()
    assert "<th>comment</th>" in page and "<td>refocused &lt;OAP&gt;</td>" in page


def test_the_form_and_the_import_store_entries_of_one_shape(admin_client, sheet, mongo_db):
    """One builder (entries.entry_document): an entry typed in the form and one imported differ only
    in what the import adds (its id), never in the keys both have."""
    admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1", "shot_key": "TST-20261124-000001"})
    importer.import_grid(
        sheet,
        importer.Grid("log.csv", [["Energy [J]", "target", "shot key"], ["2", "Cu", "TST-20261124-000002"]]),
        author="t",
    )
    typed = mongo_db["entries"].find_one({"shot_key": "TST-20261124-000001"})
    imported = mongo_db["entries"].find_one({"shot_key": "TST-20261124-000002"})
    assert set(imported) - set(typed) == {"import_id"} and set(typed) <= set(imported)
    assert imported["daq"] is None and imported["shot_number"] == 2 and imported["schema_version"] == 1
