"""The watcher's file log: the shots whose events named files, in the order they were stored, as
the gap-free run 1..N a reader (the catalogue) follows by `_id`."""

import threading

from watcher import selectors, store


def event(n: int, place: str = "values", files=None) -> dict:
    files = [{"path": f"/data/{n}.h5", "size": 1}] if files is None else files
    return {"_id": f"e{n}", "shot_key": f"LWFA-20261202-{n:06d}", place: {"files": files}}


def test_only_events_naming_files_are_logged_each_shot_once(mongo_db):
    assert store.log_files({"c": [event(1, files=[]), {"_id": "x", "shot_key": "k", "values": {"a": 1}}]}) == 0
    assert selectors.file_log_end() == 0 and selectors.file_log_generation() is None
    number = store.log_files({"c": [event(1), event(2, "metadata")], "d": [event(1)]})
    assert number == 1 and selectors.file_log_generation()
    assert selectors.shots_with_files_logged(1)["shots"] == ["LWFA-20261202-000001", "LWFA-20261202-000002"]
    assert selectors.shots_with_files_logged(2) is None and selectors.shots_with_files_logged(0) is None


def test_writers_racing_leave_the_log_without_gaps(mongo_db):
    def write(first: int) -> None:
        for n in range(first, first + 20):
            store.log_files({"c": [event(n)]})

    threads = [threading.Thread(target=write, args=(first,)) for first in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert selectors.file_log_end() == 60
    shots = [key for n in range(1, 61) for key in selectors.shots_with_files_logged(n)["shots"]]
    written = [f"LWFA-20261202-{n:06d}" for first in (0, 100, 200) for n in range(first, first + 20)]
    assert sorted(shots) == sorted(written)
