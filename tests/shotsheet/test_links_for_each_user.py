"""Links lead somewhere the user may go: no buttons that end in a 403, no shot link that ends in a 404."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from relay import store as relay_store

SHOT = "TST-20261124-000321"


@pytest.fixture
def viewer(sheet):
    """A user who may read the sheet but not add to it."""
    viewers, writers = Group.objects.create(name="viewers"), Group.objects.create(name="writers")
    sheet.view_groups.set([viewers, writers])
    sheet.add_groups.set([writers])
    user = get_user_model().objects.create_user("viewer", password="pw-for-test-only")
    user.groups.add(viewers)
    return user


def test_view_only_users_see_no_new_entry_or_import_button(client, admin_client, sheet, viewer, mongo_db):
    client.force_login(viewer)
    page = client.get("/sheets/test/").content.decode()
    assert "/sheets/test/new/" not in page and "New entry" not in page
    assert "/sheets/test/import/" not in page and "Import…" not in page
    assert client.get("/sheets/test/new/").status_code == 403  # what the buttons led to

    page = admin_client.get("/sheets/test/").content.decode()
    assert "/sheets/test/new/" in page and "/sheets/test/import/" in page


def test_a_shot_without_entry_offers_to_create_one_prefilled_with_its_key(admin_client, sheet, mongo_db):
    relay_store.save_state({"rate": 1.0}, {"shot_key": "TST-20261124-000999"})  # the relay is further on
    response = admin_client.get(f"/sheets/shot/{SHOT}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "no entry yet" in page
    create = re.search(r'href="(/sheets/test/new/\?shot_key=[^"]+)"', page)
    assert create, page
    form = admin_client.get(create.group(1).replace("&amp;", "&")).content.decode()
    assert f'name="shot_key" value="{SHOT}"' in form  # the shot of the link, not the relay's latest
    assert "waiting for a shot" not in form


def test_a_view_only_user_is_told_there_is_no_entry_without_a_create_link(client, sheet, viewer, mongo_db):
    client.force_login(viewer)
    response = client.get(f"/sheets/shot/{SHOT}/")
    assert response.status_code == 200 and "no entry yet" in response.content.decode()
    assert "/new/" not in response.content.decode()


def test_the_watchers_shot_page_says_no_entry_yet_or_links_the_entry(admin_client, sheet, make_entry, mongo_db):
    page = admin_client.get(f"/watcher/shot/{SHOT}/").content.decode()
    assert "Shot sheet entry of" not in page and "no entry yet" in page
    assert f'href="/sheets/test/new/?shot_key={SHOT}"' in page

    entry = make_entry(sheet, shot_key=SHOT)
    page = admin_client.get(f"/watcher/shot/{SHOT}/").content.decode()
    assert "no entry yet" not in page
    link = re.search(r'<a href="([^"]+)">Shot sheet entry of ' + SHOT, page)
    assert link and admin_client.get(link.group(1), follow=True).request["PATH_INFO"] == (
        f"/sheets/test/entries/{entry['_id']}/"
    )


def test_the_relay_badge_shows_the_shot_the_form_was_prefilled_with(admin_client, sheet, mongo_db):
    relay_store.save_state({"rate": 1.0}, {"shot_key": "TST-20261124-000042"})
    page = admin_client.get("/sheets/test/new/").content.decode()
    assert 'name="shot_key" value="TST-20261124-000042"' in page
    assert "waiting for a shot" not in page and "relay: shot TST-20261124-000042" in page


def test_the_relay_badge_waits_only_while_there_is_no_shot(admin_client, sheet, mongo_db):
    page = admin_client.get("/sheets/test/new/").content.decode()
    assert "relay: waiting for a shot…" in page
