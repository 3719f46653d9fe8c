"""A sheet with entries of every field type, users inside and outside its view group, and tokens."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from api import tokens
from core import mongo
from shotsheet import schema, store
from shotsheet.entries import create_entry
from shotsheet.models import Field, Sheet


@pytest.fixture(autouse=True)
def fresh_request_counts():
    """Each test's requests counted from zero (the throttle's counts live in the local cache)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_sheet(db, mongo_db):
    """A sheet only the group 'laser' may view, with entries of every field type."""
    sheet = Sheet.objects.create(name="API sheet", slug="apisheet", experiment="API")
    for position, (key, label, type_, extra) in enumerate(
        [
            ("target", "Target", Field.Type.CHOICE, {"choices": "Al\nCu\nTi"}),
            ("energy", "Energy", Field.Type.FLOAT, {"unit": "J"}),
            ("count", "Count", Field.Type.INTEGER, {}),
            ("ok", "OK", Field.Type.BOOLEAN, {}),
            ("note", "Note", Field.Type.TEXT, {}),
            ("when", "When", Field.Type.DATETIME, {}),
            ("gases", "Gases", Field.Type.MULTI_CHOICE, {"choices": "He\nN2\nAr"}),
        ]
    ):
        Field.objects.create(sheet=sheet, key=key, label=label, type=type_, position=position, **extra)
    sheet.view_groups.add(Group.objects.get_or_create(name="laser")[0])
    return sheet


ENTRY_VALUES = [
    {"target": "Al", "energy": 1.5, "count": 3, "ok": True, "note": "first shot", "gases": ["He"]},
    {"target": "Cu", "energy": 2.5, "count": 7, "ok": False, "note": '=HYPERLINK("x")', "gases": ["He", "N2"]},
    {"target": "Ti", "energy": -0.5, "count": 0, "ok": True, "note": 'needle, "quoted"\nnew line'},
    {"target": "Al", "energy": 12.0, "count": 1, "note": "+cmd", "when": datetime(2026, 11, 24, 9, 30, tzinfo=UTC)},
    {"target": "Cu", "energy": 40.25, "note": "late one", "gases": ["Ar"]},
]


FIRST_CREATED = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def api_entries(api_sheet):
    """Five entries (shot keys API-20261124-00000n) made a minute apart from FIRST_CREATED, newest last
    (saved now, then dated: entries saved in the same millisecond would have no order of their own)."""
    version = schema.save_version(api_sheet)
    made = [
        create_entry(api_sheet, version, values, author="ada", shot_key=f"API-20261124-{n:06d}", comment=f"c{n}")
        for n, values in enumerate(ENTRY_VALUES, start=1)
    ]
    entries = mongo.database()[store.ENTRIES]
    for n, entry in enumerate(made):
        created = FIRST_CREATED + timedelta(minutes=n)
        entries.update_one({"_id": entry["_id"]}, {"$set": {"created": created, "updated": created}})
    store.append_changes(api_sheet.slug, [entry["_id"] for entry in made])
    return [store.get_entry(entry["_id"]) for entry in made]


@pytest.fixture
def member(db):
    user = get_user_model().objects.create_user("member", password="member-pass-123")
    user.groups.add(Group.objects.get_or_create(name="laser")[0])
    return user


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("outsider", password="outsider-pass-123")


@pytest.fixture
def token_of():
    """A new token of a user, as the tokens page makes it: (record, the token itself)."""

    def make(user, name="test", expires=None):
        return tokens.create_token(user, name, expires)

    return make


@pytest.fixture
def bearer(token_of):
    """A test client that sends a new token of the user."""

    def make(user) -> Client:
        _, plain = token_of(user)
        return Client(HTTP_AUTHORIZATION=f"Bearer {plain}")

    return make


def hours_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=n)
