"""WarpX and PIConGPU runs: their openPMD series read with openpmd-api, metadata only.

Array contents are never read: shapes, attributes and the iteration list are what a series keeps
as metadata (a 1 GB series reads as fast as a 1 MB one: benchmarks/simulations.py). File-based
series are opened with deferred iteration parsing, so only the first and last iteration files are
opened, not every one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .units import quantity, unit_of

SERIES_FILE = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)\.(?P<ext>h5|bp|bp4|bp5)$")
SERIES_SUFFIXES = (".h5", ".bp", ".bp4", ".bp5")
STANDARD_ATTRIBUTES = {
    "author",
    "basePath",
    "date",
    "iterationEncoding",
    "iterationFormat",
    "meshesPath",
    "openPMD",
    "openPMDextension",
    "particlesPath",
    "software",
    "softwareVersion",
    "softwareDependencies",
    "machine",
    "comment",
}
ED_PIC_MESHES = ("fieldSolver", "fieldBoundary", "particleBoundary", "currentSmoothing", "chargeCorrection")
ED_PIC_SPECIES = ("particleShape", "currentDeposition", "particlePush", "particleInterpolation", "particleSmoothing")


class SeriesError(ValueError):
    pass


def find_series(run: Path) -> list[str]:
    """The openPMD series under a run folder, as openpmd-api opens them: `openpmd_%06T.h5` for a
    file per iteration, the file (or ADIOS2 folder) itself for group- and variable-based ones."""
    found: dict[str, None] = {}
    for path in sorted(run.rglob("*")):
        if path.suffix not in SERIES_SUFFIXES or any(p.suffix in SERIES_SUFFIXES for p in path.parents):
            continue  # inside an ADIOS2 folder
        if path.suffix == ".h5" and not path.is_file():
            continue
        match = SERIES_FILE.match(path.name)
        if match and len(list(path.parent.glob(f"{match['prefix']}*.{match['ext']}"))) > 1:
            pattern = f"{match['prefix']}%0{len(match['digits'])}T.{match['ext']}"
            found[str(path.parent / pattern)] = None
        elif path.suffix == ".h5" and not has_openpmd_root(path):
            continue  # an HDF5 file of another kind (a SMILEI diagnostic, a DAQ file)
        else:
            found[str(path)] = None
    return list(found)


def has_openpmd_root(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "openPMD" in f.attrs
    except OSError:
        return True  # not readable as HDF5: openpmd-api names the problem


def read_series(pattern: str) -> dict:
    import openpmd_api as io

    try:
        series = io.Series(pattern, io.Access.read_only, '{"defer_iteration_parsing": true}')
    except Exception as exc:  # openpmd-api raises its own error types, and RuntimeError
        raise SeriesError(f"{pattern}: not a readable openPMD series ({first_line(exc)})") from None
    try:
        steps = sorted(series.iterations)
        if not steps:
            raise SeriesError(f"{pattern}: an openPMD series without iterations")
        attributes = {name: plain(series.get_attribute(name)) for name in series.attributes}
        described = {
            "path": pattern,
            "software": series.software,
            "software_version": series.software_version,
            "date": series.date,
            "author": attributes.get("author", ""),
            "openPMD": series.openPMD,
            "openPMD_extension": series.openPMD_extension,
            "iteration_encoding": str(series.iteration_encoding).split(".")[-1],
            "code_attributes": code_attributes({k: v for k, v in attributes.items() if k not in STANDARD_ATTRIBUTES}),
            "iterations": {"count": len(steps), "first": steps[0], "last": steps[-1]},
        }
        last = series.iterations[steps[-1]]
        last.open()
        described["iterations"] |= {
            "dt": quantity(float(last.dt) * last.time_unit_SI, "s"),
            "last_time": quantity(float(last.time) * last.time_unit_SI, "s"),
        }
        described["meshes"] = meshes(last)
        described["ed_pic"] = {
            name: plain(last.meshes.get_attribute(name)) for name in ED_PIC_MESHES if name in last.meshes.attributes
        }
        described["species"] = species(last)
        return described
    except SeriesError:
        raise
    except Exception as exc:
        raise SeriesError(f"{pattern}: cannot read its metadata ({first_line(exc)})") from None
    finally:
        series.close()


# PIConGPU's unit_* attributes: the SI value of one of its internal units (its README, openPMD output).
PICONGPU_UNITS = {
    "unit_length": "m", "unit_time": "s", "unit_speed": "m/s", "unit_mass": "kg", "unit_charge": "C",
    "unit_energy": "J", "unit_efield": "V/m", "unit_bfield": "T",
}  # fmt: skip
PICONGPU_CELL = ("cell_width", "cell_height", "cell_depth")  # in PIConGPU's length unit


def code_attributes(attributes: dict) -> dict:
    """A code's own series attributes, numbers with their units where the code says them:
    PIConGPU's unit_* in SI, its cell sizes (in its length unit) also in m."""
    described = dict(attributes)
    for name, unit in PICONGPU_UNITS.items():
        if isinstance(attributes.get(name), int | float):
            described[name] = quantity(attributes[name], unit)
    length = attributes.get("unit_length")
    for name in PICONGPU_CELL:
        value = attributes.get(name)
        if isinstance(value, int | float):
            described[name] = (
                quantity(value * length, "m") | {"code_value": value, "code_unit": "unit_length"}
                if isinstance(length, int | float)
                else quantity(value, "PIConGPU length unit (unit_length not written)")
            )
    return described


def meshes(iteration) -> list[dict]:
    found = []
    for name, mesh in iteration.meshes.items():
        components = list(mesh)
        first = mesh[components[0]] if components else None
        unit_si = mesh.grid_unit_SI
        found.append(
            {
                "name": name,
                "unit": unit_of(mesh.unit_dimension),
                "components": [c for c in components if c != "\vScalar"],
                "geometry": str(mesh.geometry).split(".")[-1],
                "axis_labels": list(mesh.axis_labels),
                "shape": list(first.shape) if first is not None else [],
                "grid_spacing": quantity([s * unit_si for s in mesh.grid_spacing], "m"),
                "grid_offset": quantity([o * unit_si for o in mesh.grid_global_offset], "m"),
                **{k: plain(mesh.get_attribute(k)) for k in ("fieldSmoothing",) if k in mesh.attributes},
            }
        )
    return found


def species(iteration) -> list[dict]:
    found = []
    for name, particles in iteration.particles.items():
        records = sorted(particles)
        count = None
        if "position" in particles:  # a shape is metadata: the count costs nothing
            position = particles["position"]
            components = list(position)
            if components:
                count = int(position[components[0]].shape[0])
        found.append(
            {
                "name": name,
                "records": records,
                "count": count,
                **{k: plain(particles.get_attribute(k)) for k in ED_PIC_SPECIES if k in particles.attributes},
            }
        )
    return found


def plain(value):
    """An attribute as JSON/BSON takes it (numpy scalars and arrays, bytes)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
