"""Schema versions: made when the admin saves a sheet's fields, never by a page view."""

import io

import pytest
from django.core.management import call_command

from shotsheet import store
from shotsheet.models import Field, SchemaVersion


def versions(sheet) -> list[int]:
    return list(SchemaVersion.objects.filter(sheet=sheet).order_by("number").values_list("number", flat=True))


def admin_post_data(client, url: str) -> dict:
    """What the admin's change form would send back unchanged (its initial values, as a browser posts them)."""
    context = client.get(url).context
    data = {}

    def put(form) -> None:
        for name, field in form.fields.items():
            value = form[name].value()
            key = form.add_prefix(name)
            if isinstance(value, bool) or getattr(field.widget, "input_type", None) == "checkbox":
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = str(value)

    put(context["adminform"].form)
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        put(formset.management_form)
        for form in formset.forms:
            put(form)
    return data


@pytest.mark.parametrize(
    "page", ["/sheets/test/", "/sheets/test/new/", "/sheets/test/export.csv", "/sheets/test/plot.json?y=energy"]
)
def test_viewing_a_sheet_never_writes_a_schema_version(admin_client, sheet, mongo_db, page):
    """Fields made outside the admin (here: in code) and a field added later: the pages show them,
    and write nothing (a GET that writes is a bug)."""
    assert admin_client.get(page).status_code == 200
    assert versions(sheet) == [] and store.schema(sheet.slug, 1) is None
    from shotsheet.schema import save_version

    save_version(sheet)
    Field.objects.create(sheet=sheet, key="gas", label="Gas", type=Field.Type.TEXT, unit="mbar", position=9)
    response = admin_client.get(page)
    assert response.status_code == 200 and versions(sheet) == [1] and store.schema(sheet.slug, 2) is None
    if page in ("/sheets/test/", "/sheets/test/new/"):
        assert "Gas" in response.content.decode()  # the new field is shown although no version has it yet


def test_saving_the_sheet_in_the_admin_makes_a_new_version_only_when_the_fields_changed(admin_client, sheet, mongo_db):
    url = f"/admin/shotsheet/sheet/{sheet.pk}/change/"
    data = admin_post_data(admin_client, url)
    assert admin_client.post(url, data).status_code == 302
    assert versions(sheet) == [1] and [f["key"] for f in store.schema("test", 1)["fields"]][:2] == ["target", "energy"]
    assert admin_client.post(url, data).status_code == 302
    assert versions(sheet) == [1]  # saved again unchanged: the same version
    data = admin_post_data(admin_client, url)
    row = int(data["fields-TOTAL_FORMS"])  # "Add another field of the entry form"
    data.update(
        {
            "fields-TOTAL_FORMS": str(row + 1),
            f"fields-{row}-key": "gas",
            f"fields-{row}-label": "Gas",
            f"fields-{row}-type": "text",
            f"fields-{row}-position": "9",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert versions(sheet) == [1, 2] and [f["key"] for f in store.schema("test", 2)["fields"]][-2:] == ["note", "gas"]


def test_an_entry_saved_after_fields_changed_in_code_gets_a_version_with_its_fields(admin_client, sheet, mongo_db):
    """A save (a write) whose fields have no version yet makes it first: an entry never names a
    version that lacks its fields."""
    response = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1"})
    assert response.status_code == 302 and versions(sheet) == [1]
    Field.objects.create(sheet=sheet, key="gas", label="Gas", type=Field.Type.TEXT, position=9)
    admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "2", "gas": "He"})
    entry = mongo_db["entries"].find_one({"values.gas": "He"})
    assert versions(sheet) == [1, 2] and entry["schema_version"] == 2


def test_saving_a_choice_source_in_the_admin_makes_a_new_version_of_the_sheets_using_it(admin_client, sheet, mongo_db):
    from shotsheet.models import ChoiceSource
    from shotsheet.schema import save_version

    source = ChoiceSource.objects.create(
        name="Targets", kind=ChoiceSource.Kind.WIKI_PAGE, wiki_url="http://wiki.invalid/w/", title="Targets"
    )
    sheet.fields.filter(key="target").update(choice_source=source)
    save_version(sheet)
    url = f"/admin/shotsheet/choicesource/{source.pk}/change/"
    data = admin_post_data(admin_client, url)
    data["title"] = "Targets 2027"
    assert admin_client.post(url, data).status_code == 302
    assert versions(sheet) == [1, 2]
    assert store.schema("test", 2)["fields"][0]["choice_source"]["title"] == "Targets 2027"


def test_the_demo_sheet_is_seeded_with_its_schema_version(db, mongo_db, monkeypatch):
    from shotsheet.models import Sheet

    monkeypatch.setenv("LABBOOK_ADMIN_PASSWORD", "demo-pass-123456")
    call_command("seed_demo", "--username", "demo", stdout=io.StringIO())
    demo = Sheet.objects.get(slug="demo")
    assert versions(demo) == [1] and store.schema("demo", 1)["fields"][0]["key"] == "target"
