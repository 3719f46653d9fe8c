"""Extraction from real output folders written by the real libraries: every value with its unit."""

import subprocess
from pathlib import Path

import pytest

from simulations.extract import ExtractError, extract_run, run_id

from .runs import picongpu_run, smilei_run, warpx_run

CHECK_H5 = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "openPMD_check_h5"


def test_the_warpx_like_hdf5_series_is_valid_openpmd(tmp_path):
    run = warpx_run(tmp_path / "run")
    checked = subprocess.run(
        [str(CHECK_H5), "-i", str(run / "diags/diag1/openpmd_000200.h5")], capture_output=True, text=True
    )
    assert "Result: 0 Errors" in checked.stdout, checked.stdout[-2000:]


@pytest.mark.parametrize(
    "backend, encoding, pattern",
    [
        ("h5", "file", "diags/diag1/openpmd_%06T.h5"),
        ("bp", "group", "diags/diag1/openpmd.bp"),
        ("bp5", "variable", "diags/diag1/openpmd.bp5"),
    ],
)
def test_a_warpx_run_in_every_encoding(tmp_path, backend, encoding, pattern):
    run = extract_run(warpx_run(tmp_path / "lwfa", backend=backend, encoding=encoding))
    assert run["code"] == "warpx" and run["software"] == "WarpX" and run["software_version"] == "25.01"
    assert run["_id"] == run_id(tmp_path / "lwfa") and run["extractor"]["version"]
    [series] = run["series"]
    assert series["path"] == str(tmp_path / "lwfa" / pattern)
    assert (
        series["iteration_encoding"]
        == {"file": "file_based", "group": "group_based", "variable": "variable_based"}[encoding]
    )
    assert series["openPMD"] == "1.1.0" and series["openPMD_extension"] == 1
    assert series["date"] == "2026-11-30 22:10:00 +0100" and series["author"].startswith("Ada Lovelace")
    assert series["iterations"] == {
        "count": 3,
        "first": 0,
        "last": 200,
        "dt": {"value": 1.3e-16, "unit": "s"},
        "last_time": {"value": pytest.approx(2.6e-14), "unit": "s"},
    }
    meshes = {m["name"]: m for m in series["meshes"]}
    assert meshes["E"]["unit"] == "V/m" and meshes["B"]["unit"] == "T"
    assert meshes["E"]["shape"] == [64, 32] and meshes["E"]["axis_labels"] == ["z", "x"]
    assert meshes["E"]["components"] == ["x", "y", "z"] and meshes["E"]["geometry"] == "cartesian"
    assert meshes["E"]["grid_spacing"] == {"value": [4e-8, 1.25e-6], "unit": "m"}
    assert meshes["E"]["grid_offset"] == {"value": [-20e-6, -20e-6], "unit": "m"}
    assert series["ed_pic"] == {
        "fieldSolver": "Yee",
        "fieldBoundary": ["open"] * 4,
        "particleBoundary": ["absorbing"] * 4,
        "currentSmoothing": "none",
        "chargeCorrection": "none",
    }
    [electrons] = series["species"]
    assert electrons["name"] == "electrons" and electrons["count"] == 1000
    assert electrons["particlePush"] == "Boris" and electrons["particleShape"] == 3.0
    assert {"position", "momentum", "weighting", "charge", "mass"} <= set(electrons["records"])
    parameters = run["parameters"]
    assert parameters["laser1.a0"] == {"value": 2.5, "unit": "1", "source": "a0"}  # from my_constants
    assert parameters["laser1.wavelength"] == {"value": 0.8e-6, "unit": "m"}
    assert parameters["geometry.prob_lo"] == {"value": [-20e-6, -20e-6], "unit": "m"}
    assert parameters["amr.n_cell"] == {"value": [64, 32], "unit": "cells"}
    assert parameters["algo.maxwell_solver"] == {"value": "yee", "unit": ""}
    assert run["summary"] == {"a0": {"value": 2.5, "unit": "1"}, "density": {"value": 1.5e24, "unit": "m^-3"}}
    inputs = next(f for f in run["files"] if f["path"] == "warpx_used_inputs")
    assert len(inputs["sha256"]) == 64 and inputs["size"] > 0


@pytest.mark.parametrize("backend", ["bp", "h5"])
def test_a_picongpu_run_with_its_code_attributes(tmp_path, backend):
    folder = picongpu_run(tmp_path / "pic", backend=backend)
    if backend == "h5":
        checked = subprocess.run(
            [str(CHECK_H5), "-i", str(folder / "simOutput/openPMD/simData_001000.h5")], capture_output=True, text=True
        )
        assert "Result: 0 Errors" in checked.stdout, checked.stdout[-2000:]
    run = extract_run(folder)
    assert run["code"] == "picongpu" and run["software_version"] == "0.7.0"
    [series] = run["series"]
    assert series["path"].endswith(f"simOutput/openPMD/simData_%06T.{backend}")
    assert series["iterations"]["count"] == 3 and series["iterations"]["last"] == 1000
    assert series["iterations"]["dt"] == {"value": 1.3901e-16, "unit": "s"}
    code = series["code_attributes"]
    assert code["picongpuIOVersionMajor"] == 1 and code["picongpuIOVersionMinor"] == 0 and code["sim_slides"] == 0
    assert code["unit_length"] == {"value": 1e-6, "unit": "m"} and code["unit_time"] == {
        "value": 1.3901e-16,
        "unit": "s",
    }
    assert code["cell_width"] == {
        "value": pytest.approx(0.1772e-6),
        "unit": "m",
        "code_value": 0.1772,
        "code_unit": "unit_length",
    }
    assert code["unit_mass"] == {"value": 9.1093837015e-31, "unit": "kg"} and code["picongpuIOVersionMajor"] == 1
    assert series["species"][0]["particlePush"] == "HigueraCary" and series["species"][0]["count"] == 500


def test_a_smilei_run_read_without_running_its_namelist(tmp_path):
    run = extract_run(smilei_run(tmp_path / "smilei"))
    assert run["code"] == "smilei" and run["software_version"] == "5.1-4-g1234567-master"
    omega = run["units"]["reference_angular_frequency"]["value"]
    assert omega == pytest.approx(2.354564459e15) and run["units"]["reference_angular_frequency"]["unit"] == "rad/s"
    parameters = run["parameters"]
    cell = parameters["Main.cell_length"]
    assert cell["unit"] == "m" and cell["value"] == pytest.approx([0.04e-6, 0.16e-6])  # λ/20 and 4λ/20
    assert cell["code_unit"] == "c/ω_r" and cell["code_value"] == pytest.approx([0.31415927, 1.2566371])
    assert parameters["Main.timestep"]["unit"] == "s" and parameters["Main.timestep"]["value"] == pytest.approx(
        1.26754e-16, rel=1e-4
    )
    assert parameters["Main.geometry"] == "2Dcartesian"
    assert parameters["LaserGaussian2D.a0"] == {"value": 2.5, "unit": "1"}
    assert parameters["LaserGaussian2D.time_envelope"] == {
        "source": "tgaussian(center=2.**0.5 * 15. * t0, fwhm=15. * t0)"
    }
    assert parameters["Species.number_density"] == {"source": "trapezoidal(n0, xvacuum=20. * l0, xplateau=80. * l0)"}
    assert parameters["Species.mass"] == {"value": 1.0, "unit": "m_e"}
    assert run["summary"]["a0"] == {"value": 2.5, "unit": "1"}
    density = run["summary"]["density"]  # n0 = 0.0017 critical densities at 0.8 µm
    assert density["unit"] == "m^-3" and density["value"] == pytest.approx(2.9613e24, rel=1e-3)
    assert density["code_value"] == 0.0017 and density["code_unit"] == "n_c(ω_r)"
    assert run["scalars"]["columns"] == ["time", "Utot", "Ukin", "Uelm", "Ukin_electron"]
    assert run["scalars"]["rows"] == 2 and run["scalars"]["last_time"] == {"value": 2.9845130209, "unit": "1/ω_r"}
    [fields] = run["outputs"]
    assert (
        fields["file"] == "Fields0.h5" and fields["iterations"]["count"] == 3 and fields["iterations"]["last"] == 2000
    )
    assert fields["datasets"] == ["Bz", "Ex", "Ey"]
    assert fields["iterations"]["last_time"]["unit"] == "s"


def test_without_a_reference_frequency_smilei_values_keep_their_code_unit(tmp_path):
    namelist = (
        "Main(geometry='1Dcartesian', cell_length=[0.1], timestep=0.09)\nSpecies(name='e', number_density=0.01)\n"
    )
    run = extract_run(smilei_run(tmp_path / "s", namelist=namelist))
    assert run["parameters"]["Main.cell_length"] == {
        "code_value": [0.1],
        "code_unit": "c/ω_r",
        "value": [0.1],
        "unit": "c/ω_r",
    }
    assert run["summary"]["density"]["unit"] == "n_c(ω_r)"  # never passed off as SI
    assert "no SI values" in run["units"]["note"]


@pytest.mark.parametrize(
    "make, problem",
    [
        (
            lambda d: (d / "out.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40),
            "out.h5: not a readable openPMD series",
        ),
        (
            lambda d: (d / "notes.txt").write_text("x"),
            "unknown code (no openPMD series, no WarpX inputs, no SMILEI namelist)",
        ),
        (lambda d: (d / "smilei.py").write_text("import os\nos.system('rm -rf /')\n"), "smilei.py, line 1: imports os"),
        (
            lambda d: (d / "smilei.py").write_text("Main(cell_length=[open('/etc/passwd').read()])\n"),
            "smilei.py, line 1: calls open('/etc/passwd').read()",
        ),
        (lambda d: (d / "smilei.py").write_text("Main(x=().__class__)\n"), "smilei.py, line 1: uses __class__"),
        (lambda d: (d / "smilei.py").write_text("Main(\n  x = [1,\n"), "smilei.py, line 2: not Python"),
        (
            lambda d: (d / "warpx_used_inputs").write_text("max_step = 10\nthis is not an input\n"),
            "warpx_used_inputs, line 2: not `name = value`",
        ),
    ],
)
def test_bad_runs_are_refused_with_the_file_and_the_problem(tmp_path, make, problem):
    folder = tmp_path / "bad"
    folder.mkdir()
    make(folder)
    with pytest.raises(ExtractError) as refused:
        extract_run(folder)
    assert problem in str(refused.value) and str(folder) in str(refused.value)


def test_a_truncated_series_file_is_refused(tmp_path):
    run = warpx_run(tmp_path / "cut", encoding="group")
    path = run / "diags/diag1/openpmd.h5"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ExtractError, match=r"openpmd\.h5: not a readable openPMD series"):
        extract_run(run)


def test_a_folder_still_being_written_is_not_extracted_yet(tmp_path):
    run = warpx_run(tmp_path / "busy")
    with pytest.raises(ExtractError, match=r"still being written \(changed \d+ s ago\)"):
        extract_run(run, settle_seconds=60)
