"""Simulation runs as SciCat derived datasets: inputs are the datasets of the shots they model,
registered once, patched when extracted again, and waiting while a modelled shot is not in SciCat."""

from urllib.parse import quote

import pytest

from catalogue import contract, store
from catalogue.builder import build_derived, iso, simulation_pid
from catalogue.services import Sync
from simulations.services import extract_runs
from tests.simulations.runs import smilei_run, warpx_run

from .openapi import DERIVED_CREATE, errors
from .test_sync import pid_of, sync_all

SHOT = "LWFA-20261202-000042"


@pytest.fixture
def simulations_registered(catalogued):
    catalogued.rule.server.register_simulations = True
    catalogued.rule.server.save()
    return catalogued


def extract(path, shots=None):
    [result] = extract_runs([path], shot_keys=shots, settle_seconds=0)
    assert not result.error, result.error
    return result.run


def test_a_run_becomes_a_derived_dataset_of_the_shots_it_models(simulations_registered, scicat, tmp_path):
    entry = simulations_registered.entries.add(shot_key=SHOT)
    run = extract(warpx_run(tmp_path / "lwfa-a0-2.5"), shots=[SHOT])
    sync = sync_all()
    dataset = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]
    assert dataset["type"] == "derived" and dataset["inputDatasets"] == [pid_of(entry)]
    assert dataset["usedSoftware"] == ["WarpX 25.01"] and dataset["datasetName"] == "WarpX 25.01 lwfa-a0-2.5"
    assert dataset["jobParameters"]["laser1/a0"] == {"value": 2.5, "unit": "1", "source": "a0"}
    assert dataset["jobParameters"]["laser1/wavelength"] == {"value": 8e-07, "unit": "m"}
    scientific = dataset["scientificMetadata"]
    assert scientific["a0"] == {"value": 2.5, "unit": "1"} and scientific["density"] == {
        "value": 1.5e24,
        "unit": "m^-3",
    }
    assert scientific["shot_keys"] == [SHOT] and scientific["labbook"]["simulation_id"] == run["_id"]
    assert scientific["labbook"]["simulation_url"] == f"https://labbook.example.org/simulations/{run['_id']}/"
    [series] = scientific["openpmd_series"]
    assert {m["name"]: m["unit"] for m in series["meshes"]} == {"B": "T", "E": "V/m"}
    files = {item["path"]: item for block in scicat.state.blocks for item in block["dataFileList"]}
    digest = next(f["sha256"] for f in run["files"] if f["path"] == "warpx_used_inputs")
    assert files["warpx_used_inputs"]["chk"] == f"sha256:{digest}"
    assert scicat.state.invalid == [] and sync.stats.failed == 0
    assert store.counts() == {"registered": 2, "pending": 0, "failed": 0}


def test_a_run_waits_until_its_shot_is_in_scicat(simulations_registered, scicat, tmp_path):
    scicat.state.server_errors = 0
    run = extract(smilei_run(tmp_path / "smilei"), shots=[SHOT])
    entry = simulations_registered.entries.add(shot_key=SHOT)
    scicat.state.refuse_names.add(f"Shots {SHOT}")  # the shot's dataset is refused at first
    sync = Sync()
    sync.run_once()
    assert sync.stats.waiting == 1 and simulation_pid(run["_id"], "20.500.12345") not in scicat.state.datasets
    [waiting] = store.jobs_of_entry(run["_id"], range(1, run["rev"] + 1))
    assert waiting["last_error"].startswith("waiting") and SHOT in waiting["last_error"]  # pending or refused
    scicat.state.refuse_names.clear()
    [failed] = store.failed_jobs()
    store.requeue(failed["_id"])
    store.retry_later(store.Job.of(waiting), "", __import__("datetime").timedelta(0))
    sync_all(sync)
    dataset = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]
    assert dataset["inputDatasets"] == [pid_of(entry)] and dataset["usedSoftware"] == ["Smilei 5.1-4-g1234567-master"]
    assert dataset["jobParameters"]["Main/cell_length"]["unit"] == "m"


def test_extracting_a_run_again_is_one_patch_not_a_new_dataset(simulations_registered, scicat, tmp_path):
    folder = warpx_run(tmp_path / "w")
    run = extract(folder)
    sync_all()
    inputs = folder / "warpx_used_inputs"
    inputs.write_text(inputs.read_text().replace("a0 = 2.5", "a0 = 3.0"))
    again = extract(folder)
    assert again["rev"] == run["rev"] + 1
    sync = sync_all()
    pid = simulation_pid(run["_id"], "20.500.12345")
    assert sync.stats.patched == 1 and scicat.state.count("POST", "/api/v4/datasets") == 1
    assert scicat.state.datasets[pid]["scientificMetadata"]["a0"]["value"] == 3.0
    assert scicat.state.datasets[pid]["inputDatasets"] == []


def test_without_a_server_for_simulations_nothing_is_queued(catalogued, scicat, tmp_path):
    extract(warpx_run(tmp_path / "w"))
    sync_all()
    assert store.counts() == {"registered": 0, "pending": 0, "failed": 0}


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_the_derived_body_is_what_scicat_takes(tmp_path, mongo_db, version):
    from catalogue.builder import Target

    run = extract(warpx_run(tmp_path / "w"), shots=[SHOT])
    target = Target(api_version=version, owner="ingestor", owner_group="laser", contact_email="lab@example.org",
                    principal_investigator="Ada", creation_location="lab", pid_prefix="20.500.12345")  # fmt: skip
    plan = build_derived(run, target, input_pids=["20.500.12345/abc"], run_url="https://l/simulations/x/")
    assert contract.dataset_errors(plan.dataset, version) == []
    assert errors(plan.dataset, DERIVED_CREATE[version]) == []
    if version == "v3":
        assert plan.dataset["investigator"] == "Ada"


# --- review (session 22): what a run's files say reaches SciCat unchanged -----------------------------
def test_a_runs_creation_time_is_when_it_ran_not_when_it_was_extracted(simulations_registered, scicat, tmp_path):
    from zoneinfo import ZoneInfo

    from django.conf import settings

    warpx = extract(warpx_run(tmp_path / "w"))  # its openPMD series: date "2026-11-30 22:10:00 +0100"
    smilei = extract(smilei_run(tmp_path / "s"))  # its Fields0.h5: "2026-11-30 23:00:00", no offset: the lab's
    sync_all()
    datasets = scicat.state.datasets
    assert datasets[simulation_pid(warpx["_id"], "20.500.12345")]["creationTime"] == "2026-11-30T21:10:00.000000Z"
    lab_time = __import__("datetime").datetime(2026, 11, 30, 23, tzinfo=ZoneInfo(settings.TIME_ZONE))
    assert datasets[simulation_pid(smilei["_id"], "20.500.12345")]["creationTime"] == iso(lab_time)


def test_a_run_without_a_written_date_is_dated_by_its_newest_file(tmp_path, mongo_db):
    from catalogue.builder import Target, run_time

    run = extract(warpx_run(tmp_path / "w"))
    newest = max(item["mtime"] for item in run["files"])
    undated = {**run, "series": [{**s, "date": ""} for s in run["series"]]}
    plan = build_derived(undated, Target(), input_pids=[], run_url="")
    assert plan.dataset["creationTime"] == iso(run_time(undated, "UTC")) and run_time(undated, "UTC").timestamp() == (
        pytest.approx(newest, abs=1e-6)
    )


def test_the_meshes_keep_their_axes_offsets_and_components(simulations_registered, scicat, tmp_path):
    run = extract(warpx_run(tmp_path / "w"))
    sync_all()
    [series] = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]["scientificMetadata"]["openpmd_series"]
    electric = next(mesh for mesh in series["meshes"] if mesh["name"] == "E")
    assert electric["axis_labels"] == ["z", "x"] and electric["components"] == ["x", "y", "z"]
    assert electric["grid_spacing"] == {"value": [4e-8, 1.25e-6], "unit": "m"}  # z then x, as the labels say
    assert electric["grid_offset"] == {"value": [-20e-6, -20e-6], "unit": "m"}
    assert series["date"] == "2026-11-30 22:10:00 +0100" and series["author"] == "Ada Lovelace <ada@lab.example>"


def test_a_smilei_run_keeps_its_reference_frequency_unit_and_its_outputs(simulations_registered, scicat, tmp_path):
    run = extract(smilei_run(tmp_path / "s"))
    sync_all()
    dataset = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]
    omega = dataset["jobParameters"]["Main/reference_angular_frequency_SI"]
    assert omega["unit"] == "rad/s" and omega["value"] == pytest.approx(2.354564459e15)  # was "SMILEI normalised"
    scientific = dataset["scientificMetadata"]
    assert scientific["scalars"]["rows"] == 2 and scientific["scalars"]["last_time"]["unit"] == "1/ω_r"
    [fields] = scientific["outputs"]
    assert fields["file"] == "Fields0.h5" and fields["iterations"]["count"] == 3


def test_a_run_waiting_for_a_refused_shot_says_it_was_refused(simulations_registered, scicat, tmp_path):
    from datetime import timedelta

    entry = simulations_registered.entries.add(shot_key=SHOT)
    run = extract(warpx_run(tmp_path / "w"), shots=[SHOT])
    scicat.state.refuse_names.add(f"Shots {SHOT}")  # the shot's dataset is refused, for good
    sync = Sync()
    sync.run_once()
    [waiting] = store.jobs_of_entry(run["_id"], range(1, run["rev"] + 1))
    store.retry_later(store.Job.of(waiting), "", timedelta(0))
    Sync().run_once()  # a sync started now: due at once
    [waiting] = store.jobs_of_entry(run["_id"], range(1, run["rev"] + 1))
    assert waiting["status"] == store.PENDING  # queued again, the shot's dataset goes and so does the run
    assert f"the dataset of shot {SHOT} (entry {entry['_id']}) was refused" in waiting["last_error"]
    assert f"datasetName 'Shots {SHOT}' is refused" in waiting["last_error"]


def test_a_huge_integer_parameter_is_stored_and_sent_exactly(simulations_registered, scicat, tmp_path):
    folder = warpx_run(tmp_path / "w")
    inputs = folder / "warpx_used_inputs"
    inputs.write_text(inputs.read_text().replace("max_step = 200", "max_step = 100000000000000000000"))
    run = extract(folder)  # beyond int64: MongoDB cannot hold it, the extraction ended with OverflowError
    sync_all()
    parameters = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]["jobParameters"]
    assert parameters["max_step"] == {"value": "100000000000000000000", "unit": "steps"}


def test_a_nan_in_a_runs_summary_goes_as_text_without_a_unit(tmp_path, mongo_db):
    from catalogue.builder import Target

    run = extract(warpx_run(tmp_path / "w"))
    failed = {**run, "summary": {"a0": {"value": float("nan"), "unit": "1"}}}
    plan = build_derived(failed, Target(), input_pids=[], run_url="")
    assert plan.dataset["scientificMetadata"]["a0"] == "NaN"  # as an entry's NaN: no unit for SciCat to convert


def test_a_run_extracted_on_a_machine_whose_clock_is_behind_is_still_registered(
    simulations_registered, scicat, tmp_path, mongo_db
):
    from datetime import timedelta

    from simulations import store as simulation_store

    first = extract(warpx_run(tmp_path / "a"))
    sync = sync_all()  # the scan's position: `first`'s extraction time
    for name, behind in (("b", 2), ("c", 600)):  # extract_sim on an HPC login node, its clock 2 s / 10 min behind
        run = extract(warpx_run(tmp_path / name))
        mongo_db[simulation_store.SIMULATIONS].update_one(
            {"_id": run["_id"]}, {"$set": {"updated": first["updated"] - timedelta(seconds=behind)}}
        )
    sync_all(sync)
    assert len(scicat.state.datasets) == 2  # 2 s: the next scan looks CLOCK_MARGIN back
    assert sync.reconcile() == 1  # 10 min: the reconciliation compares every run's revision with SciCat's
    sync_all(sync)
    assert len(scicat.state.datasets) == 3 and store.counts() == {"registered": 3, "pending": 0, "failed": 0}


def test_a_shot_entered_after_its_run_was_registered_becomes_its_input(simulations_registered, scicat, tmp_path):
    run = extract(warpx_run(tmp_path / "w"), shots=[SHOT])
    sync = sync_all()  # no entry of the shot yet: the run goes without inputs
    pid = simulation_pid(run["_id"], "20.500.12345")
    assert scicat.state.datasets[pid]["inputDatasets"] == []
    entry = simulations_registered.entries.add(shot_key=SHOT)  # typed in the next morning
    sync_all(sync)
    assert scicat.state.datasets[pid]["inputDatasets"] == [pid_of(entry)]  # stayed [] for good
    assert scicat.state.count("POST", "/api/v4/datasets") == 2 and sync.stats.patched == 1
    simulations_registered.entries.edit(entry, note="second look")
    sync_all(sync)  # the entry's PATCH; the run, asked again, holds its inputs already: not PATCHed
    assert sync.stats.patched == 2 and scicat.state.count("PATCH", f"/api/v4/datasets/{quote(pid, safe='')}") == 1


def test_a_list_of_lists_goes_as_a_list_not_as_the_text_mongodb_kept(simulations_registered, scicat, tmp_path):
    run = extract(smilei_run(tmp_path / "s"))  # FerretDB refuses arrays in arrays: stored as JSON text
    sync_all()
    parameters = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]["jobParameters"]
    assert parameters["Main/EM_boundary_conditions"]["value"] == [["silver-muller"], ["periodic"]]
    assert parameters["Species/boundary_conditions"]["value"] == [["remove", "remove"], ["periodic", "periodic"]]


def test_api_v3_registers_a_run_and_updates_it(simulations_registered, scicat, tmp_path):
    scicat.state.version = "v3"
    simulations_registered.rule.server.api_version = "v3"
    simulations_registered.rule.server.save()
    folder = warpx_run(tmp_path / "w")
    run = extract(folder, shots=[SHOT])
    sync_all()
    entry = simulations_registered.entries.add(shot_key=SHOT)
    inputs = folder / "warpx_used_inputs"
    inputs.write_text(inputs.read_text().replace("a0 = 2.5", "a0 = 3.0"))
    extract(folder)
    sync_all()
    dataset = scicat.state.datasets[simulation_pid(run["_id"], "20.500.12345")]
    assert dataset["investigator"] == "Ada Lovelace" and dataset["inputDatasets"] == [pid_of(entry)]
    assert dataset["scientificMetadata"]["a0"]["value"] == 3.0 and scicat.state.invalid == []
    assert scicat.state.count("POST", "/api/v3/datasets") == 2
