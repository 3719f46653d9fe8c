"""Units of simulation metadata: openPMD's `unitDimension` as a unit people read, and SMILEI's
normalised units in SI once the run names its reference frequency."""

from __future__ import annotations

import math

BASE = ("m", "kg", "s", "A", "K", "mol", "cd")  # openPMD's unitDimension order: L M T I θ N J
NAMED = {
    (1, 1, -3, -1, 0, 0, 0): "V/m",
    (0, 1, -2, -1, 0, 0, 0): "T",
    (-2, 0, 0, 1, 0, 0, 0): "A/m^2",
    (-3, 0, 1, 1, 0, 0, 0): "C/m^3",
    (1, 0, 0, 0, 0, 0, 0): "m",
    (1, 1, -1, 0, 0, 0, 0): "kg·m/s",
    (0, 0, 1, 1, 0, 0, 0): "C",
    (0, 1, 0, 0, 0, 0, 0): "kg",
    (0, 0, 1, 0, 0, 0, 0): "s",
    (-3, 0, 0, 0, 0, 0, 0): "m^-3",
    (2, 1, -2, 0, 0, 0, 0): "J",
    (0, 0, 0, 0, 0, 0, 0): "1",
}

C = 299_792_458.0  # m/s
EPSILON_0 = 8.8541878128e-12  # F/m
ELECTRON_MASS = 9.1093837015e-31  # kg
ELEMENTARY_CHARGE = 1.602176634e-19  # C


def unit_of(dimension) -> str:
    """`[1, 1, -3, -1, 0, 0, 0]` → "V/m"; an unnamed one as base units: "m^2·kg·s^-3"."""
    powers = tuple(int(round(p)) for p in list(dimension)[:7])
    powers += (0,) * (7 - len(powers))
    if powers in NAMED:
        return NAMED[powers]
    return "·".join(f"{base}^{p}" if p != 1 else base for base, p in zip(BASE, powers, strict=True) if p)


def quantity(value, unit: str) -> dict:
    return {"value": value, "unit": unit}


def smilei_references(omega_r: float | None) -> dict[str, float] | None:
    """SMILEI's reference units in SI for a reference angular frequency ω_r (rad/s): length c/ω_r,
    time 1/ω_r, density ε0·m_e·ω_r²/e² (the critical density at ω_r)."""
    if not omega_r or not math.isfinite(omega_r) or omega_r <= 0:
        return None
    return {
        "length": C / omega_r,
        "time": 1 / omega_r,
        "density": EPSILON_0 * ELECTRON_MASS * omega_r**2 / ELEMENTARY_CHARGE**2,
    }
