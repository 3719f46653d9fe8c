"""Choice lists from another sheet, date-range filters, import from the web, stable field keys."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from shotsheet import choices, schema, store
from shotsheet.forms import entry_form_class
from shotsheet.models import ChoiceSource, Field, Sheet
from shotsheet.query import table_query

from .previewed import import_previewed


@pytest.fixture
def targets_sheet(db, mongo_db):
    """A second sheet whose 'material' values feed the test sheet's choice list."""
    targets = Sheet.objects.create(name="Targets", slug="targets", experiment="TST")
    Field.objects.create(sheet=targets, key="material", label="Material", type=Field.Type.TEXT)
    return targets


def test_choices_come_from_another_sheets_field_and_follow_its_new_values(sheet, targets_sheet, make_entry):
    for material in ("Ti", "Au", "Ti"):
        make_entry(targets_sheet, material=material)
    source = ChoiceSource.objects.create(
        name="target materials",
        kind=ChoiceSource.Kind.SHEET_FIELD,
        sheet=targets_sheet,
        field_key="material",
        refresh_seconds=0,
    )
    Field.objects.filter(sheet=sheet, key="target").update(choice_source=source)
    fields = schema.save_version(sheet).fields
    assert next(f for f in fields if f["key"] == "target")["choice_source"]["sheet"] == "targets"

    form = entry_form_class(fields)({"target": "Au", "energy": "1"})
    assert form.is_valid(), form.errors
    assert [v for v, _ in form.fields["target"].choices] == ["", "Au", "Ti"]
    assert not entry_form_class(fields)({"target": "Cu", "energy": "1"}).is_valid()  # static list replaced

    make_entry(targets_sheet, material="Cu")
    choices.refresh(source.describe())
    assert entry_form_class(fields)({"target": "Cu", "energy": "1"}).is_valid()


def test_an_entry_keeps_its_value_when_the_source_no_longer_lists_it(
    admin_client, sheet, targets_sheet, make_entry, mongo_db
):
    source = ChoiceSource.objects.create(
        name="materials",
        kind=ChoiceSource.Kind.SHEET_FIELD,
        sheet=targets_sheet,
        field_key="material",
        refresh_seconds=0,
    )
    Field.objects.filter(sheet=sheet, key="target").update(choice_source=source)
    make_entry(targets_sheet, material="Ti")
    entry = make_entry(sheet, target="Ti")
    mongo_db["entries"].delete_many({"sheet": "targets"})  # Ti leaves the list
    assert choices.refresh(source.describe())["values"] == []
    url = f"/sheets/test/entries/{entry['_id']}/"
    response = admin_client.post(url, {"target": "Ti", "energy": "4", "rev": "1", "comment": "energy fixed"})
    assert response.status_code == 302, response.content.decode()
    values = store.get_entry(entry["_id"])["values"]
    assert (values["target"], values["energy"]) == ("Ti", 4.0)


def test_table_filters_by_date_range_of_creation_and_of_a_datetime_field(admin_client, sheet, make_entry):
    Field.objects.create(sheet=sheet, key="aligned", label="Aligned at", type=Field.Type.DATETIME, position=9)
    early = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    make_entry(sheet, shot_key="TST-20261120-000001", aligned=early)
    make_entry(sheet, shot_key="TST-20261122-000002", aligned=early + timedelta(days=2))
    query, _, problems = table_query(schema.schema_for(sheet), {"f_aligned_from": "2026-11-21T00:00"})
    assert problems == [] and [e["shot_key"] for e in store.find_entries(query, [("created", 1)], 0, 10)] == [
        "TST-20261122-000002"
    ]
    page = admin_client.get("/sheets/test/", {"f_aligned_to": "2026-11-21", "from": "2000-01-01"}).content.decode()
    assert "TST-20261120-000001" in page and "TST-20261122-000002" not in page
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No entries match" in admin_client.get("/sheets/test/", {"from": tomorrow}).content.decode()
    bad = admin_client.get("/sheets/test/", {"f_aligned_from": "{'$gt': ''}"}).content.decode()
    assert "is not a date/time" in bad


def import_through_preview(client, name: str, content: bytes, **choices):
    """Upload, then import from the preview with the given column choices."""
    response = client.post("/sheets/test/import/", {"file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302, response.content.decode()
    return import_previewed(
        client,
        response["Location"],
        {"header_row": 1, "shown_header_row": 1, "decimal_mark": "auto", "date_order": "auto", **choices},
    )


def test_web_import_stores_every_row_with_native_types(admin_client, sheet, mongo_db):
    response = import_through_preview(
        admin_client,
        "log.csv",
        b"shot_key,Energy [J],target,ok\nTST-20261101-000001,12.5,Cu,yes\nTST-20261101-000002,3,Al,no\n",
    )
    assert response.status_code == 302
    stored = {e["shot_key"]: e["values"] for e in mongo_db["entries"].find({"sheet": "test"})}
    assert stored["TST-20261101-000001"]["energy"] == 12.5 and stored["TST-20261101-000001"]["ok"] is True
    assert stored["TST-20261101-000002"]["target"] == "Al"


def test_web_import_with_bad_rows_reports_each_and_imports_nothing(admin_client, sheet, mongo_db):
    response = import_through_preview(admin_client, "log.csv", b"E,target\n5,Cu\n500,Cu\nabc,Fe\n", col_A="energy")
    page = response.content.decode()
    assert response.status_code == 200 and "2 rows cannot be imported, so nothing was imported" in page
    assert "1 row in E: Above the maximum of 100.0" in page and "<code>A3</code>" in page
    assert "1 row in E: not a number" in page and "<code>A4</code> “abc”" in page
    assert mongo_db["entries"].count_documents({"sheet": "test"}) == 0


def test_web_import_refuses_what_is_not_a_shot_log(admin_client, sheet, mongo_db):
    page = admin_client.post("/sheets/test/import/", {"file": SimpleUploadedFile("notes.txt", b"x")}).content
    assert b"Upload a .csv or .xlsx file." in page
    page = admin_client.post("/sheets/test/import/", {"file": SimpleUploadedFile("log.xlsx", b"not a zip")}).content
    assert b"is not a readable XLSX file" in page


def test_a_field_key_cannot_change_once_the_sheet_has_entries(sheet, make_entry):
    field = Field.objects.get(sheet=sheet, key="energy")
    field.key = "pulse_energy"
    field.full_clean()  # no entries yet: keys may still be fixed
    make_entry(sheet)
    with pytest.raises(ValidationError, match="cannot change"):
        field.full_clean()
    field.key, field.label = "energy", "Pulse energy"
    field.full_clean()  # the label may change
