"""The form designer's preview: the fields as edited (not saved) read in their dragged order, drawn
by the entry form's own code; only for the admin, only by POST."""

import pytest
from django.http import QueryDict

from shotsheet.designer import designed_fields

pytestmark = pytest.mark.django_db


def edited(*rows: dict) -> QueryDict:
    data = QueryDict(mutable=True)
    data["fields-TOTAL_FORMS"] = str(len(rows))
    for n, row in enumerate(rows):
        for name, value in row.items():
            data[f"fields-{n}-{name}"] = value
    return data


def test_fields_come_in_their_dragged_order_without_deleted_archived_or_empty_rows():
    fields, notes = designed_fields(
        edited(
            {"key": "energy", "label": "Energy", "type": "float", "unit": "J", "position": "3", "max_value": "1e2"},
            {"key": "target", "label": "Target", "type": "choice", "choices": "Al\nCu", "position": "1"},
            {"key": "gone", "label": "Gone", "position": "2", "DELETE": "on"},
            {"key": "old", "label": "Old", "position": "0", "archived": "on"},
            {"key": "", "label": "", "position": "5"},
            {"key": "pulse", "label": "Pulse", "type": "float", "min_value": "short", "position": "2"},
        )
    )
    assert [f.key for f in fields] == ["target", "pulse", "energy"]
    assert fields[2].max_value == 100.0 and fields[2].heading == "Energy [J]"
    assert notes == ["Pulse: min value 'short' is not a number."]


def test_a_row_without_key_or_label_is_left_out_and_said():
    fields, notes = designed_fields(edited({"key": "", "label": "Energy"}, {"key": "x", "label": "X", "type": "bogus"}))
    assert [(f.key, f.type) for f in fields] == [("x", "text")]
    assert notes == ["Field 1 needs a key and a label; it is left out."]


def test_the_preview_draws_the_entry_form_for_staff_only_and_only_by_post(admin_client, client, sheet):
    data = edited({"key": "energy", "label": "Energy", "type": "float", "unit": "J", "min_value": "0"})
    page = admin_client.post("/admin/shotsheet/sheet/preview/", data).content.decode()
    assert 'name="shot_key"' in page and "Energy [J]" in page and "at least 0 J" in page
    assert admin_client.get("/admin/shotsheet/sheet/preview/").status_code == 405
    assert client.post("/admin/shotsheet/sheet/preview/", data).status_code == 302  # to the admin's login
