"""The grid's data (every filtered row, compact), the layout each user keeps, its columns, and the
plot of several fields at once."""

import orjson
import pytest

from shotsheet import schema
from shotsheet.models import Field, GridLayout

pytestmark = pytest.mark.django_db(transaction=True)


def grid(client, **params) -> dict:
    response = client.get("/sheets/test/grid.json", params)
    assert response.status_code == 200, response.content[:300]
    data = response.json()
    return {**data, "rows": [dict(zip(data["row_fields"] + COLUMNS, row, strict=True)) for row in data["rows"]]}


COLUMNS = ["target", "energy", "shots_on_target", "ok", "note"]  # the test sheet's fields, in order


def test_the_grid_gets_every_filtered_row_in_the_urls_order(admin_client, sheet, make_entry):
    for n in range(60):  # more than a page of the plain table
        make_entry(sheet, shot_key=f"TST-20261202-{n:06d}", energy=float(n % 7), target="Cu" if n % 2 else "Al")
    everything = grid(admin_client)
    assert everything["total"] == 60 and len(everything["rows"]) == 60
    assert everything["rows"][0]["shot_key"] == "TST-20261202-000059"  # newest first, as the table
    assert isinstance(everything["rows"][0]["created"], int)  # epoch ms: the browser shows the lab's time

    filtered = grid(admin_client, f_target="Cu", f_energy_min="3", sort="-energy")
    energies = [row["energy"] for row in filtered["rows"]]
    assert energies == sorted(energies, reverse=True) and min(energies) >= 3
    assert {row["target"] for row in filtered["rows"]} == {"Cu"} and filtered["total"] == len(energies)
    assert grid(admin_client, limit="5")["rows"] == everything["rows"][:5]


def test_live_rows_are_checked_against_the_grids_filters(admin_client, sheet, make_entry):
    low, high = make_entry(sheet, energy=1.0), make_entry(sheet, energy=9.0)
    found = grid(admin_client, ids=f"{low['_id']},{high['_id']},nonsense", f_energy_min="5")
    assert [row["id"] for row in found["rows"]] == [high["_id"]]


def test_voided_rows_stay_out_of_the_grid_unless_shown(admin_client, sheet, make_entry):
    kept, wrong = make_entry(sheet, energy=1.0), make_entry(sheet, energy=2.0)
    response = admin_client.post(
        f"/sheets/test/entries/{wrong['_id']}/void/", {"reason": "wrong target", "rev": wrong["rev"]}
    )
    assert response.status_code == 302
    assert [row["id"] for row in grid(admin_client)["rows"]] == [kept["_id"]]
    shown = grid(admin_client, voided="show")["rows"]
    assert [row["id"] for row in shown] == [wrong["_id"], kept["_id"]]
    assert "wrong target" in shown[0]["voided"] and shown[1]["voided"] == ""


def test_bad_grid_parameters_are_named_never_a_500(admin_client, sheet, make_entry):
    make_entry(sheet)
    refused = admin_client.get("/sheets/test/grid.json", {"limit": "ten"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"parameter": "limit", "problem": "a whole number"}]
    odd = admin_client.get("/sheets/test/grid.json", {"f_energy_min": "$gt", "sort": "$where"}).json()
    assert odd["problems"][0].startswith("Energy: ") and odd["problems"][1] == "cannot sort by '$where'"


def test_each_user_keeps_a_layout_of_the_sheets_grid(admin_client, client, sheet, django_user_model):
    layout = {
        "columns": [
            {"field": "shot_key", "visible": True, "width": 140},
            {"field": "energy", "visible": True, "width": 90},
            {"field": "note", "visible": False, "width": None},
        ],
        "density": "comfortable",
    }
    response = admin_client.post("/sheets/test/grid-layout/", orjson.dumps(layout), content_type="application/json")
    assert response.status_code == 200
    saved = GridLayout.objects.get(sheet=sheet)
    assert (saved.columns, saved.density) == (layout["columns"], "comfortable")
    page = admin_client.get("/sheets/test/").content.decode()
    assert '"density": "comfortable"' in page and 'id="grid-layout"' in page

    other = django_user_model.objects.create_superuser("emmy", "e@example.org", "pw-emmy-123")
    client.force_login(other)
    page = client.get("/sheets/test/").content.decode()
    assert '<script id="grid-layout" type="application/json">{}</script>' in page


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        ({"columns": [{"field": "$where"}]}, "columns[0]: not a column of this sheet"),
        ({"columns": [{"field": "energy", "width": "wide"}]}, "columns[0].width: a whole number of pixels"),
        ({"columns": [], "density": "cosy"}, "density: 'cosy' is not one of compact, comfortable"),
        ({"columns": [{"field": "note"}, {"field": "note"}]}, "columns[1]: 'note' is named twice"),
        ([1, 2], "the layout is a JSON object"),
    ],
)
def test_a_bad_layout_is_refused_with_its_problem_and_nothing_kept(admin_client, sheet, layout, problem):
    response = admin_client.post("/sheets/test/grid-layout/", orjson.dumps(layout), content_type="application/json")
    assert response.status_code == 400
    assert problem in response.json()["errors"][0]["problem"]
    assert not GridLayout.objects.exists()
    broken = admin_client.post("/sheets/test/grid-layout/", b"{not json", content_type="application/json")
    assert broken.status_code == 400


def test_the_layout_is_saved_only_with_the_csrf_token(sheet, django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_superuser("ada", "a@example.org", "pw-ada-123")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post("/sheets/test/grid-layout/", b'{"columns": []}', content_type="application/json")
    assert response.status_code == 403 and not GridLayout.objects.exists()


def test_two_archived_fields_of_one_label_say_which_is_which(admin_client, sheet):
    for key in ("energy_old", "energy_v2"):
        Field.objects.create(
            sheet=sheet, key=key, label="Energy", unit="J", type=Field.Type.FLOAT, archived=True, position=9
        )
    schema.save_version(sheet)
    page = admin_client.get("/sheets/test/").content.decode()
    columns = orjson.loads(page.split('<script id="grid-columns" type="application/json">')[1].split("</script>")[0])
    titles = {column["field"]: column["title"] for column in columns}
    assert titles["energy_old"] == "Energy [J] · energy_old (archived)"
    assert titles["energy_v2"] == "Energy [J] · energy_v2 (archived)"
    assert titles["energy"] == "Energy [J] · energy"
    assert titles["note"] == "Note" and not any(c["archived"] for c in columns if c["field"] == "note")


def test_the_plot_takes_several_fields_with_the_entry_of_each_point(admin_client, sheet, make_entry):
    first = make_entry(sheet, shot_key="TST-20261202-000001", energy=1.0, shots_on_target=3)
    make_entry(sheet, shot_key="TST-20261202-000002", energy=2.0)
    make_entry(sheet, shot_key=None, energy=4.0)
    data = admin_client.get("/sheets/test/plot.json", {"y": "energy,shots_on_target", "x": "shot"}).json()
    assert data["x"] == [1, 2] and data["ids"][0] == first["_id"]
    assert data["shots"] == ["TST-20261202-000001", "TST-20261202-000002"]
    assert [(s["label"], s["unit"], s["y"]) for s in data["series"]] == [
        ("Energy [J]", "J", [1.0, 2.0]),
        ("Shots on target", "", [3, None]),
    ]
    assert data["missing"] == "Not plotted: of 3 entries, 1 has no shot number, 2 have no Shots on target."
    assert admin_client.get("/sheets/test/plot.json", {"y": "energy,note"}).status_code == 400
    assert admin_client.get("/sheets/test/plot.json", {"y": ""}).status_code == 400
