import pytest

from shotsheet import schema
from shotsheet.entries import create_entry
from shotsheet.models import Field, Sheet


@pytest.fixture
def sheet(db, mongo_db):
    sheet = Sheet.objects.create(name="Test sheet", slug="test", experiment="TST")
    for position, (key, label, type_, extra) in enumerate(
        [
            ("target", "Target", Field.Type.CHOICE, {"choices": "Al\nCu", "sticky": True}),
            ("energy", "Energy", Field.Type.FLOAT, {"unit": "J", "min_value": 0, "max_value": 100, "required": True}),
            ("shots_on_target", "Shots on target", Field.Type.INTEGER, {}),
            ("ok", "OK", Field.Type.BOOLEAN, {}),
            ("note", "Note", Field.Type.TEXT, {"pattern": r"^[a-z ]*$"}),
        ]
    ):
        Field.objects.create(sheet=sheet, key=key, label=label, type=type_, position=position, **extra)
    return sheet


@pytest.fixture
def make_entry():
    """Store an entry of a sheet through the service, as the form would."""

    def make(sheet, shot_key=None, author="ada", **values) -> dict:
        version = schema.save_version(sheet)
        return create_entry(
            sheet, version, {"target": "Al", "energy": 1.0, "ok": False, **values}, author=author, shot_key=shot_key
        )

    return make
