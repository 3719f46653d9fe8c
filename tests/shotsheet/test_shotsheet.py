"""The shot sheet against the real MongoDB server and Redis channel layer."""

import asyncio
import io
import json
from datetime import datetime

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from openpyxl import load_workbook

from labbook.asgi import application
from relay import store as relay_store
from shotsheet import schema, store
from shotsheet.entries import create_entry
from shotsheet.forms import entry_form_class
from shotsheet.models import Field, Sheet


def test_every_change_to_the_fields_makes_a_new_schema_version_kept_in_mongodb(sheet, mongo_db):
    first = schema.save_version(sheet)
    assert schema.save_version(sheet).number == first.number == 1
    Field.objects.create(sheet=sheet, key="gas", label="Gas", type=Field.Type.TEXT, position=9)
    second = schema.save_version(sheet)
    assert second.number == 2 and [f["key"] for f in second.fields][-1] == "gas"
    saved = mongo_db["schema_versions"].find_one({"_id": "test:v2"})
    assert saved["fields"] == second.fields


def test_generated_form_validates_every_field_type_and_returns_native_types(sheet):
    Field.objects.create(sheet=sheet, key="when", label="When", type=Field.Type.DATETIME, position=10)
    Field.objects.create(sheet=sheet, key="daq", label="DAQ", type=Field.Type.JSON, position=11)
    Field.objects.create(
        sheet=sheet, key="tags", label="Tags", type=Field.Type.MULTI_CHOICE, choices="a\nb", position=12
    )
    fields = schema.save_version(sheet).fields
    form_class = entry_form_class(fields)
    bad = form_class(
        {
            "target": "Fe",
            "energy": "150",
            "shots_on_target": "1.5",
            "note": "UPPER",
            "when": "yesterday",
            "daq": "{oops",
            "tags": ["c"],
        }
    )
    assert not bad.is_valid()
    assert set(bad.errors) == {"target", "energy", "shots_on_target", "note", "when", "daq", "tags"}
    good = form_class(
        {
            "target": "Cu",
            "energy": "12.5",
            "shots_on_target": "3",
            "ok": "on",
            "note": "fine",
            "when": "2026-11-24 10:00",
            "daq": '{"gain": 2}',
            "tags": ["a", "b"],
        }
    )
    assert good.is_valid(), good.errors
    data = good.cleaned_data
    assert (data["energy"], data["shots_on_target"], data["ok"]) == (12.5, 3, True)
    assert isinstance(data["when"], datetime) and data["daq"] == {"gain": 2} and data["tags"] == ["a", "b"]


def test_entry_is_stored_with_native_types_version_author_and_the_relays_shot(admin_client, sheet, mongo_db):
    shot = {"shot_key": "TST-20261124-000042", "shot_number": 42, "laser_ts_ns": 1, "event_id": "e"}
    relay_store.save_state({"rate": 1.0}, shot)
    page = admin_client.get("/sheets/test/new/")
    assert b"TST-20261124-000042" in page.content  # prefilled from the relay
    response = admin_client.post(
        "/sheets/test/new/",
        {
            "target": "Al",
            "energy": "9.75",
            "shots_on_target": "2",
            "ok": "on",
            "shot_key": shot["shot_key"],
            "save_next": "1",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/sheets/test/new/"
    entry = mongo_db["entries"].find_one({"sheet": "test"})
    assert entry["values"]["energy"] == 9.75 and isinstance(entry["values"]["energy"], float)
    assert entry["values"]["shots_on_target"] == 2 and entry["values"]["ok"] is True
    assert entry["shot_key"] == shot["shot_key"] and entry["shot_number"] == 42
    assert entry["schema_version"] == 1 and entry["author"] == "admin"
    assert isinstance(entry["created"], datetime)
    assert b'value="Al" selected' in admin_client.get("/sheets/test/new/").content  # sticky carried over


def test_bad_value_shows_its_error_next_to_the_field_and_keeps_everything_typed(admin_client, sheet, mongo_db):
    response = admin_client.post(
        "/sheets/test/new/",
        {"target": "Cu", "energy": "lots", "shots_on_target": "7", "note": "kept text", "comment": "my comment"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a number (in J)." in html and 'id="error_1_id_energy"' in html
    assert 'value="lots"' in html and 'value="7"' in html and 'value="kept text"' in html and "my comment" in html
    assert mongo_db["entries"].count_documents({}) == 0


def make_entry(sheet, shot_key=None, **values):
    version = schema.save_version(sheet)
    return create_entry(
        sheet, version, {"target": "Al", "energy": 1.0, "ok": False, **values}, author="ada", shot_key=shot_key
    )


def test_edits_are_kept_in_history_and_a_concurrent_edit_is_refused(admin_client, sheet, mongo_db):
    entry = make_entry(sheet)
    url = f"/sheets/test/entries/{entry['_id']}/"
    first = admin_client.post(url, {"target": "Al", "energy": "2.5", "rev": "1", "comment": ""})
    assert first.status_code == 302
    second = admin_client.post(url, {"target": "Cu", "energy": "3.5", "rev": "1", "comment": ""})  # stale rev
    assert second.status_code == 409 and b"changed by someone else" in second.content
    stored = store.get_entry(entry["_id"])
    assert stored["values"]["energy"] == 2.5 and stored["values"]["target"] == "Al" and stored["rev"] == 2
    assert stored["history"][0]["who"] == "admin" and stored["history"][0]["changes"] == {"energy": [1.0, 2.5]}
    assert b"1.0 \xe2\x86\x92 2.5" in admin_client.get(url).content


def test_table_sorts_filters_and_refuses_what_is_not_a_field(admin_client, sheet, mongo_db):
    for energy, target in [(5.0, "Al"), (50.0, "Cu"), (20.0, "Cu")]:
        make_entry(sheet, energy=energy, target=target)
    page = admin_client.get(
        "/sheets/test/", {"f_energy_min": "10", "f_target": "Cu", "sort": "-energy"}
    ).content.decode()
    assert page.index("50.0") < page.index("20.0") and "5.0<" not in page
    bad = admin_client.get("/sheets/test/", {"f_energy_min": "$gt", "sort": "$where"}).content.decode()
    assert "&#x27;$gt&#x27; is not a number" in bad and "cannot sort by &#x27;$where&#x27;" in bad


def test_export_then_read_back_gives_the_same_values_and_types(admin_client, sheet, mongo_db):
    make_entry(sheet, energy=12.25, shots_on_target=3, ok=False, shot_key="TST-20261124-000001")
    exported = json.loads(admin_client.get("/sheets/test/export.json").content)
    assert exported[0]["Energy [J]"] == 12.25 and exported[0]["Shots on target"] == 3
    assert exported[0]["OK"] is False and exported[0]["shot_key"] == "TST-20261124-000001"
    csv_text = admin_client.get("/sheets/test/export.csv").content.decode()
    assert csv_text.splitlines()[0].endswith("Target,Energy [J],Shots on target,OK,Note")
    workbook = load_workbook(io.BytesIO(admin_client.get("/sheets/test/export.xlsx").content))
    rows = list(workbook.active.values)
    assert rows[0][7] == "Energy [J]" and rows[1][7] == 12.25 and rows[1][8] == 3


def test_shot_key_leads_to_its_entry(admin_client, sheet, mongo_db):
    entry = make_entry(sheet, shot_key="TST-20261124-000077")
    response = admin_client.get("/sheets/shot/TST-20261124-000077/")
    assert response.status_code == 302 and entry["_id"] in response["Location"]
    no_entry = admin_client.get("/sheets/shot/TST-20261124-999999/")  # offers to create one
    assert no_entry.status_code == 200 and b"no entry yet" in no_entry.content


@pytest.mark.django_db(transaction=True)
def test_a_saved_entry_reaches_an_open_table_over_the_websocket(mongo_db):
    sheet = Sheet.objects.create(name="Live", slug="live", experiment="LIV")
    Field.objects.create(sheet=sheet, key="energy", label="Energy", type=Field.Type.FLOAT)
    user = get_user_model().objects.create_user("viewer", password="pw-for-test-only")

    async def scenario():
        communicator = WebsocketCommunicator(
            application,
            "/ws/sheets/live/",
            headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
        )
        communicator.scope["user"] = user
        assert (await communicator.connect())[0]
        from asgiref.sync import sync_to_async

        await sync_to_async(
            lambda: create_entry(sheet, schema.save_version(sheet), {"energy": 4.5}, author="ada", shot_key=None)
        )()
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = asyncio.run(scenario())
    assert message["type"] == "entry" and message["entry"]["values"] == ["4.5"]


def test_export_then_import_gives_the_same_values_and_types(admin_client, sheet, mongo_db, tmp_path):
    from django.core.management import call_command

    make_entry(sheet, energy=12.25, shots_on_target=3, ok=True, note="first one", shot_key="TST-20261124-000001")
    make_entry(sheet, energy=0.5, target="Cu", ok=False, shot_key="TST-20261124-000002")
    (tmp_path / "log.csv").write_bytes(admin_client.get("/sheets/test/export.csv").content)
    copy = Sheet.objects.create(name="Copy", slug="copy", experiment="TST")
    for field in sheet.fields.all():
        field.pk, field.sheet = None, copy
        field.save()
    # Every column matched or ignored: the export's own columns by name, its entry times (C) kept.
    call_command(
        "import_entries",
        "copy",
        str(tmp_path / "log.csv"),
        "--ignore",
        "entry",
        "--ignore",
        "author",
        "--ignore",
        "schema_version",
        "--entry-time",
        "C",
    )

    def set_values(sheet_slug):  # values that were set (an unset field reads back empty)
        return {
            e["shot_key"]: {k: v for k, v in e["values"].items() if v not in (None, "")}
            for e in mongo_db["entries"].find({"sheet": sheet_slug})
        }

    original, imported = set_values("test"), set_values("copy")
    assert imported == original
    assert isinstance(imported["TST-20261124-000001"]["shots_on_target"], int)


def test_import_with_a_bad_row_reports_it_and_imports_nothing(sheet, mongo_db, tmp_path):
    from django.core.management import CommandError, call_command

    (tmp_path / "log.csv").write_text("Shot,Energy [J],Target\nS-1,1.5,Al\nS-2,lots,Al\nS-3,2.5,Fe\n")
    with pytest.raises(CommandError, match="2 of 3 rows have errors; nothing was imported"):
        call_command("import_entries", "test", str(tmp_path / "log.csv"))
    assert mongo_db["entries"].count_documents({}) == 0


@pytest.mark.django_db(transaction=True)
def test_the_entry_form_socket_forwards_the_relays_current_shot(mongo_db):
    Sheet.objects.create(name="Form", slug="form", experiment="FRM")
    user = get_user_model().objects.create_user("filler", password="pw-for-test-only")

    async def scenario():
        from channels.layers import get_channel_layer

        communicator = WebsocketCommunicator(
            application,
            "/ws/sheets/form/",
            headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
        )
        communicator.scope["user"] = user
        assert (await communicator.connect())[0]
        await get_channel_layer().group_send(
            "relay.status",
            {
                "type": "relay.status",
                "status": {"rate": 1.0, "last_shot": {"shot_key": "FRM-20261124-000005", "shot_number": 5}},
            },
        )
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert asyncio.run(scenario()) == {
        "type": "relay",
        "last_shot": {"shot_key": "FRM-20261124-000005", "shot_number": 5},
    }


def test_plot_data_follows_the_filters_and_refuses_non_numeric_fields(admin_client, sheet, mongo_db):
    for energy, target in [(5.0, "Al"), (50.0, "Cu"), (20.0, "Cu")]:
        make_entry(sheet, energy=energy, target=target)
    data = admin_client.get("/sheets/test/plot.json", {"y": "energy", "x": "time", "f_target": "Cu"}).json()
    assert data["y"] == [50.0, 20.0] and data["label"] == "Energy [J]" and len(data["x"]) == 2
    refused = admin_client.get("/sheets/test/plot.json", {"y": "target"})
    assert refused.status_code == 400 and "not a numeric field" in refused.json()["error"]


def test_daq_profile_is_snapshotted_into_each_entry(sheet, mongo_db):
    from shotsheet.models import DaqProfile

    sheet.daq_profile = DaqProfile.objects.create(name="gain high", config={"gain": 20, "cameras": ["top"]})
    sheet.save()
    entry = make_entry(sheet)
    sheet.daq_profile.config = {"gain": 1}
    sheet.daq_profile.save()
    stored = store.get_entry(entry["_id"])
    assert stored["daq"]["profile"] == "gain high" and stored["daq"]["config"] == {"gain": 20, "cameras": ["top"]}


def test_per_sheet_permissions_through_groups(client, sheet, mongo_db):
    from django.contrib.auth.models import Group

    physicists, visitors = Group.objects.create(name="physicists"), Group.objects.create(name="visitors")
    sheet.view_groups.set([physicists, visitors])
    sheet.add_groups.set([physicists])
    visitor = get_user_model().objects.create_user("visitor", password="pw-for-test-only")
    visitor.groups.add(visitors)
    outsider = get_user_model().objects.create_user("outsider", password="pw-for-test-only")

    client.force_login(visitor)
    assert client.get("/sheets/test/").status_code == 200
    assert client.get("/sheets/test/new/").status_code == 403
    assert client.post("/sheets/test/new/", {"target": "Al", "energy": "1"}).status_code == 403
    client.force_login(outsider)
    assert client.get("/sheets/test/").status_code == 403
    assert b"Test sheet" not in client.get("/sheets/").content
    assert mongo_db["entries"].count_documents({}) == 0
