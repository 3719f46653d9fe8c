"""SMILEI runs: the namelist (read, never run: namelist.py), the `scalars.txt` header and the
openPMD-flavoured `Fields*.h5`/`ParticleBinning*.h5`/`Probes*.h5` attributes (h5py; no array read).

SMILEI works in normalised units: lengths in c/ω_r, times in 1/ω_r, densities in the critical
density at ω_r. With `Main(reference_angular_frequency_SI=...)` each is also given in SI; without
it, values keep the code's unit, named as such ("c/ω_r"), never passed off as SI.
"""

from __future__ import annotations

from pathlib import Path

from .namelist import Namelist, NamelistError, read_namelist  # noqa: F401 (NamelistError: extract_run catches it)
from .openpmd import plain
from .units import quantity, smilei_references

NAMELIST = "smilei.py"
H5_OUTPUTS = ("Fields*.h5", "ParticleBinning*.h5", "Probes*.h5", "TrackParticles*.h5", "Screen*.h5")
CODE_UNITS = {"length": "c/ω_r", "time": "1/ω_r", "density": "n_c(ω_r)"}
SI_UNITS = {"length": "m", "time": "s", "density": "m^-3"}
MAIN_KINDS = {"cell_length": "length", "grid_length": "length", "timestep": "time", "simulation_time": "time"}


def read_run(run: Path) -> dict:
    text = (run / NAMELIST).read_text(errors="replace")
    namelist = read_namelist(text, str(run / NAMELIST))
    main = namelist.first("Main") or {}
    omega = main.get("reference_angular_frequency_SI")
    references = smilei_references(omega if isinstance(omega, int | float) else None)
    parameters = {name: code_quantity(name, value) for name, value in namelist.constants.items()}
    for block in namelist.blocks:
        for name, value in block["args"].items():
            parameters[f"{block['block']}.{name}"] = code_quantity(name, value)
    for name, kind in MAIN_KINDS.items():
        if name in main:
            parameters[f"Main.{name}"] = normalised(main[name], kind, references)
    return {
        "software": "Smilei",
        "parameters": parameters,
        "blocks": [{"block": b["block"], "line": b["line"]} for b in namelist.blocks],
        "units": {
            "reference_angular_frequency": quantity(omega, "rad/s") if references else None,
            "note": "SMILEI's normalised units; SI given where Main names its reference frequency"
            if references
            else "SMILEI's normalised units: Main(reference_angular_frequency_SI=…) is not set, so no SI values",
        },
        "summary": summary(namelist, references),
        "scalars": scalars(run / "scalars.txt"),
        "outputs": outputs(run),
    }


NAMED_UNITS = {
    "a0": "1", "mass": "m_e", "charge": "e", "particles_per_cell": "1", "interpolation_order": "1",
    "reference_angular_frequency_SI": "rad/s",  # the one SI input: it was labelled "SMILEI normalised"
    "number_of_patches": "1",
}  # fmt: skip


def code_quantity(name: str, value):
    """A number of the namelist with its unit: SMILEI's own normalised unit unless its name says
    more (a0 is dimensionless, mass in electron masses); text and unevaluated source stay as they are."""
    numbers = isinstance(value, int | float) and not isinstance(value, bool)
    numbers = numbers or (isinstance(value, list) and value and all(isinstance(v, int | float) for v in value))
    if not numbers:
        return value
    return quantity(value, NAMED_UNITS.get(name, "SMILEI normalised"))


def normalised(value, kind: str, references: dict | None) -> dict:
    """A normalised value with its code unit, and in SI when the reference frequency is known."""
    if not isinstance(value, int | float | list) or (
        isinstance(value, list) and not all(isinstance(v, int | float) for v in value)
    ):
        return {"value": value, "unit": CODE_UNITS[kind]}
    described = {"code_value": value, "code_unit": CODE_UNITS[kind]}
    if references:
        factor = references[kind]
        described |= quantity(
            [v * factor for v in value] if isinstance(value, list) else value * factor, SI_UNITS[kind]
        )
    else:
        described |= quantity(value, CODE_UNITS[kind])
    return described


def summary(namelist: Namelist, references: dict | None) -> dict:
    """What the simulation list searches by: a0 of the first laser, the electron density."""
    found = {}
    laser = namelist.first("Laser") or {}
    if isinstance(laser.get("a0"), int | float):
        found["a0"] = quantity(laser["a0"], "1")
    for block in namelist.blocks:
        if block["block"] != "Species":
            continue
        density = block["args"].get("number_density")
        plateau = density if isinstance(density, int | float) else profile_level(density, namelist)
        if plateau is not None:
            found["density"] = normalised(plateau, "density", references)
            break
    return found


def profile_level(density, namelist: Namelist):
    """`trapezoidal(n0, xvacuum=…)` → n0's value: SMILEI's profiles take their level first."""
    if not isinstance(density, dict) or "source" not in density:
        return None
    source = density["source"]
    if "(" not in source:
        return None
    first = source.split("(", 1)[1].split(",", 1)[0].split(")", 1)[0].strip()
    try:
        return float(first)
    except ValueError:
        value = namelist.constants.get(first)
        return value if isinstance(value, int | float) else None


def scalars(path: Path) -> dict | None:
    """`scalars.txt`: its column names from the `# n name` header, the rows and the last time."""
    if not path.is_file():
        return None
    columns, rows, last = [], 0, None
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("#"):
                parts = line[1:].split()
                if len(parts) >= 2 and parts[0].isdigit():
                    columns.append(parts[1])
            elif line.strip():
                rows += 1
                last = line
    last_time = float(last.split()[0]) if last else None
    return {"columns": columns, "rows": rows, "last_time": {"value": last_time, "unit": "1/ω_r"}}


def outputs(run: Path) -> list[dict]:
    import h5py

    found = []
    for pattern in H5_OUTPUTS:
        for path in sorted(run.glob(pattern)):
            with h5py.File(path, "r") as output:
                steps = sorted(output["data"]) if "data" in output else []
                entry = {
                    "file": path.name,
                    "attributes": {k: plain(v) for k, v in output.attrs.items()},
                    "iterations": {"count": len(steps)},
                }
                if steps:
                    last = output["data"][steps[-1]]
                    entry["iterations"] |= {"first": int(steps[0]), "last": int(steps[-1])}
                    entry["datasets"] = sorted(last)
                    if "timeUnitSI" in last.attrs and "time" in last.attrs:
                        entry["iterations"]["last_time"] = quantity(
                            float(last.attrs["time"]) * float(last.attrs["timeUnitSI"]), "s"
                        )
                found.append(entry)
    return found
