"""What other apps may read of the simulations (the shot page and the shot join list a shot's runs).

A caller that must not fail on a database outage catches `pymongo.errors.PyMongoError`.
"""

from dataclasses import dataclass

from django.urls import reverse

from . import store


@dataclass(frozen=True)
class SimulationLink:
    name: str
    code: str  # "WarpX 25.01"
    url: str


def simulations_of_shot(shot_key: str) -> list[SimulationLink]:
    """The simulation runs that model this shot (given by a user or matched by their folder)."""
    return [
        SimulationLink(
            run["name"],
            f"{run['software']} {run.get('software_version', '')}".strip(),
            reverse("simulations:detail", args=[run["_id"]]),
        )
        for run in sorted(store.runs_of_shot(shot_key), key=lambda r: r["name"])
    ]


def runs_of_shot(shot_key: str) -> list[dict]:
    """The runs' summaries (code, version, a0, density, experiment, shot keys) for the read API."""
    return store.runs_of_shot(shot_key)


def run(run_id: str) -> dict | None:
    """One run's whole document (parameters as a list of {name, value, unit}, files, series), for
    the SciCat catalogue's derived dataset, its values as the run's files hold them (a list of
    lists, which FerretDB keeps as JSON text, is a list again)."""
    found = store.run(run_id)
    return store.as_written(found) if found else None


def shot_keys_of_runs() -> list[dict]:
    """`{_id, rev, shot_keys}` of every run, for the catalogue's index of runs by shot."""
    return store.shot_keys_of_runs()


def runs_changed_since(when) -> list[dict]:
    """`{_id, rev, updated}` of the runs extracted at or after `when` (None: all), oldest first."""
    return store.changed_since(when)
