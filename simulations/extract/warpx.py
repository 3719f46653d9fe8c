"""WarpX's `warpx_used_inputs` (every parameter of the run, as WarpX read it) into parameters.

Lines are `name = value`; values are numbers, words, lists, or expressions of `my_constants`
(WarpX's parser). A value that is a number, or a name of `my_constants` holding one, is a number;
anything else is kept as its text. WarpX reads its inputs in SI; the unit of a parameter is given
where its name says it (see UNITS), otherwise "SI" (WarpX's convention, no unit named).
"""

from __future__ import annotations

import re
from pathlib import Path

USED_INPUTS = "warpx_used_inputs"
LINE = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.]+)\s*=\s*(?P<value>.*?)\s*(?:#.*)?$")
UNITS = [  # suffix of a parameter name → unit
    (".wavelength", "m"),
    (".profile_duration", "s"),
    (".profile_waist", "m"),
    (".density", "m^-3"),
    (".a0", "1"),
    (".e_max", "V/m"),
    ("geometry.prob_lo", "m"),
    ("geometry.prob_hi", "m"),
    ("amr.n_cell", "cells"),
    ("max_step", "steps"),
    ("warpx.cfl", "1"),
    (".position", "m"),
]


class InputsError(ValueError):
    pass


def read_inputs(path: Path) -> dict:
    constants, raw = {}, {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise InputsError(f"{path}, line {number}: not `name = value`: {line[:80]!r}")
        raw[match["name"]] = match["value"]
        if match["name"].startswith("my_constants."):
            constants[match["name"].split(".", 1)[1]] = number_of(match["value"], {})
    return {name: described(name, value, constants) for name, value in raw.items()}


def number_of(text: str, constants: dict):
    parts = text.split()
    values = []
    for part in parts:
        try:
            values.append(int(part) if re.fullmatch(r"[+-]?\d+", part) else float(part))
        except ValueError:
            if isinstance(constants.get(part), int | float):
                values.append(constants[part])
            else:
                return None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def described(name: str, text: str, constants: dict) -> dict:
    value = number_of(text, constants)
    if value is None:
        return {"value": text, "unit": ""}
    unit = next((u for suffix, u in UNITS if name.endswith(suffix)), "SI")
    entry = {"value": value, "unit": unit}
    if number_of(text, {}) is None:  # read through my_constants: say from what
        entry["source"] = text
    return entry


def summary(parameters: dict) -> dict:
    found = {}
    for name, entry in parameters.items():
        if name.endswith(".a0") and isinstance(entry["value"], int | float) and "a0" not in found:
            found["a0"] = {"value": entry["value"], "unit": "1"}
        if name.endswith(".density") and isinstance(entry["value"], int | float) and "density" not in found:
            found["density"] = {"value": entry["value"], "unit": "m^-3"}
    return found
