"""The new-entry form for fast entry: shot key first, ranges and units before an error and in it,
a warning when the shot has an entry already, values filled from the relay's shot envelope."""

import re

import pytest
from django.contrib.auth.models import Group, User

from relay import store as relay_store
from shotsheet.entries import set_voided
from shotsheet.models import Field

pytestmark = pytest.mark.django_db(transaction=True)
SHOT = "TST-20261202-000042"


def relay_fired(shot_key=SHOT, **values):
    relay_store.save_state({"rate": 1.0}, {"shot_key": shot_key, "shot_number": 42, "values": values})


def test_the_shot_key_comes_first_and_ranges_with_units_are_said_before_an_error(admin_client, sheet):
    page = admin_client.get("/sheets/test/new/").content.decode()
    form = page[page.index('id="entry-form"') :]
    names = [name for name in re.findall(r'<(?:input|select|textarea)[^>]* name="([a-z_]+)"', form)]
    assert names[:3] == ["csrfmiddlewaretoken", "shot_key", "target"]
    assert "0 to 100 J" in page  # the hint, before anything is typed
    assert 'data-focus="id_energy"' in page  # target is sticky: the first field to type is energy

    page = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "150"}).content.decode()
    assert "Above the maximum of 100.0 J." in page
    page = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "lots"}).content.decode()
    assert "Enter a number (in J)." in page


def test_a_field_mapped_to_the_relay_is_filled_for_the_current_shot_and_marked(admin_client, sheet):
    Field.objects.filter(sheet=sheet, key="energy").update(relay_value="values.energy_J")
    relay_fired(energy_J=42.5, other=1)
    page = admin_client.get("/sheets/test/new/").content.decode()
    energy_input = re.search(r'<input[^>]*name="energy"[^>]*>', page).group(0)
    assert 'value="42.5"' in energy_input and 'data-relay="values.energy_J"' in energy_input
    assert re.search(r'data-field="energy">\s*<span class="[^"]*relay-filled">from the relay</span>', page)

    check = admin_client.get("/sheets/test/shot.json", {"shot_key": SHOT}).json()
    assert check == {"shot_key": SHOT, "entries": [], "relay_values": {"energy": "42.5"}}
    other = admin_client.get("/sheets/test/shot.json", {"shot_key": "TST-20261202-000041"}).json()
    assert other["relay_values"] == {}  # the relay keeps only its latest envelope: no other shot's values

    linked = admin_client.get("/sheets/test/new/", {"shot_key": "TST-20261202-000041"}).content.decode()
    energy_input = re.search(r'<input[^>]*name="energy"[^>]*>', linked).group(0)
    assert "42.5" not in energy_input and "relay-filled" not in linked  # another shot: nothing of this one


def test_the_form_says_when_the_shot_has_an_entry_already(admin_client, sheet, make_entry):
    first = make_entry(sheet, shot_key=SHOT)
    relay_fired()
    page = admin_client.get("/sheets/test/new/").content.decode()
    assert "This shot already has an entry in this sheet" in page and first["_id"] in page
    check = admin_client.get("/sheets/test/shot.json", {"shot_key": SHOT}).json()
    assert [e["url"] for e in check["entries"]] == [f"/sheets/test/entries/{first['_id']}/"]

    set_voided(sheet, first, first["rev"], author="ada", reason="wrong shot")
    assert admin_client.get("/sheets/test/shot.json", {"shot_key": SHOT}).json()["entries"] == []


def test_the_shot_check_needs_the_right_to_add(client, sheet):
    sheet.add_groups.add(Group.objects.create(name="shift"))
    client.force_login(User.objects.create_user("vic", password="pw-viewer-1"))
    assert client.get("/sheets/test/shot.json", {"shot_key": SHOT}).status_code == 403
