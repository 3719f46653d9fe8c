"""`manage.py watch_sims`: runs are read once finished, as the code tells it, and each run once even
across a kill -9."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from core.runloop import StopFlag
from simulations import store
from simulations.watch import SimulationWatcher

from .runs import SMILEI_SCALARS, picongpu_run, smilei_run, warpx_run

ROOT = Path(__file__).resolve().parents[2]
UNFINISHED_SCALARS = SMILEI_SCALARS  # last time 2.98 of simulation_time 150·2π ≈ 942.5


def wait_for(check, timeout=30.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {message}"
        time.sleep(0.05)


@pytest.fixture
def watching(tmp_path, mongo_db):
    stop = StopFlag()
    watcher = SimulationWatcher(tmp_path, stop, settle_seconds=0.3, interval=0.05)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    yield watcher
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def stored_names() -> list[str]:
    return sorted(run["name"] for run in store.summaries())


def test_a_smilei_run_is_read_when_its_scalars_reach_the_simulation_time(tmp_path, watching):
    run = smilei_run(tmp_path / "smilei")
    time.sleep(1)
    assert stored_names() == []  # quiet, but scalars.txt stops at t = 2.98 of 942.5
    with (run / "scalars.txt").open("a") as scalars:
        scalars.write("     9.4247779608e+02 1.0e-03 0.0 1.0e-03 0.0\n")
    wait_for(lambda: stored_names() == ["smilei"], message="the finished SMILEI run extracted")


def test_a_warpx_run_is_read_when_its_last_iteration_is_max_step(tmp_path, watching):
    warpx_run(tmp_path / "warpx", steps=(0, 100))  # max_step = 200
    picongpu_run(tmp_path / "pic")  # no completeness to read: quiet for `settle` seconds is enough
    wait_for(lambda: stored_names() == ["pic"], message="the PIConGPU run extracted")
    time.sleep(0.5)
    assert stored_names() == ["pic"]
    warpx_run(tmp_path / "warpx", steps=(200,))
    wait_for(lambda: stored_names() == ["pic", "warpx"], message="the finished WarpX run extracted")


def test_a_changed_run_is_read_again_and_a_broken_one_does_not_stop_the_others(tmp_path, watching, caplog):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "smilei.py").write_text("import os\n")
    run = warpx_run(tmp_path / "warpx")
    wait_for(lambda: stored_names() == ["warpx"], message="the good run extracted")
    first = store.summaries()[0]["updated"]
    time.sleep(0.4)
    inputs = run / "warpx_used_inputs"
    inputs.write_text(inputs.read_text().replace("a0 = 2.5", "a0 = 4.0"))
    wait_for(lambda: store.summaries()[0]["summary"]["a0"]["value"] == 4.0, message="the changed run read again")
    assert store.summaries()[0]["updated"] > first and stored_names() == ["warpx"]
    assert any("imports os" in r.message for r in caplog.records)


def test_kill_9_mid_folder_then_restart_reads_every_run_once(tmp_path, mongo_db):
    runs = tmp_path / "runs"
    for n in range(20):
        picongpu_run(runs / f"pic-{n:02d}", particles=10, steps=(0, 10))
    config = tmp_path / "config.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "labbook.settings", "DJANGO_DEBUG": "1"}
    env |= {"DATABASE_URL": f"sqlite:///{config}", "MONGODB_DB": settings.MONGODB_DB}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    command = [sys.executable, "manage.py", "watch_sims", str(runs), "--settle", "0", "--interval", "0.05"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(store.summaries()) >= 3, timeout=60, message="some runs extracted")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    before = {run["name"]: run["updated"] for run in store.summaries()}
    assert 3 <= len(before) < 20, "kill -9 came too late to be mid-folder"

    second = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(store.summaries()) == 20, timeout=60, message="every run extracted after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        output = second.communicate(timeout=20)[0]
    assert second.returncode == 0, output
    after = {run["name"]: run["updated"] for run in store.summaries()}
    assert sorted(after) == [f"pic-{n:02d}" for n in range(20)]
    assert {name: after[name] for name in before} == before  # the ones read before the kill: not read again
    assert mongo_db[store.SIMULATIONS].count_documents({}) == 20
