"""The pure dataset builder: every body it makes fits SciCat's OpenAPI schemas and scitacean's models."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.urls import NoReverseMatch, reverse

from catalogue import contract
from catalogue.builder import LABBOOK_NAMESPACE, Recipe, Target, build, dataset_pid
from catalogue.scicat import Refused
from catalogue.services import checked, entry_path
from catalogue.templating import TemplateError

from . import openapi

FIELDS = [
    {"key": "energy", "label": "Energy", "type": "float", "unit": "J"},
    {"key": "count", "label": "Count", "type": "integer", "unit": ""},
    {"key": "target", "label": "Target", "type": "choice", "unit": ""},
    {"key": "ok", "label": "OK", "type": "boolean", "unit": ""},
    {"key": "note", "label": "Note", "type": "text", "unit": ""},
]
LASER_NS = 1_764_680_400_123_456_789  # 2025-12-02T13:00:00.123456789Z
TARGET = Target(
    owner="ingestor",
    owner_group="laser",
    access_groups=("lab",),
    contact_email="lab@example.org",
    principal_investigator="Ada Lovelace",
    creation_location="LWFA lab",
    pid_prefix="20.500.12345",
    files_per_block=2,
    time_zone="Europe/Berlin",
)
RECIPE = Recipe(sheet_name="Shots", keywords=("lwfa", "labbook"))


def an_entry(**changes) -> dict:
    return {
        "_id": "shots:20251202130000:abcd1234",
        "sheet": "shots",
        "experiment": "LWFA",
        "schema_version": 3,
        "values": {"energy": 1.5, "count": 3, "target": "Al", "ok": True, "note": "clean"},
        "shot_key": "LWFA-20251202-000042",
        "shot_number": 42,
        "laser_ts_ns": LASER_NS,
        "author": "ada",
        "created": datetime(2025, 12, 2, 13, 5, tzinfo=UTC),
        "rev": 2,
        "comment": "",
        "daq": {"profile": "fast", "config": {"data_folder": "/daq/fast"}},
        **changes,
    }


EVENTS = [
    {
        "_collection": "diagnostics",
        "source": "spectrometer",
        "kind": "shot",
        "event_id": "e2",
        "laser_ts_ns": LASER_NS,
        "values": {
            "peak": 230.5,
            "files": [
                {"path": "/data/LWFA/20251202/42/spec.h5", "size": 2048, "mtime": "2025-12-02T13:00:01Z"},
                {"path": "/elsewhere/raw.bin", "size": 10, "mtime": 1764680402, "checksum": "sha256:ab12"},
            ],
        },
        "metadata": {"units": {"peak": "MeV"}},
    },
    {
        "_collection": "diagnostics",
        "source": "camera",
        "kind": "shot",
        "event_id": "e1",
        "values": {"exposure": 0.002},
        "metadata": {"files": [{"path": "/data/LWFA/20251202/42/cam.tiff", "size": 100, "mtime": LASER_NS}]},
    },
]


def plan(version="v4", **entry_changes):
    target = Target(**{**TARGET.__dict__, "api_version": version})
    return build(
        an_entry(**entry_changes),
        FIELDS,
        target,
        RECIPE,
        entry_url="https://labbook.example.org/sheets/shots/entries/x/",
        shot={"shot_key": "LWFA-20251202-000042", "shot_number": 42, "laser_ts_ns": LASER_NS},
        events=EVENTS,
    )


def test_dataset_carries_shot_identity_units_and_link_back():
    body = plan().dataset
    assert body["runNumber"] == "LWFA-20251202-000042"
    assert body["creationTime"] == "2025-12-02T13:00:00.123456Z"  # the laser time, not the entry's
    assert body["sourceFolder"] == "/data/LWFA/20251202/42"  # template, date in the lab's zone
    assert body["datasetName"] == "Shots LWFA-20251202-000042"
    metadata = body["scientificMetadata"]
    assert metadata["energy"] == {"value": 1.5, "unit": "J"}
    assert metadata["count"] == {"value": 3, "unit": ""}
    assert metadata["target"] == "Al" and metadata["ok"] is True and metadata["note"] == "clean"
    assert metadata["labbook"]["entry_url"] == "https://labbook.example.org/sheets/shots/entries/x/"
    assert metadata["labbook"]["sheet_schema_version"] == 3 and metadata["labbook"]["entry_revision"] == 2
    assert metadata["shot"]["laser_time"] == "2025-12-02T13:00:00.123456Z"
    assert metadata["events"]["diagnostics"]["spectrometer"]["peak"] == {"value": 230.5, "unit": "MeV"}
    assert "files" not in metadata["events"]["diagnostics"]["spectrometer"]


def test_pid_is_uuid5_of_entry_id_with_prefix():
    pid = plan().pid
    assert pid == f"20.500.12345/{uuid.uuid5(LABBOOK_NAMESPACE, 'shots:20251202130000:abcd1234')}"
    assert dataset_pid("shots:20251202130000:abcd1234") == pid.split("/", 1)[1]


def test_creation_time_falls_back_to_entry_time():
    body = plan(laser_ts_ns=None, shot_key=None, shot_number=None).dataset
    assert body["creationTime"] == "2025-12-02T13:05:00.000000Z"
    assert "runNumber" not in body


def test_files_become_origdatablocks_split_by_setting():
    blocks = plan().blocks
    assert [len(block["dataFileList"]) for block in blocks] == [2, 1]  # files_per_block=2
    files = [item for block in blocks for item in block["dataFileList"]]
    assert {item["path"] for item in files} == {"spec.h5", "/elsewhere/raw.bin", "cam.tiff"}  # relative in the folder
    raw = next(item for item in files if item["path"] == "/elsewhere/raw.bin")
    assert raw["chk"] == "sha256:ab12" and raw["time"] == "2025-12-02T13:00:02.000000Z"
    assert all(block["datasetId"] == plan().pid for block in blocks)
    assert blocks[0]["size"] == sum(item["size"] for item in blocks[0]["dataFileList"])


def test_only_chosen_fields_go_to_scientific_metadata():
    recipe = Recipe(metadata_fields=("energy",), include_shot=False)
    body = build(an_entry(), FIELDS, TARGET, recipe, entry_url="u", events=EVENTS).dataset
    assert set(body["scientificMetadata"]) == {"energy", "labbook"}


def test_numbers_json_cannot_carry_go_as_their_names_not_dropped_nor_stalling_the_dataset():
    """A failed fit's NaN, a saturated diagnostic's infinity: JSON has neither, and a body holding
    one cannot be sent at all (the job would be retried for ever). They go as text, where they were."""
    nan, inf = float("nan"), float("inf")
    shot = {"shot_key": "LWFA-20251202-000042", "laser_ts_ns": LASER_NS, "values": {"energy_J": nan}}
    event = {**EVENTS[0], "values": {"peak": inf, "spectrum": [1.0, nan, -inf], "fit": {"sigma": nan}}}
    body = build(
        an_entry(values={"energy": nan, "count": 1}),
        FIELDS,
        TARGET,
        RECIPE,
        entry_url="u",
        shot=shot,
        events=[event],
    ).dataset
    json.dumps(body, allow_nan=False)  # what the HTTP client does: no ValueError
    metadata = body["scientificMetadata"]
    assert metadata["energy"] == "NaN"  # no unit: SciCat converts only numbers to SI
    assert metadata["shot"]["values"] == {"energy_J": "NaN"}
    spectrometer = metadata["events"]["diagnostics"]["spectrometer"]
    assert spectrometer["peak"] == "Infinity"
    assert spectrometer["spectrum"] == [1.0, "NaN", "-Infinity"]
    assert spectrometer["fit"] == {"sigma": "NaN"}


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_bodies_fit_scicat_openapi_schemas(version):
    made = plan(version)
    assert openapi.errors(made.dataset, openapi.DATASET_CREATE[version]) == []
    assert openapi.errors(made.patch, openapi.DATASET_PATCH[version]) == []
    for block in made.blocks:
        assert openapi.errors(block, openapi.ORIGDATABLOCK_CREATE) == []


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_bodies_fit_the_clients_models_and_required_fields(version):
    made = plan(version)
    assert contract.dataset_errors(made.dataset, version) == []
    assert contract.patch_errors(made.patch, version) == []
    assert all(contract.block_errors(block) == [] for block in made.blocks)


def test_contract_checks_catch_what_scicat_refuses():
    body = plan().dataset
    assert openapi.errors({**body, "shotKey": "x"}, "CreateDatasetDto")  # unknown top-level key
    assert contract.dataset_errors({**body, "shotKey": "x"}, "v4") == ["shotKey: not a field of UploadDataset"]
    no_owner = {key: value for key, value in body.items() if key != "owner"}
    assert "owner: required" in contract.dataset_errors(no_owner, "v4")
    v3 = plan("v3").dataset
    del v3["principalInvestigator"]
    assert openapi.errors(v3, "CreateRawDatasetObsoleteDto")
    assert contract.dataset_errors(v3, "v3") == ["principalInvestigator: required"]
    assert contract.dataset_errors({**body, "contactEmail": "not an address"}, "v4")


def test_a_value_json_cannot_hold_is_refused_with_its_reason_before_sending():
    made = plan()
    made.dataset["scientificMetadata"]["raw"] = b"\x00\x01"  # say, a Binary a DAQ stored
    with pytest.raises(Refused, match="cannot be written as JSON: Object of type bytes"):
        checked(made, "v4")


def test_a_voided_entry_says_so_in_scicat_and_an_entry_back_in_force_does_not():
    """Voiding is an edit (a new revision, a PATCH): the dataset must carry it, or SciCat goes on
    presenting a shot the physicists struck out as good."""
    voided = {"reason": "wrong target", "who": "ada", "when": datetime(2025, 12, 2, 14, 0, tzinfo=UTC)}
    body = plan(voided=voided).dataset
    assert body["scientificMetadata"]["labbook"]["voided"] == {
        "reason": "wrong target",
        "who": "ada",
        "when": "2025-12-02T14:00:00.000000Z",
    }
    assert "voided" in body["keywords"] and "lwfa" in body["keywords"]
    assert plan(voided=voided).patch["keywords"] == body["keywords"]
    back = plan(voided=None).patch
    assert "voided" not in back["scientificMetadata"]["labbook"] and "voided" not in back["keywords"]


def test_metadata_keys_are_searchable_paths_in_scicat():
    """SciCat's MongoDB reads a dot in a key as a path: "E.peak" could never be searched for."""
    event = {**EVENTS[1], "_collection": "diag.v2", "values": {"E.peak": 1.0, "$where": "x", "fit": {"a.b": 2}}}
    body = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", events=[event, EVENTS[0]]).dataset
    events = body["scientificMetadata"]["events"]
    assert set(events) == {"diag/v2", "diagnostics"}
    camera = events["diag/v2"]["camera"]
    assert camera["E/peak"] == {"value": 1.0, "unit": ""} and camera["_$where"] == "x" and camera["fit"] == {"a/b": 2}
    assert events["diagnostics"]["spectrometer"]["peak"] == {"value": 230.5, "unit": "MeV"}


def test_a_file_named_by_an_event_and_found_in_the_listed_folder_is_listed_once():
    """The DAQ's event names the frame it wrote, and the profile's folder listing finds it too: SciCat
    must list it once (the event's record, which has its checksum), not twice."""
    event = {**EVENTS[0], "values": {"files": [{"path": "/daq/fast/a.h5", "size": 10, "checksum": "sha256:ab"}]}}
    listed = [{"path": "/daq/fast/a.h5", "size": 10, "mtime": LASER_NS}, {"path": "/daq/fast/b.h5", "size": 2}]
    blocks = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", events=[event], listed_files=listed).blocks
    files = [item for block in blocks for item in block["dataFileList"]]
    assert sorted(item["path"] for item in files) == ["/daq/fast/a.h5", "/daq/fast/b.h5"]
    assert next(item for item in files if item["path"] == "/daq/fast/a.h5")["chk"] == "sha256:ab"
    assert sum(block["size"] for block in blocks) == 12


def test_a_file_size_sent_as_a_float_or_text_keeps_its_value():
    """A DAQ written in JavaScript or LabVIEW sends 2048.0, a CSV-fed one "2048": not a size of 0."""
    sizes = [2048.0, "2048", 3 * 1024**3 + 0.0, -1, "²", True, 1.5]
    event = {**EVENTS[0], "values": {"files": [{"path": f"/d/{i}", "size": s} for i, s in enumerate(sizes)]}}
    blocks = build(an_entry(), FIELDS, Target(), RECIPE, entry_url="u", events=[event]).blocks
    size = {item["path"]: item["size"] for block in blocks for item in block["dataFileList"]}
    assert size == {"/d/0": 2048, "/d/1": 2048, "/d/2": 3 * 1024**3, "/d/3": 0, "/d/4": 0, "/d/5": 0, "/d/6": 0}
    assert all(type(value) is int for value in size.values())


def test_creation_time_is_the_shots_laser_time_when_only_the_relay_record_has_it():
    """An entry typed before the relay had its shot has no laser time of its own; the relay's record
    has it by the time the dataset is built. The entry's save time (minutes later, maybe the next
    day) would date the dataset and its day folder wrong."""
    shot = {"shot_key": "LWFA-20251202-000042", "laser_ts_ns": LASER_NS}
    entry = an_entry(laser_ts_ns=None, created=datetime(2025, 12, 3, 0, 10, tzinfo=UTC))
    body = build(entry, FIELDS, TARGET, RECIPE, entry_url="u", shot=shot).dataset
    assert body["creationTime"] == "2025-12-02T13:00:00.123456Z"
    assert body["sourceFolder"] == "/data/LWFA/20251202/42"


@pytest.mark.parametrize("key", ["labbook", "events", "shot"])
def test_a_field_named_like_labbooks_own_metadata_keeps_its_value(key):
    """A sheet field keyed `events` (say, the number of events a detector counted) must not be
    replaced by the shot's events, nor a `labbook` field by the link back."""
    fields = [*FIELDS, {"key": key, "label": key, "type": "integer", "unit": "counts"}]
    entry = an_entry(values={"energy": 1.5, key: 17})
    metadata = build(entry, fields, TARGET, RECIPE, entry_url="u", shot={"shot_key": "k"}, events=EVENTS).dataset[
        "scientificMetadata"
    ]
    assert metadata[f"field_{key}"] == {"value": 17, "unit": "counts"}
    assert metadata["labbook"]["entry_id"] == entry["_id"] and "spectrometer" in metadata["events"]["diagnostics"]


@pytest.mark.parametrize("note", ["../../etc", "..", "run/7", "a\nb"])
def test_a_typed_value_cannot_move_the_source_folder_elsewhere(note):
    """sourceFolder tells SciCat's archiver what to archive and where to retrieve to: a value typed
    into a sheet must not walk out of the rule's folder (`..`) or add levels to it (`/`)."""
    recipe = Recipe(source_folder_template="/data/{experiment}/{field_note}")
    with pytest.raises(TemplateError, match=r"\{field_note\}"):
        build(an_entry(values={"note": note}), FIELDS, TARGET, recipe, entry_url="u")


def test_the_daq_folder_placeholder_is_a_path_and_plain_values_pass():
    recipe = Recipe(source_folder_template="{daq_folder}/{shot_key}/{field_note} ü {field_target}")
    body = build(an_entry(values={"note": "run.7 {x} $y", "target": "Al"}), FIELDS, TARGET, recipe, entry_url="u")
    assert body.dataset["sourceFolder"] == "/daq/fast/LWFA-20251202-000042/run.7 {x} $y ü Al"


def test_the_relay_records_values_and_an_events_series_keep_the_units_they_name():
    """The shot's envelope names its units as the events do (`metadata.units`); a spectrum is a
    list of numbers with one unit. Neither may reach SciCat as bare numbers."""
    shot = {
        "shot_key": "LWFA-20251202-000042",
        "laser_ts_ns": LASER_NS,
        "values": {"energy_J": 1.2, "mode": "burst", "spectrum": [1, 2.5]},
        "metadata": {"units": {"energy_J": "J", "spectrum": "counts"}},
    }
    event = {**EVENTS[0], "values": {"spectrum": [3, 4.5], "bins": [1, 2]}, "metadata": {"units": {"spectrum": "pC"}}}
    metadata = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", shot=shot, events=[event]).dataset[
        "scientificMetadata"
    ]
    assert metadata["shot"]["values"] == {
        "energy_J": {"value": 1.2, "unit": "J"},
        "mode": "burst",
        "spectrum": {"value": [1, 2.5], "unit": "counts"},
    }
    spectrometer = metadata["events"]["diagnostics"]["spectrometer"]
    assert spectrometer["spectrum"] == {"value": [3, 4.5], "unit": "pC"}
    assert spectrometer["bins"] == [1, 2]  # no unit named: as it was
    odd = {**EVENTS[1], "metadata": {"units": ["J"]}, "values": {"exposure": 0.002}}  # a DAQ's own idea of units
    camera = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", events=[odd]).dataset["scientificMetadata"]
    assert camera["events"]["diagnostics"]["camera"]["exposure"] == {"value": 0.002, "unit": ""}


def test_one_file_named_by_its_full_path_and_relative_to_the_source_folder_is_listed_once():
    named = [{"path": "/data/LWFA/20251202/42/spec.h5", "size": 1}, {"path": "spec.h5", "size": 1}]
    event = {**EVENTS[1], "metadata": {"files": named[:1]}, "values": {"files": named[1:]}}
    blocks = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", events=[event]).blocks
    assert [item["path"] for block in blocks for item in block["dataFileList"]] == ["spec.h5"]


def test_a_file_time_sent_as_epoch_text_keeps_its_time():
    """ "1764680402" (seconds, as text) is the file's time, not "unknown" (then the dataset's time)."""
    files = [{"path": "/d/a", "size": 1, "mtime": "1764680402"}, {"path": "/d/b", "size": 1, "mtime": "1764680402500"}]
    event = {**EVENTS[1], "values": {"files": files}, "metadata": {}}
    blocks = build(an_entry(), FIELDS, TARGET, RECIPE, entry_url="u", events=[event]).blocks
    times = {item["path"]: item["time"] for block in blocks for item in block["dataFileList"]}
    assert times == {"/d/a": "2025-12-02T13:00:02.000000Z", "/d/b": "2025-12-02T13:00:02.500000Z"}


@pytest.mark.parametrize("entry_id", ["a1b2c3", "LWFA-20261124-000001", "x y", "Kühler", "a/b", "50%", "~._-"])
def test_an_entrys_link_back_is_its_pages_path_as_django_reverses_it(entry_id):
    try:
        expected = reverse("shotsheet:entry_detail", args=["shots", entry_id])
    except NoReverseMatch:
        expected = ""  # no page for such an id: no link, not a wrong one
    assert entry_path("shots", entry_id) == expected
    assert entry_path("shots", entry_id) == expected  # and again, from the sheet's path kept
