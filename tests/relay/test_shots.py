"""The relay's recorded shots by laser time and shot number (`relay.selectors.shots`), through its
hand-made indexes, for shots of a real relay and for records made before the indexes."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command

from core import mongo
from core.envelope import make_envelope, shot_key
from core.times import EPOCH, from_ns, zone
from relay import selectors, store
from relay import shots as shot_search
from relay.selectors import ShotQuery
from tests.relay.test_relay import laser, send_until_received, start_relay, wait_for  # noqa: F401 (fixtures)

T0 = datetime(2026, 12, 2, 9, 58, 30, tzinfo=UTC)  # shots cross a minute, an hour and (with run 2) a run


def ns_at(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1) * 1000


def envelope(number: int, when: datetime, experiment: str = "LWFA", run: int = 1, **flags) -> dict:
    return make_envelope(
        experiment=experiment,
        source="laser",
        kind="shot",
        shot_number=number,
        laser_ts_ns=ns_at(when),
        tz=settings.TIME_ZONE,
        run=run,
        seq=number,
        values={"energy": 1.0 + number / 100},
        metadata=flags,
    )


def keys(page) -> list[str]:
    return [shot["shot_key"] for shot in page.shots]


@pytest.fixture
def recorded(mongo_db):
    """Shots 1-120 of LWFA, one every 2 s from 09:58:30 UTC (so up to 10:02:28), run 2 of the same
    day after them (1-5), and PWFA's shots 1-10 in the same minutes; recorded in rounds as the
    relay's status thread does."""
    shots = [envelope(n, T0 + timedelta(seconds=2 * n)) for n in range(1, 121)]
    shots += [envelope(n, T0 + timedelta(minutes=10, seconds=n), run=2, gap=0) for n in range(1, 6)]
    shots += [envelope(n, T0 + timedelta(seconds=2 * n + 1), experiment="PWFA") for n in range(1, 11)]
    state = store.ShotIndexState()
    for i in range(0, len(shots), 7):
        store.record_shots(shots[i : i + 7], state)
    return {shot["shot_key"]: shot for shot in shots}


def test_shots_are_found_by_laser_time_newest_first_with_the_whole_envelope(recorded):
    page = selectors.shots(ShotQuery(since=T0 + timedelta(seconds=100), until=T0 + timedelta(seconds=141)))
    lwfa = [shot_key("LWFA", n, ns_at(T0 + timedelta(seconds=2 * n)), settings.TIME_ZONE) for n in range(70, 49, -1)]
    assert [k for k in keys(page) if k.startswith("LWFA")] == lwfa
    assert [k for k in keys(page) if k.startswith("PWFA")] == []  # PWFA's last shot was at +21 s
    assert page.indexed and page.complete and not page.more
    shot = page.shots[0]
    assert shot == {name: recorded[shot["shot_key"]].get(name) for name in store.RECORD_FIELDS}
    assert shot["values"] == {"energy": 1.7} and shot["relay_ts_ns"] and shot["experiment"] == "LWFA"
    assert page.lookups < 200  # minutes of the range and the shots in it, never the collection


def test_shots_by_time_come_a_page_at_a_time_and_each_once(recorded):
    query = dict(since=T0, until=T0 + timedelta(hours=1), experiment="LWFA")
    seen, after = [], ""
    while True:
        page = selectors.shots(ShotQuery(**query, limit=25, after=after))
        seen += keys(page)
        if not page.more:
            break
        after = page.shots[-1]["shot_key"]
    assert len(seen) == len(set(seen)) == 125
    times = [store.shot_time_ns(recorded[key]) for key in seen]
    assert times == sorted(times, reverse=True)


def test_shots_by_number_range_of_an_experiment_across_runs(recorded):
    page = selectors.shots(ShotQuery(number_min=3, number_max=5, experiment="LWFA"))
    date = f"{T0.astimezone(zone(settings.TIME_ZONE)):%Y%m%d}"
    assert keys(page) == [f"LWFA-r2-{date}-000005", f"LWFA-r2-{date}-000004", f"LWFA-r2-{date}-000003"] + [
        f"LWFA-{date}-{n:06d}" for n in (5, 4, 3)
    ]
    assert page.lookups == 6  # the keys of the range, from the runs' first and last numbers
    both = selectors.shots(ShotQuery(number_min=10, number_max=10))
    assert sorted(keys(both)) == [f"LWFA-{date}-000010", f"PWFA-{date}-000010"]
    paged = selectors.shots(ShotQuery(number_min=3, number_max=5, experiment="LWFA", limit=4))
    assert paged.more and len(paged.shots) == 4
    rest = selectors.shots(ShotQuery(number_min=3, number_max=5, experiment="LWFA", after=keys(paged)[-1]))
    assert keys(paged) + keys(rest) == keys(page)
    timed = selectors.shots(
        ShotQuery(number_min=1, number_max=200, experiment="LWFA", until=T0 + timedelta(seconds=10))
    )
    assert keys(timed) == [f"LWFA-{date}-{n:06d}" for n in (4, 3, 2, 1)]


def test_a_search_stops_at_its_limit_of_look_ups_and_says_so(recorded, monkeypatch):
    monkeypatch.setattr(shot_search, "MAX_LOOKUPS", 10)
    page = selectors.shots(ShotQuery(number_min=1, number_max=100, experiment="LWFA"))
    assert not page.complete and not page.more and len(page.shots) == 10
    page = selectors.shots(ShotQuery())
    assert not page.complete


def test_the_first_record_of_a_duplicated_key_wins_and_is_indexed_once(mongo_db):
    first = envelope(7, T0)
    repeat = {**first, "values": {"energy": 99.0}, "metadata": {"duplicate": True}}
    store.record_shots([first])
    store.record_shots([repeat])
    page = selectors.shots(ShotQuery())
    assert keys(page) == [first["shot_key"]] and page.shots[0]["values"] == first["values"]


def test_shots_recorded_before_the_indexes_are_found_by_a_scan_then_by_the_index(mongo_db):
    """Records of the earlier format (five fields, no index entries) in a collection that already
    held them when the indexing relay started."""
    old = [envelope(n, T0 + timedelta(seconds=n)) for n in range(1, 31)]
    mongo.database()[store.SHOTS].insert_many(
        [{"_id": e["shot_key"], **{name: e[name] for name in store.SHOT_FIELDS}} for e in old]
    )
    new = [envelope(n, T0 + timedelta(minutes=5, seconds=n)) for n in range(31, 36)]
    store.record_shots(new, store.ShotIndexState())
    assert not store.index_complete()

    page = selectors.shots(ShotQuery(since=T0, until=T0 + timedelta(seconds=11)))
    assert not page.indexed
    assert keys(page) == [e["shot_key"] for e in reversed(old[:10])]
    assert page.shots[0]["experiment"] == "LWFA" and page.shots[0]["relay_ts_ns"] is None
    assert len(selectors.shots(ShotQuery(number_min=25, number_max=32)).shots) == 8

    call_command("relay_index_shots", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert store.index_complete()
    page = selectors.shots(ShotQuery(since=T0, until=T0 + timedelta(seconds=11)))
    assert page.indexed and keys(page) == [e["shot_key"] for e in reversed(old[:10])]
    by_number = selectors.shots(ShotQuery(number_min=25, number_max=32))
    assert by_number.indexed and [s["shot_number"] for s in by_number.shots] == list(range(32, 24, -1))
    call_command("relay_index_shots", stdout=open("/dev/null", "w"))  # noqa: SIM115 (again: nothing twice)
    assert len(selectors.shots(ShotQuery(limit=1000)).shots) == 35


def test_a_real_relay_records_its_shots_findable_by_laser_time_and_number(laser, start_relay):  # noqa: F811
    relay = start_relay(laser.endpoint_for_relay, kafka=False)
    base = ns_at(T0)
    frames = [[b"laser", orjson.dumps({"shot": n, "ts_ns": base + n * 100_000_000, "energy": n})] for n in range(1, 41)]
    send_until_received(laser, relay, frames)
    last = shot_key("TST", 40, base + 40 * 100_000_000, settings.TIME_ZONE)
    wait_for(lambda: store.shot(last) is not None, message="shot 40 recorded")
    in_range = ShotQuery(since=from_ns(base + 1_000_000_000), until=from_ns(base + 2_000_001_000), experiment="TST")
    wait_for(lambda: len(selectors.shots(in_range).shots) == 11, message="indexed (after the status, same round)")
    by_time = selectors.shots(in_range)
    assert [s["shot_number"] for s in by_time.shots] == list(range(20, 9, -1))
    assert by_time.shots[0]["values"]["energy"] == 20 and by_time.shots[0]["seq"] is not None
    by_number = selectors.shots(ShotQuery(number_min=35, number_max=45))
    assert [s["shot_number"] for s in by_number.shots] == [40, 39, 38, 37, 36, 35]
    assert by_number.shots[0]["laser_ts_ns"] == base + 40 * 100_000_000


def test_keys_of_other_forms_are_found_by_time_and_never_in_a_number_range(mongo_db):
    """Agents may publish shots under keys of their own; only well-formed keys have numbers."""
    good = envelope(12, T0)
    odd = [
        {**envelope(13, T0 + timedelta(seconds=1)), "shot_key": key}
        for key in ("shot thirteen", "LWFA-20261202-13", "LWFA-20261202-00001²", f"{good['shot_key'][:-6]}-000014")
    ]
    store.record_shots([*odd, good], store.ShotIndexState())
    found = selectors.shots(ShotQuery(since=T0, until=T0 + timedelta(seconds=2)))
    assert sorted(keys(found)) == sorted([good["shot_key"], *(shot["shot_key"] for shot in odd)])
    numbered = selectors.shots(ShotQuery(number_min=0, number_max=100))
    assert keys(numbered) == [good["shot_key"]]
