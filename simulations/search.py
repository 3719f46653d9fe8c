"""Searching simulation runs: by code, version, experiment, shot key, and ranges of the summary
parameters (a0, electron density in m^-3) — from the URL, as plain values, never as operators."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings

from core.envelope import parse_shot_key

from . import store

RANGES = {"a0": "1", "density": "m^-3"}  # summary parameter → the unit its range is given in


@dataclass
class Search:
    code: str = ""
    version: str = ""
    experiment: str = ""
    shot: str = ""
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, params) -> Search:
        search = cls(*(params.get(name, "").strip()[:200] for name in ("code", "version", "experiment", "shot")))
        for name in RANGES:
            bounds = []
            for end in ("min", "max"):
                raw = params.get(f"{name}_{end}", "").strip()
                try:
                    bounds.append(float(raw) if raw else None)
                except ValueError:
                    search.problems.append(f"{name} {end}: '{raw}' is not a number")
                    bounds.append(None)
            if bounds != [None, None]:
                search.ranges[name] = (bounds[0], bounds[1])
        return search

    def matches(self, run: dict) -> bool:
        if self.code and run.get("code") != self.code.lower():
            return False
        if self.version and self.version.lower() not in (run.get("software_version") or "").lower():
            return False
        if self.experiment and (run.get("experiment") or "") != self.experiment:
            return False
        if self.shot and self.shot not in run.get("shot_keys", []):
            return False
        for name, (low, high) in self.ranges.items():
            value = summary_value(run, name)
            if value is None or (low is not None and value < low) or (high is not None and value > high):
                return False
        return True


def summary_value(run: dict, name: str) -> float | None:
    entry = (run.get("summary") or {}).get(name)
    if not entry or entry.get("unit") != RANGES[name] or not isinstance(entry.get("value"), int | float):
        return None  # a density in code units only cannot be compared with m^-3
    return float(entry["value"])


def search(query: Search) -> list[dict]:
    found = [run for run in store.summaries() if query.matches(run)]
    return sorted(found, key=lambda run: run["updated"], reverse=True)


def shots_in_path(path: str) -> list[str]:
    """Shot keys a run's folder names (`/sims/LWFA-20261124-000042_a0_2.5/`): the matching rule is
    settings.SIMULATIONS_SHOT_KEY_PATTERN, a regular expression (its `shot_key` group if it has one,
    else the whole match); only what reads as a shot key counts. Empty: no matching."""
    pattern = settings.SIMULATIONS_SHOT_KEY_PATTERN
    if not pattern:
        return []
    rule = re.compile(pattern)
    found = (m.group("shot_key") if "shot_key" in rule.groupindex else m.group(0) for m in rule.finditer(path))
    return sorted({key for key in found if key and parse_shot_key(key)})
