"""`manage.py watch_sims FOLDER`: extract each run folder under FOLDER once it is finished, and again
when it changes.

When is a run finished? Where the code says so in what it writes, that decides:
- SMILEI: `scalars.txt` reaches `Main(simulation_time=…)` (its last time ≥ that minus one timestep);
- WarpX: the newest output iteration is `max_step` of `warpx_used_inputs`;
- PIConGPU (and any run whose completeness cannot be read): nothing changed for `settle` seconds.
A run still being written is also never read before `settle` seconds of quiet for its files (a
half-flushed HDF5 file reads as broken). What was extracted is known from MongoDB (the newest file
time of the stored run), so a restart — even after kill -9 — extracts each run once, and an
extraction cut short is simply done again (a run's document is written in one update).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import store
from .extract import ExtractError, files, run_id, smilei, warpx
from .services import extract_runs

log = logging.getLogger(__name__)


class SimulationWatcher:
    def __init__(self, folder: Path, stop, *, settle_seconds: float = 60, interval: float = 10, experiment=None):
        self.folder = Path(folder).resolve()
        self.stop = stop
        self.settle_seconds = settle_seconds
        self.interval = interval
        self.experiment = experiment
        self.extracted = 0
        self.failed: dict[str, str] = {}  # run path → the problem, logged once per change

    def run(self) -> None:
        log.info("watching %s for finished simulation runs", self.folder)
        while not self.stop.is_set():
            self.scan()
            self.stop.wait(self.interval)
        log.info("stopped: %d runs extracted", self.extracted)

    def scan(self) -> None:
        for run in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            if self.stop.is_set():
                return
            newest = max((f["mtime"] for f in files(run)), default=0)
            stored = store.run(run_id(run))
            if stored and max((f["mtime"] for f in stored.get("files", [])), default=0) >= newest:
                continue  # extracted as it is now
            if not finished(run, newest, self.settle_seconds):
                continue
            [result] = extract_runs([run], experiment=self.experiment, settle_seconds=self.settle_seconds)
            if result.error:
                if self.failed.get(str(run)) != result.error:
                    log.error("%s", result.error)
                self.failed[str(run)] = result.error
            else:
                self.failed.pop(str(run), None)
                self.extracted += 1
                log.info("extracted %s (%s %s)", run, result.run["software"], result.run["software_version"])


def finished(run: Path, newest_mtime: float, settle_seconds: float) -> bool:
    if time.time() - newest_mtime < settle_seconds:
        return False
    try:
        if (run / smilei.NAMELIST).is_file():
            return smilei_finished(run)
        if (run / warpx.USED_INPUTS).is_file():
            return warpx_finished(run)
    except (OSError, ValueError, ExtractError):
        return True  # unreadable: extracting says what is wrong with it
    return True  # quiet for `settle` seconds


def smilei_finished(run: Path) -> bool:
    namelist = smilei.read_namelist((run / smilei.NAMELIST).read_text(errors="replace"))
    main = namelist.first("Main") or {}
    end, step = main.get("simulation_time"), main.get("timestep")
    scalars = smilei.scalars(run / "scalars.txt")
    if not isinstance(end, int | float) or not isinstance(step, int | float) or not scalars:
        return True  # the namelist does not say: quiet is all there is
    last = scalars["last_time"]["value"]
    return last is not None and last >= end - step


def warpx_finished(run: Path) -> bool:
    inputs = warpx.read_inputs(run / warpx.USED_INPUTS)
    max_step = inputs.get("max_step", {}).get("value")
    steps = [int(m.group("digits")) for p in run.rglob("*") if (m := warpx_iteration(p.name))]
    if not isinstance(max_step, int) or not steps:
        return True
    return max(steps) >= max_step


def warpx_iteration(name: str):
    from .extract.openpmd import SERIES_FILE

    return SERIES_FILE.match(name)
