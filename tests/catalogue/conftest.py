import pytest

from catalogue.models import Rule, Server
from shotsheet import schema
from shotsheet.entries import create_entry, update_entry
from shotsheet.models import DaqProfile, Field, Sheet

from .fake_scicat import FakeScicat


@pytest.fixture
def scicat():
    server = FakeScicat().start()
    yield server
    server.stop()


@pytest.fixture
def fast_retries(settings):
    settings.CATALOGUE_RETRY_BASE_SECONDS = 0.05
    settings.CATALOGUE_RETRY_MAX_SECONDS = 0.4
    settings.CATALOGUE_POLL_SECONDS = 0.05
    settings.CATALOGUE_SETTLE_SECONDS = 0  # test_updates.py tests the wait
    settings.CATALOGUE_FOLLOW_UP_SECONDS = []  # test_late_files.py tests them
    return settings


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("SCICAT_USERNAME", "ingestor")
    monkeypatch.setenv("SCICAT_PASSWORD", "secret")
    monkeypatch.delenv("SCICAT_TOKEN", raising=False)


def make_sheet(slug: str = "shots", **sheet_options) -> Sheet:
    sheet = Sheet.objects.create(name="Shots", slug=slug, experiment="LWFA", **sheet_options)
    Field.objects.create(sheet=sheet, key="energy", label="Energy", type=Field.Type.FLOAT, unit="J", position=0)
    Field.objects.create(
        sheet=sheet, key="target", label="Target", type=Field.Type.CHOICE, choices="Al\nCu", position=1
    )
    Field.objects.create(sheet=sheet, key="note", label="Note", type=Field.Type.TEXT, position=2)
    return sheet


def make_server(url: str, version: str = "v4") -> Server:
    return Server.objects.create(
        name=f"scicat-{version}",
        base_url=url,
        api_version=version,
        owner="ingestor",
        owner_group="laser",
        access_groups="lab, guests",
        contact_email="lab@example.org",
        principal_investigator="Ada Lovelace",
        creation_location="LWFA lab",
        pid_prefix="20.500.12345",
        labbook_url="https://labbook.example.org",
        files_per_block=2,
        timeout_seconds=2,
    )


@pytest.fixture
def catalogued(db, mongo_db, scicat, credentials, fast_retries, tmp_path):
    """A sheet with a catalogue rule on the fake SciCat, and a way to add and edit entries."""
    folder = tmp_path / "daq"
    folder.mkdir()
    for name, size in [("a.h5", 10), ("b.h5", 20), ("c.tiff", 5)]:
        (folder / name).write_bytes(b"x" * size)
    profile = DaqProfile.objects.create(name="fast", config={"data_folder": str(folder), "list_files": True})
    sheet = make_sheet(daq_profile=profile)
    rule = Rule.objects.create(sheet=sheet, server=make_server(scicat.url), keywords="lwfa")

    class Entries:
        version = None

        def add(self, shot_key=None, **values) -> dict:
            self.version = self.version or schema.save_version(sheet)
            version = self.version
            values = {"energy": 1.5, "target": "Al", **values}
            return create_entry(sheet, version, values, author="ada", shot_key=shot_key)

        def edit(self, entry: dict, **values) -> dict:
            return update_entry(
                sheet, entry, entry["rev"], {**entry["values"], **values}, author="bo", comment="", shot_key=None
            )

    return type("Catalogued", (), {"sheet": sheet, "rule": rule, "entries": Entries(), "folder": folder})
