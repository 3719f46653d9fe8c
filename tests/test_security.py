"""Logins are throttled, unknown websocket paths are refused cleanly, a 403 is one log line."""

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from labbook.asgi import application
from shotsheet.models import Field, Sheet

PASSWORD = "right-pass-for-test-7"


@pytest.fixture
def physicist(db):
    return get_user_model().objects.create_user("pierre", password=PASSWORD)


def log_in(client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def logged_in(client) -> bool:
    return client.get("/sheets/").status_code == 200


def test_wrong_passwords_lock_the_account_out_and_then_the_right_one_fails_too(client, physicist, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert 3 <= limit <= 10  # a sensible default from settings.py
    for attempt in range(1, limit):
        response = log_in(client, "pierre", f"wrong-{attempt}")
        assert response.status_code == 200 and b"Please enter a correct username and password" in response.content
    locked = log_in(client, "pierre", f"wrong-{limit}")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed logins" in text and "pierre" in text and "15 minutes" in text

    right = log_in(client, "pierre", PASSWORD)
    assert right.status_code == 429 and "Too many failed logins" in right.content.decode()
    assert not logged_in(client)


def test_the_lock_out_is_per_user_and_address_and_ends_after_the_cool_off(client, physicist, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    get_user_model().objects.create_user("marie", password=PASSWORD)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "pierre", f"wrong-{attempt}")
    assert log_in(client, "pierre", PASSWORD).status_code == 429
    assert log_in(client, "marie", PASSWORD).status_code == 302  # another account from the same address
    client.logout()
    time.sleep(2.5)  # the cool-off itself (an attempt during it would start it again)
    assert log_in(client, "pierre", PASSWORD).status_code == 302
    assert logged_in(client)


def test_the_admin_login_is_throttled_too(client, db, settings):
    get_user_model().objects.create_superuser("root", "r@example.org", PASSWORD)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "root", "password": f"wrong-{attempt}"})
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302  # still to the login page


def websocket_handshake(path: str) -> tuple[bool, int | None]:
    async def scenario():
        communicator = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
        )
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    return asyncio.run(scenario())


def test_an_unknown_websocket_path_is_closed_not_an_error():
    assert websocket_handshake("/ws/no-such-thing/") == (False, 4404)
    assert websocket_handshake("/elsewhere") == (False, 4404)
    assert websocket_handshake("/ws/sheets/demo/") == (False, 4401)  # a known path still asks for a login


def test_a_forbidden_page_is_logged_as_one_line_without_traceback(client, db, mongo_db, caplog):
    sheet = Sheet.objects.create(name="Closed sheet", slug="closed", experiment="CLS")
    Field.objects.create(sheet=sheet, key="energy", label="Energy", type=Field.Type.FLOAT)
    sheet.view_groups.set([Group.objects.create(name="insiders")])
    client.force_login(get_user_model().objects.create_user("visitor", password=PASSWORD))
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get("/sheets/closed/").status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING and record.exc_info is None and record.exc_text is None
    line = logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line == (
        "WARNING django.request: Forbidden (Permission denied): /sheets/closed/ "
        "(You may not view entries of 'Closed sheet'.) user visitor"
    )
