"""Simulation output folders as the codes write them, made with the real libraries: openpmd-api
writes WarpX-like and PIConGPU-like series (HDF5 or ADIOS2, with the ED-PIC attributes the codes
set, so the HDF5 ones pass openPMD_check_h5), h5py a SMILEI-like folder with its namelist."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import openpmd_api as io

E_FIELD = {io.Unit_Dimension.L: 1, io.Unit_Dimension.M: 1, io.Unit_Dimension.T: -3, io.Unit_Dimension.I: -1}
B_FIELD = {io.Unit_Dimension.M: 1, io.Unit_Dimension.T: -2, io.Unit_Dimension.I: -1}
ELECTRON_CHARGE, ELECTRON_MASS = -1.602176634e-19, 9.1093837015e-31

WARPX_INPUTS = """\
max_step = 200
amr.n_cell = 64 32
geometry.dims = 2
geometry.prob_lo = -20.e-6 -20.e-6
geometry.prob_hi = 20.e-6 20.e-6
my_constants.a0 = 2.5
my_constants.n0 = 1.5e24
algo.maxwell_solver = yee
warpx.cfl = 0.99
electrons.density = n0
electrons.profile = constant
lasers.names = laser1
laser1.profile = Gaussian
laser1.wavelength = 0.8e-6
laser1.a0 = a0
laser1.profile_duration = 15.e-15
"""


def series_attributes(series, software: str, version: str) -> None:
    series.set_software(software, version)
    series.set_date("2026-11-30 22:10:00 +0100")
    series.set_author("Ada Lovelace <ada@lab.example>")
    series.set_openPMD_extension(1)  # ED-PIC


def write_iteration(it, step: int, dt: float, grid: tuple[int, int], particles: int, code: str) -> None:
    it.dt, it.time, it.time_unit_SI = dt, step * dt, 1.0
    for name, value in (
        ("fieldSolver", "Yee"),
        ("fieldBoundary", ["open", "open", "open", "open"]),
        ("particleBoundary", ["absorbing", "absorbing", "absorbing", "absorbing"]),
        ("currentSmoothing", "none"),
        ("chargeCorrection", "none"),
    ):
        it.meshes.set_attribute(name, value)
    data = np.zeros(grid, dtype=np.float32)
    for name, unit in (("E", E_FIELD), ("B", B_FIELD)):
        mesh = it.meshes[name]
        mesh.geometry = io.Geometry.cartesian
        mesh.grid_spacing = [4e-8, 1.25e-6]
        mesh.grid_global_offset = [-20e-6, -20e-6]
        mesh.grid_unit_SI = 1.0
        mesh.axis_labels = ["z", "x"]
        mesh.unit_dimension = unit
        mesh.set_attribute("fieldSmoothing", "none")
        for component in ("x", "y", "z"):
            mesh[component].reset_dataset(io.Dataset(data.dtype, data.shape))
            mesh[component].store_chunk(data)
            mesh[component].position = [0.5, 0.5]
            mesh[component].unit_SI = 1.0
    species = it.particles["electrons"]
    zeros = np.zeros(particles)
    for record, components in (("position", "xz"), ("momentum", "xyz"), ("positionOffset", "xz")):
        for component in components:
            species[record][component].reset_dataset(io.Dataset(zeros.dtype, zeros.shape))
            species[record][component].store_chunk(zeros)
    scalar = io.Record_Component.SCALAR
    species["weighting"][scalar].reset_dataset(io.Dataset(zeros.dtype, zeros.shape))
    species["weighting"][scalar].store_chunk(np.ones(particles))
    for record, value in (("charge", ELECTRON_CHARGE), ("mass", ELECTRON_MASS)):
        species[record][scalar].reset_dataset(io.Dataset(np.dtype("float64"), [particles]))
        species[record][scalar].make_constant(value)
    species["charge"].unit_dimension = {io.Unit_Dimension.I: 1, io.Unit_Dimension.T: 1}
    species["mass"].unit_dimension = {io.Unit_Dimension.M: 1}
    for record in ("position", "momentum", "positionOffset", "weighting", "charge", "mass"):
        species[record].set_attribute("macroWeighted", np.uint32(0 if record != "weighting" else 1))
        species[record].set_attribute(
            "weightingPower", 1.0 if record in ("momentum", "charge", "mass", "weighting") else 0.0
        )
    for name, value in (
        ("particleShape", 3.0),
        ("currentDeposition", "Esirkepov"),
        ("particlePush", "Boris" if code == "warpx" else "HigueraCary"),
        ("particleInterpolation", "momentumConserving"),
        ("particleSmoothing", "none"),
    ):
        species.set_attribute(name, value)
    it.close()


def warpx_run(
    root: Path, backend: str = "h5", encoding: str = "file", grid=(64, 32), particles=1000, steps=(0, 100, 200)
) -> Path:
    """A WarpX run folder: `warpx_used_inputs` and `diags/diag1/` with its openPMD series."""
    folder = root / "diags" / "diag1"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "warpx_used_inputs").write_text(WARPX_INPUTS)
    name = {"file": f"openpmd_%06T.{backend}", "group": f"openpmd.{backend}", "variable": f"openpmd.{backend}"}[
        encoding
    ]
    series = io.Series(str(folder / name), io.Access.create)
    series_attributes(series, "WarpX", "25.01")
    if encoding == "variable":
        series.iteration_encoding = io.Iteration_Encoding.variable_based
    for step in steps:
        write_iteration(
            series.write_iterations()[step] if encoding == "variable" else series.iterations[step],
            step,
            1.3e-16,
            grid,
            particles,
            "warpx",
        )
    series.close()
    return root


def picongpu_run(root: Path, backend: str = "bp", particles=500, steps=(0, 500, 1000)) -> Path:
    """A PIConGPU run folder: `simOutput/openPMD/simData_%T.<backend>` with its code attributes."""
    folder = root / "simOutput" / "openPMD"
    folder.mkdir(parents=True, exist_ok=True)
    series = io.Series(str(folder / f"simData_%06T.{backend}"), io.Access.create)
    series_attributes(series, "PIConGPU", "0.7.0")
    for name, value in (
        ("picongpuIOVersionMajor", np.uint32(1)),
        ("picongpuIOVersionMinor", np.uint32(0)),
        ("sim_slides", np.uint32(0)),
        ("cell_width", 0.1772),
        ("cell_height", 0.0443),
        ("cell_depth", 0.1772),
        ("unit_length", 1e-6),
        ("unit_time", 1.3901e-16),
        ("unit_speed", 2.99792458e8),
        ("unit_mass", 9.1093837015e-31),
        ("unit_charge", 1.602176634e-19),
    ):
        series.set_attribute(name, value)
    for step in steps:
        write_iteration(series.iterations[step], step, 1.3901e-16, (48, 48), particles, "picongpu")
    series.close()
    return root


SMILEI_NAMELIST = """\
# SMILEI namelist of an LWFA run, as a physicist writes it
import math
from math import pi, sqrt

l0 = 2.0 * pi            # laser wavelength, normalised
t0 = l0                  # optical cycle
n0 = 0.0017              # plasma density, in units of the critical density
a0 = 2.5
resx = 20.

Main(
    geometry = "2Dcartesian",
    interpolation_order = 2,
    cell_length = [l0 / resx, 4 * l0 / resx],
    grid_length = [120. * l0, 40. * l0],
    number_of_patches = [64, 8],
    timestep = 0.95 * l0 / resx,
    simulation_time = 150. * t0,
    EM_boundary_conditions = [["silver-muller"], ["periodic"]],
    reference_angular_frequency_SI = 2.0 * math.pi * 2.99792458e8 / 0.8e-6,
)

LaserGaussian2D(
    box_side = "xmin",
    a0 = a0,
    focus = [10. * l0, 20. * l0],
    waist = sqrt(2.0) * 5.0 * l0,
    time_envelope = tgaussian(center=2.**0.5 * 15. * t0, fwhm=15. * t0),
)

Species(
    name = "electron",
    position_initialization = "regular",
    particles_per_cell = 4,
    mass = 1.0,
    charge = -1.0,
    number_density = trapezoidal(n0, xvacuum=20. * l0, xplateau=80. * l0),
    boundary_conditions = [["remove", "remove"], ["periodic", "periodic"]],
)

DiagScalar(every = 10)
"""

SMILEI_SCALARS = """\
# 1 time
# 2 Utot
# 3 Ukin
# 4 Uelm
# 5 Ukin_electron
     0.0000000000e+00 0.0000000000e+00 0.0000000000e+00 0.0000000000e+00 0.0000000000e+00
     2.9845130209e+00 1.2051371238e-03 0.0000000000e+00 1.2051371238e-03 0.0000000000e+00
"""


def smilei_run(root: Path, namelist: str = SMILEI_NAMELIST, cells=(384, 32), steps=(0, 1000, 2000)) -> Path:
    """A SMILEI output folder: `smilei.py`, `scalars.txt` and openPMD-flavoured `Fields0.h5`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "smilei.py").write_text(namelist)
    (root / "scalars.txt").write_text(SMILEI_SCALARS)
    with h5py.File(root / "Fields0.h5", "w") as fields:
        for name, value in (
            ("openPMD", "1.1.0"),
            ("openPMDextension", np.uint32(0)),
            ("software", "Smilei"),
            ("softwareVersion", "5.1-4-g1234567-master"),
            ("date", "2026-11-30 23:00:00"),
            ("iterationEncoding", "groupBased"),
            ("iterationFormat", "data/%T/"),
            ("basePath", "data/%T/"),
            ("meshesPath", ""),
        ):
            fields.attrs[name] = value
        for step in steps:
            group = fields.create_group(f"data/{step:010d}")
            group.attrs["dt"], group.attrs["time"], group.attrs["timeUnitSI"] = 0.2984, step * 0.2984, 4.24e-16
            for field in ("Ex", "Ey", "Bz"):
                dataset = group.create_dataset(field, data=np.zeros(cells, dtype=np.float32))
                dataset.attrs["unitDimension"] = np.array([1, 1, -3, -1, 0, 0, 0], dtype=float)
                dataset.attrs["gridSpacing"] = np.array([0.314, 1.257])
                dataset.attrs["axisLabels"] = np.array([b"x", b"y"])
    return root
