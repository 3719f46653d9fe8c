"""Shots, the shot join, events and time series over the API (real FerretDB): what each answers,
who sees what (a sheet the token's user may not view never shows, and as a sheet it is a 404),
and bad input → a 400 naming the parameter, never a 500."""

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.conf import settings

from core import mongo
from core.envelope import make_envelope
from relay import store as relay_store
from shotsheet import schema
from shotsheet.entries import create_entry
from tests.watcher.ingest import ingest
from watcher.indexes import handmade

LASER = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # API-20261124-… in the lab's zone too


def at(n: float) -> int:
    return int((LASER + timedelta(seconds=n)).timestamp()) * 10**9


def relay_envelope(n: int) -> dict:
    return make_envelope(
        experiment="API",
        source="laser",
        kind="shot",
        shot_number=n,
        laser_ts_ns=at(n),
        tz=settings.TIME_ZONE,
        seq=n,
        values={"energy_J": n * 1.5, "mode": "single"},
        metadata={"gap": 1} if n == 3 else {},
    )


def diag_event(n: int, shot: int, value) -> dict:
    return make_envelope(
        experiment="API",
        source="probe" if n % 2 else "camera",
        kind="measurement",
        shot_number=shot,
        laser_ts_ns=at(shot) + n * 1_000_000,
        tz=settings.TIME_ZONE,
        seq=n,
        values={"charge_pC": value},
    )


@pytest.fixture
def recorded(mongo_db):
    """The relay's records of shots API-20261124-000001…000008, one a second from LASER."""
    shots = [relay_envelope(n) for n in range(1, 9)]
    relay_store.record_shots(shots, relay_store.ShotIndexState())
    return shots


@pytest.fixture
def shot_entries(recorded, api_sheet):
    """Entries for shots 1-5 made after the relay recorded them (so they carry the laser time)."""
    version = schema.save_version(api_sheet)
    return [
        create_entry(api_sheet, version, {"energy": n * 2.0, "count": n}, author="ada", shot_key=s["shot_key"])
        for n, s in enumerate(recorded[:5], start=1)
    ]


@pytest.fixture
def events(recorded, db):
    """Events of shots 1-4 in the routed collection `diag`: three a shot, one value is text."""
    documents = [
        diag_event(i, shot, "n/a" if (shot, i) == (2, 2) else shot * 10 + i) for shot in (1, 2, 3, 4) for i in (1, 2, 3)
    ]
    ingest("diag", documents)
    return documents


def get(client, url: str, **params):
    response = client.get(url, params)
    assert response.status_code < 500, response.content[:500]
    return response


def problems(response) -> dict[str, str]:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return {error["parameter"]: error["problem"] for error in orjson.loads(response.content)["errors"]}


# --- shots ----------------------------------------------------------------------------------------


def test_shots_by_laser_time_and_number_with_every_envelope_part(recorded, member, bearer):
    client = bearer(member)
    page = get(client, "/api/v1/shots/", since="2026-11-24T10:00:02Z", until="2026-11-24T10:00:05Z").json()
    assert [shot["shot_number"] for shot in page["results"]] == [4, 3, 2]
    assert page["search"] == {"complete": True, "indexed": True, "lookups": page["search"]["lookups"]}
    third = page["results"][1]
    assert third["shot_key"] == recorded[2]["shot_key"] and third["laser_time"] == "2026-11-24T10:00:03Z"
    assert third["laser_ts_ns"] == at(3) and third["relay_ts_ns"] == recorded[2]["relay_ts_ns"]
    assert third["values"] == {"energy_J": 4.5, "mode": "single"} and third["flags"] == {"gap": 1}
    by_number = get(client, "/api/v1/shots/", number_min=6, number_max=20, experiment="API").json()
    assert [shot["shot_number"] for shot in by_number["results"]] == [8, 7, 6]
    assert get(client, "/api/v1/shots/", experiment="OTHER").json()["results"] == []


def test_shots_come_a_page_at_a_time_by_cursor_and_as_csv(recorded, member, bearer):
    client = bearer(member)
    for params in ({}, {"number_min": "1"}):
        numbers, url, query = [], "/api/v1/shots/", {**params, "page_size": 3}
        while url:
            page = client.get(url, query).json()
            numbers += [shot["shot_number"] for shot in page["results"]]
            url, query = page["next"], {}
        assert numbers == [8, 7, 6, 5, 4, 3, 2, 1], params
    response = get(client, "/api/v1/shots/", format="csv", number_min=2, number_max=3)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["shot_number"] for row in rows] == ["3", "2"]
    assert rows[0]["laser_time [UTC]"] == "2026-11-24T10:00:03Z" and rows[0]["values.energy_J"] == "4.5"
    assert orjson.loads(rows[0]["flags"]) == {"gap": 1} and rows[1]["flags"] == ""


def test_shots_recorded_before_the_indexes_are_found_and_say_how(mongo_db, member, bearer):
    old = relay_envelope(1)
    mongo.database()[relay_store.SHOTS].insert_one(
        {"_id": old["shot_key"], **{name: old[name] for name in relay_store.SHOT_FIELDS}}
    )
    page = get(bearer(member), "/api/v1/shots/", number_min=1, number_max=1).json()
    assert page["search"]["indexed"] is False
    assert page["results"][0]["shot_key"] == old["shot_key"] and page["results"][0]["experiment"] == "API"
    assert page["results"][0]["values"] is None and page["results"][0]["laser_time"] == "2026-11-24T10:00:01Z"


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-24T10:00Z", "until": "2026-11-24T09:00Z"}, "until"),
        ({"number_min": "5", "number_max": "2"}, "number_max"),
        ({"number_min": "-1"}, "number_min"),
        ({"number_max": "1e3"}, "number_max"),
        ({"experiment": '{"$gt": ""}'}, "experiment"),
        ({"experiment[$ne]": "x"}, "experiment[$ne]"),
        ({"page_size": "100000000"}, "page_size"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"$where": "1"}, "$where"),
    ],
)
def test_bad_shot_queries_are_400s_naming_the_parameter(recorded, member, bearer, params, parameter):
    assert parameter in problems(get(bearer(member), "/api/v1/shots/", **params))


def test_a_number_cursor_is_not_a_time_cursor(recorded, member, bearer):
    client = bearer(member)
    following = get(client, "/api/v1/shots/", page_size=2).json()["next"]
    cursor = following.split("cursor=")[1]
    assert "cursor" in problems(get(client, "/api/v1/shots/", number_min=1, cursor=cursor))


# --- the shot join --------------------------------------------------------------------------------


def test_the_shot_join_has_the_relay_record_the_visible_entries_and_every_event(shot_entries, events, member, bearer):
    key = shot_entries[1]["shot_key"]
    join = get(bearer(member), f"/api/v1/shots/{key}/").json()
    assert join["shot_key"] == key and join["parsed"] == {
        "experiment": "API",
        "date": "20261124",
        "run": 1,
        "number": 2,
    }
    assert join["relay"]["record"]["laser_time"] == "2026-11-24T10:00:02Z"
    assert join["relay"]["record"]["values"]["energy_J"] == 3.0
    entries = join["entries"]
    assert [entry["id"] for entry in entries["results"]] == [shot_entries[1]["_id"]]
    assert entries["results"][0]["sheet"] == "apisheet" and entries["results"][0]["values"]["energy"] == 4.0
    assert entries["results"][0]["fields"]["energy"]["unit"] == "J" and entries["truncated"] is False
    assert entries["results"][0]["laser_time"] == "2026-11-24T10:00:02Z"
    assert [event["_id"] for event in join["events"]["results"]] == [e["event_id"] for e in reversed(events[3:6])]
    assert join["events"]["results"][0]["_collection"] == "diag" and join["events"]["truncated"] is False


def test_the_shot_join_lists_the_simulation_runs_that_model_the_shot(shot_entries, member, bearer, tmp_path):
    from simulations.services import extract_runs
    from tests.simulations.runs import warpx_run

    key = shot_entries[1]["shot_key"]
    [result] = extract_runs([warpx_run(tmp_path / "lwfa")], shot_keys=[key], settle_seconds=0)
    join = get(bearer(member), f"/api/v1/shots/{key}/").json()
    [run] = join["simulations"]["results"]
    assert run["id"] == result.run["_id"] and run["code"] == "warpx" and run["software_version"] == "25.01"
    assert run["summary"]["a0"] == {"value": 2.5, "unit": "1"} and run["url"] == f"/simulations/{run['id']}/"
    other = get(bearer(member), f"/api/v1/shots/{shot_entries[0]['shot_key']}/").json()
    assert other["simulations"]["results"] == []


def test_the_shot_join_never_shows_an_entry_of_a_sheet_the_user_may_not_view(shot_entries, events, outsider, bearer):
    client = bearer(outsider)
    join = get(client, f"/api/v1/shots/{shot_entries[0]['shot_key']}/").json()
    assert join["entries"]["results"] == [] and join["relay"]["record"] and len(join["events"]["results"]) == 3
    mongo.database()[relay_store.SHOTS].delete_one({"_id": shot_entries[4]["shot_key"]})
    # Shot 5: an entry (hidden from the outsider) and nothing else: to the outsider nothing is known.
    response = get(client, f"/api/v1/shots/{shot_entries[4]['shot_key']}/")
    assert response.status_code == 404 and b"apisheet" not in response.content


def test_the_shot_join_of_an_unknown_key_is_a_404_with_a_clear_body(recorded, member, bearer):
    response = get(bearer(member), "/api/v1/shots/API-20261124-999999/")
    assert response.status_code == 404
    assert orjson.loads(response.content)["errors"][0]["problem"].startswith("Nothing is known of this shot key")
    assert "shot_key" in problems(get(bearer(member), f"/api/v1/shots/{'x' * 300}/"))


def test_the_shot_join_says_when_a_part_is_cut_at_its_limit(shot_entries, events, member, bearer, settings):
    settings.API_SHOT_JOIN_MAX_EVENTS = 2
    join = get(bearer(member), f"/api/v1/shots/{shot_entries[0]['shot_key']}/").json()
    assert len(join["events"]["results"]) == 2 and join["events"]["truncated"] is True and join["events"]["limit"] == 2


# --- events ---------------------------------------------------------------------------------------


def test_events_by_source_and_field_a_page_at_a_time_with_the_search_limits(events, member, bearer):
    client = bearer(member)
    ids, url, query = [], "/api/v1/events/diag/", {"source": "probe", "page_size": 3}
    while url:
        page = client.get(url, query).json()
        assert page["search"]["complete"] and page["search"]["indexed"]
        assert page["search"]["max_fetched"] == handmade.MAX_FETCHED and page["search"]["fetched"] >= 1
        ids += [event["_id"] for event in page["results"]]
        url, query = page["next"], {}
    probes = [e for e in events if e["source"] == "probe"]
    assert ids == [e["event_id"] for e in sorted(probes, key=lambda e: e["laser_ts_ns"], reverse=True)]
    found = get(client, "/api/v1/events/diag/", field="values.charge_pC", value="42").json()["results"]
    assert [event["_id"] for event in found] == [events[10]["event_id"]] and found[0]["_ts"].endswith("Z")
    windowed = get(client, "/api/v1/events/diag/", since="2026-11-24T10:00:02Z", until="2026-11-24T10:00:03Z").json()
    assert {event["shot_number"] for event in windowed["results"]} == {2}
    rows = list(
        csv.DictReader(
            io.StringIO(get(client, "/api/v1/events/diag/", format="csv", kind="measurement").content.decode())
        )
    )
    assert len(rows) == 12 and rows[0]["values.charge_pC"] == "43" and rows[0]["_ts"].endswith("Z")


def test_an_events_search_cut_at_its_limit_says_so(events, member, bearer, monkeypatch):
    monkeypatch.setattr(handmade, "MAX_FETCHED", 2)
    page = get(bearer(member), "/api/v1/events/diag/", field="values.charge_pC", value="11").json()
    assert page["search"]["complete"] is False and page["search"]["fetched"] == 2 and page["results"] == []


def test_events_of_an_unknown_collection_are_a_404(events, member, bearer):
    assert get(bearer(member), "/api/v1/events/auth_user/").status_code == 404
    assert get(bearer(member), "/api/v1/events/nowhere/", field="$where", value="1").status_code == 404


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"field": "$where", "value": "1"}, "field"),
        ({"field": "values.$gt", "value": "1"}, "field"),
        ({"field": "values.charge_pC", "value": '{"$gt": 0}'}, "value"),
        ({"field": "values.charge_pC", "value": "$gt"}, "value"),
        ({"field": "values.charge_pC"}, "value"),
        ({"source": "$ne"}, "source"),
        ({"source[$ne]": "probe"}, "source[$ne]"),
        ({"page_size": "5000"}, "page_size"),
        ({"until": "2026-13-01"}, "until"),
        ({"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_event_queries_are_400s_naming_the_parameter(events, member, bearer, params, parameter):
    assert parameter in problems(get(bearer(member), "/api/v1/events/diag/", **params))


# --- time series ----------------------------------------------------------------------------------


def test_a_sheet_field_over_entry_time_and_shot_time_with_its_unit(shot_entries, member, bearer):
    client = bearer(member)
    series = get(client, "/api/v1/timeseries/", sheet="apisheet", field="energy").json()
    assert [row["value"] for row in series["rows"]] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert series["fields"]["value"]["unit"] == "J" and series["fields"]["time"]["unit"] == "UTC"
    assert series["skipped"] == 0 and series["complete"]
    by_shot = get(
        client, "/api/v1/timeseries/", sheet="apisheet", field="energy", time="shot",
        since="2026-11-24T10:00:02Z", until="2026-11-24T10:00:04Z",
    ).json()  # fmt: skip
    assert by_shot["rows"] == [
        {"time": "2026-11-24T10:00:02Z", "value": 4.0},
        {"time": "2026-11-24T10:00:03Z", "value": 6.0},
    ]
    reduced = get(
        client, "/api/v1/timeseries/", sheet="apisheet", field="energy", time="shot", interval="2s", reduce="max",
        since="2026-11-24T10:00:00Z", until="2026-11-24T10:01:00Z",
    ).json()  # fmt: skip
    assert [(row["time"][-3:], row["value"]) for row in reduced["rows"]] == [("00Z", 2.0), ("02Z", 6.0), ("04Z", 10.0)]
    response = get(
        client, "/api/v1/timeseries/", sheet="apisheet", field="count", time="shot", format="csv",
        since="2026-11-24T10:00:00Z", until="2026-11-24T10:01:00Z", interval="1m", reduce="count",
    )  # fmt: skip
    assert response.content.decode().splitlines() == ["time,value", "2026-11-24T10:00:00Z,5"]


def test_a_sheet_the_user_may_not_view_is_a_404_for_its_time_series(shot_entries, outsider, bearer):
    response = get(bearer(outsider), "/api/v1/timeseries/", sheet="apisheet", field="energy")
    assert response.status_code == 404 and b"energy" not in response.content
    assert get(bearer(outsider), "/api/v1/timeseries/", sheet="nosuchsheet", field="energy").status_code == 404


def test_an_event_field_over_time_skips_and_counts_what_is_not_a_number(events, member, bearer):
    client = bearer(member)
    params = {"collection": "diag", "field": "values.charge_pC", "since": "2026-11-24T10:00:00Z"}
    series = get(client, "/api/v1/timeseries/", **params, until="2026-11-24T10:00:03Z").json()
    assert [row["value"] for row in series["rows"]] == [11, 12, 13, 21, 23]  # shot 2's second value is text
    assert series["skipped"] == 1 and series["read"] == 6 and series["complete"]
    assert series["fields"]["value"] == {"collection": "diag", "field": "values.charge_pC", "unit": None}
    assert series["rows"][0]["time"] == "2026-11-24T10:00:01.001000Z"
    mean = get(client, "/api/v1/timeseries/", **params, until="2026-11-24T10:00:05Z", interval="1s", format="csv")
    assert list(csv.reader(io.StringIO(mean.content.decode()))) == [
        ["time", "value"],
        ["2026-11-24T10:00:01Z", "12.0"],
        ["2026-11-24T10:00:02Z", "22.0"],
        ["2026-11-24T10:00:03Z", "32.0"],
        ["2026-11-24T10:00:04Z", "42.0"],
    ]
    missing = get(client, "/api/v1/timeseries/", **{**params, "field": "values.nothing"}, until="2026-11-24T10:00:05Z")
    assert missing.json()["rows"] == [] and missing.json()["missing"] == 12


def test_an_event_time_series_stops_at_its_limit_and_says_so(events, member, bearer, settings):
    settings.API_TIMESERIES_MAX_EVENTS = 4
    series = get(
        bearer(member), "/api/v1/timeseries/", collection="diag", field="values.charge_pC",
        since="2026-11-24T10:00:00Z", until="2026-11-24T10:00:05Z",
    ).json()  # fmt: skip
    assert series["complete"] is False and [row["value"] for row in series["rows"]] == [33, 41, 42, 43]  # the newest


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"field": "energy"}, "sheet"),
        ({"sheet": "apisheet", "collection": "diag", "field": "energy"}, "sheet"),
        ({"sheet": "apisheet"}, "field"),
        ({"sheet": "apisheet", "field": "note"}, "field"),
        ({"sheet": "apisheet", "field": "values.energy"}, "field"),
        ({"collection": "diag", "field": "values.$gt"}, "field"),
        ({"collection": "diag", "field": "values.charge_pC", "time": "shot"}, "time"),
        ({"sheet": "apisheet", "field": "energy", "interval": "10 parsecs"}, "interval"),
        ({"sheet": "apisheet", "field": "energy", "interval": "0s"}, "interval"),
        ({"sheet": "apisheet", "field": "energy", "interval": "1m", "reduce": "median"}, "reduce"),
        ({"sheet": "apisheet", "field": "energy", "reduce": "max"}, "reduce"),
        ({"sheet": "apisheet", "field": "energy", "since": "2020-01-01T00:00Z"}, "since"),
        ({"sheet": "apisheet", "field": "energy", "since": "2026-11-24T10:00Z", "until": "2026-11-24T09:00Z"}, "until"),
        ({"sheet": "apisheet", "field": "energy", "time": "laser"}, "time"),
        ({"sheet": "apisheet", "field[$ne]": "x"}, "field[$ne]"),
    ],
)
def test_bad_time_series_queries_are_400s_naming_the_parameter(shot_entries, events, member, bearer, params, parameter):
    assert parameter in problems(get(bearer(member), "/api/v1/timeseries/", **params))
