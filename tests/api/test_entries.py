"""Entries over the API: the web table's filters with the same results, fields, time ranges, CSV
and JSON read back (csv, pandas), bad input and injection always a 400 naming the parameter."""

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from django.test import Client

from core import mongo
from shotsheet import store
from shotsheet.entries import update_entry

URL = "/api/v1/sheets/apisheet/entries/"

# Every filter of the web table (and its sort), alone and combined.
FILTERS = [
    {},
    {"shot": "0003"},
    {"shot": "api-2026"},
    {"f_target": "Cu"},
    {"f_target": "cu"},
    {"f_energy_min": "1"},
    {"f_energy_max": "2,5"},
    {"f_energy_min": "-1", "f_energy_max": "12"},
    {"f_count_min": "1", "f_count_max": "5"},
    {"f_ok": "true"},
    {"f_ok": "false"},
    {"f_note": "SHOT"},
    {"f_note": "="},
    {"f_when_from": "2026-11-24T10:00"},
    {"f_when_to": "2026-11-24T10:00"},
    {"f_gases": "He"},
    {"f_gases": "N2", "f_target": "Cu"},
    {"sort": "energy"},
    {"sort": "-energy"},
    {"sort": "count"},
    {"sort": "-count"},
    {"sort": "note"},
    {"sort": "shot_key"},
    {"sort": "-author"},
    {"sort": "created"},
    {"sort": "when"},
    {"sort": "-gases"},
    {"f_energy_min": "0", "sort": "-count"},
]


def web_ids(client: Client, params: dict) -> list[str]:
    response = client.get("/sheets/apisheet/", params)
    assert response.status_code == 200
    assert not response.context["problems"], response.context["problems"]
    return [row["id"] for row in response.context["rows"]]


def api_ids(client: Client, params: dict, page_size: int = 2) -> list[str]:
    """Every page, following the cursor."""
    ids, url, query = [], URL, {**params, "page_size": page_size}
    while url:
        response = client.get(url, query)
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [entry["id"] for entry in body["results"]]
        url, query = body["next"], None
    return ids


@pytest.fixture
def session(member):
    client = Client()
    client.force_login(member)
    return client


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()) or "none")
def test_every_filter_gives_the_web_tables_entries_in_its_order(api_entries, member, bearer, session, params):
    expected = web_ids(session, params)
    assert api_ids(bearer(member), params) == expected
    if params:
        assert api_ids(bearer(member), params, page_size=100) == expected


def test_the_filter_on_entry_time_reads_the_lab_zone_as_the_table_does(api_entries, member, bearer, session):
    local = "2026-11-24T11:02"  # Berlin = UTC+1 in November: the third entry's time
    for params in ({"from": local}, {"to": local}):
        assert api_ids(bearer(member), params) == web_ids(session, params)
    assert api_ids(bearer(member), {"from": local}) == [e["_id"] for e in reversed(api_entries[2:])]


def test_fields_picks_the_columns_and_an_unknown_one_is_a_400(api_entries, member, bearer):
    client = bearer(member)
    body = client.get(URL, {"fields": "energy,note"}).json()
    assert body["fields"] == {
        "energy": {"label": "Energy", "type": "float", "unit": "J"},
        "note": {"label": "Note", "type": "text", "unit": ""},
    }
    assert body["results"][-1]["values"] == {"energy": 1.5, "note": "first shot"}
    refused = client.get(URL, {"fields": "energy,nope,$where"})
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["parameter"] == "fields" and "nope" in error["problem"] and "$where" in error["problem"]


def test_values_are_typed_and_times_iso_utc(api_entries, member, bearer):
    (entry,) = [e for e in bearer(member).get(URL).json()["results"] if e["shot_key"] == "API-20261124-000004"]
    assert entry["values"] == {
        "target": "Al",
        "energy": 12.0,
        "count": 1,
        "ok": None,
        "note": "+cmd",
        "when": "2026-11-24T09:30:00Z",
        "gases": None,
    }
    assert entry["shot_number"] == 4
    assert datetime.fromisoformat(entry["created"]) == api_entries[3]["created"]
    assert entry["created"].endswith("Z")


def set_laser_times(entries: list[dict], start: datetime) -> list[datetime]:
    """Give each entry a laser time, one hour apart, as the relay's record would."""
    times = []
    for n, entry in enumerate(entries):
        when = start + timedelta(hours=n)
        ns = int(when.timestamp()) * 1_000_000_000
        mongo.database()[store.ENTRIES].update_one({"_id": entry["_id"]}, {"$set": {"laser_ts_ns": ns}})
        times.append(when)
    store.append_changes("apisheet", [entry["_id"] for entry in entries])
    return times


def test_since_until_on_entry_time_and_on_shot_time(api_entries, member, bearer):
    client = bearer(member)
    created = [e["created"] for e in api_entries]
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert api_ids(client, {"since": iso(created[1]), "until": iso(created[3])}) == [
        api_entries[2]["_id"],
        api_entries[1]["_id"],
    ]
    laser = set_laser_times(api_entries[:4], datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    window = {"since": "2026-11-24T09:00:00Z", "until": "2026-11-24T11:00:00+00:00", "time": "shot"}
    assert api_ids(client, window) == [api_entries[2]["_id"], api_entries[1]["_id"]]
    body = client.get(URL, window).json()
    assert [e["laser_time"] for e in body["results"]] == ["2026-11-24T10:00:00Z", "2026-11-24T09:00:00Z"]
    assert laser[1].isoformat().startswith("2026-11-24T09:00")
    # an offset is read as given; without one the API's times are UTC
    assert api_ids(client, {**window, "since": "2026-11-24T10:00:00+01:00"}) == api_ids(client, window)
    assert api_ids(client, {**window, "since": "2026-11-24T09:00:00"}) == api_ids(client, window)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-24T10:00:00Z", "until": "2026-11-24T09:00:00Z"}, "until"),
        ({"since": "2026-11-24T10:00:00Z", "until": "2026-11-24T10:00:00Z"}, "until"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"time": "laser"}, "time"),
        ({"page_size": "100000000"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "-5"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "garbage"}, "cursor"),
        ({"f_energy_min": "lots"}, "f_energy_min"),
        ({"f_energy_max": "1e400"}, "f_energy_max"),
        ({"f_when_from": "noon"}, "f_when_from"),
        ({"from": "2026-11-31"}, "from"),
        ({"sort": "$where"}, "sort"),
        ({"sort": "-nope"}, "sort"),
        ({"f_energy[$gt]": ""}, "f_energy[$gt]"),
        ({"f_energy[$gt]": "0"}, "f_energy[$gt]"),
        ({"$where": "sleep(1000)"}, "$where"),
        ({"values.energy": "1"}, "values.energy"),
        ({"f_energy_min": '{"$gt": 0}'}, "f_energy_min"),
        ({"page": "2"}, "page"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(api_entries, member, bearer, params, parameter):
    response = bearer(member).get(URL, params)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert parameter in [e["parameter"] for e in errors], errors
    assert all(e["problem"] for e in errors)
    assert b"Mongo" not in response.content and b"Traceback" not in response.content


def test_every_problem_is_reported_at_once(api_entries, member, bearer):
    response = bearer(member).get(URL, {"since": "x", "time": "y", "fields": "z", "bogus": "1"})
    assert {e["parameter"] for e in response.json()["errors"]} == {"since", "time", "fields", "bogus"}


@pytest.mark.parametrize(
    "params",
    [
        {"f_note": '{"$gt": ""}'},
        {"f_target": '{"$ne": null}'},
        {"f_note": ".*"},
        {"shot": "^"},
        {"f_gases": '["He"]'},
        {"f_ok": '{"$exists": true}'},
        {"f_note": "'; db.dropDatabase(); '"},
    ],
)
def test_json_and_operators_in_values_are_only_text(api_entries, member, bearer, session, params):
    response = bearer(member).get(URL, params)
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == web_ids(session, params)
    assert len(response.json()["results"]) < 5 or "f_ok" in params


def test_no_value_of_any_parameter_is_a_500(api_entries, member, bearer):
    client = bearer(member)
    names = ["shot", "from", "to", "f_target", "f_energy_min", "f_energy_max", "f_count_min", "f_ok", "f_note"]
    names += ["f_when_from", "f_when_to", "f_gases", "sort", "fields", "since", "until", "time", "page_size", "cursor"]
    values = ["", " ", "x", "$gt", '{"$gt": 1}', "1e400", "nan", "inf", "-0", "9999-12-31T23:59:59-23:59", "0" * 500]
    values += ["\x00", "😀", "2026-11-24", "1,234.5", "a" * 5000, "-", ",", "[]"]
    for name in names:
        for value in values:
            response = client.get(URL, {name: value})
            assert response.status_code in (200, 400), (name, value, response.status_code)
            if response.status_code == 400:
                assert response.json()["errors"]


def test_a_huge_page_is_refused_and_the_limit_is_a_setting(api_entries, member, bearer, settings):
    client = bearer(member)
    assert client.get(URL, {"page_size": 10_000}).status_code == 200
    settings.API_MAX_PAGE_SIZE = 3
    refused = client.get(URL, {"page_size": 4})
    assert refused.status_code == 400 and "at most 3" in refused.json()["errors"][0]["problem"]
    settings.API_PAGE_SIZE = 2
    assert len(client.get(URL).json()["results"]) == 2


def test_the_cursor_neither_repeats_nor_skips_when_entries_arrive_meanwhile(api_sheet, api_entries, member, bearer):
    from shotsheet import schema
    from shotsheet.entries import create_entry

    client = bearer(member)
    first = client.get(URL, {"page_size": 2}).json()
    create_entry(api_sheet, schema.save_version(api_sheet), {"target": "Al"}, author="ada", shot_key=None)
    rest = client.get(first["next"]).json()
    assert [e["id"] for e in first["results"] + rest["results"]][:4] == [e["_id"] for e in reversed(api_entries)][:4]


def test_a_made_up_cursor_is_a_400(api_entries, member, bearer):
    from api.pagination import encode

    order = [["created", -1], ["_id", -1]]
    for position in ([[5, {"$gt": 1}], [2, "x"]], [[5, "text"], [2, 1]], [[5, 1], None], [1, 2]):
        response = bearer(member).get(URL, {"cursor": encode(position, order)})
        assert response.status_code in (200, 400), position
        if response.status_code == 400:
            assert response.json()["errors"][0]["parameter"] == "cursor"


def test_a_cursor_of_another_sort_is_refused(api_entries, member, bearer):
    client = bearer(member)
    next_url = client.get(URL, {"page_size": 2, "sort": "energy"}).json()["next"]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    assert client.get(URL, {"page_size": 2, "sort": "energy", "cursor": cursor}).status_code == 200
    response = client.get(URL, {"page_size": 2, "cursor": cursor})
    assert response.status_code == 400 and response.json()["errors"][0]["parameter"] == "cursor"


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_has_units_in_the_header_and_reads_back(api_entries, member, bearer):
    client = bearer(member)
    header, *rows = read_csv(client.get(URL, {"format": "csv", "sort": "shot_key"}))
    assert header == [
        "entry",
        "shot_key",
        "shot_number",
        "laser_time [UTC]",
        "created [UTC]",
        "author",
        "schema_version",
        "comment",
        "voided",
        "Target",
        "Energy [J]",
        "Count",
        "OK",
        "Note",
        "When",
        "Gases",
    ]
    assert read_csv(client.get(URL, {"sort": "shot_key"}, HTTP_ACCEPT="text/csv")) == [header, *rows]
    as_asked = client.get(URL, {"sort": "shot_key", "format": "csv"}, HTTP_ACCEPT="application/json")
    assert read_csv(as_asked) == [header, *rows]  # ?format= decides
    by_key = {row[1]: dict(zip(header, row, strict=True)) for row in rows}
    first = by_key["API-20261124-000001"]
    assert first["Energy [J]"] == "1.5" and first["Count"] == "3" and first["OK"] == "true"
    assert first["Gases"] == "He" and first["created [UTC]"].endswith("Z")
    assert by_key["API-20261124-000002"]["Note"] == '\'=HYPERLINK("x")'  # not a formula in a spreadsheet
    assert by_key["API-20261124-000002"]["Gases"] == "He, N2"
    assert by_key["API-20261124-000003"]["Note"] == 'needle, "quoted"\nnew line'
    assert by_key["API-20261124-000003"]["Energy [J]"] == "-0.5"  # a negative number stays a number
    assert by_key["API-20261124-000004"]["Note"] == "'+cmd"
    assert by_key["API-20261124-000004"]["When"] == "2026-11-24T09:30:00Z"
    fields_only = read_csv(client.get(URL, {"format": "csv", "fields": "energy"}))
    assert fields_only[0][-1] == "Energy [J]" and len(fields_only[0]) == 10


def test_csv_and_json_into_pandas(api_entries, member, bearer):
    client = bearer(member)
    frame = pd.read_csv(io.BytesIO(client.get(URL, {"format": "csv"}).content), parse_dates=["created [UTC]"])
    assert len(frame) == 5
    assert frame["Energy [J]"].dtype == "float64"
    assert sorted(frame["Energy [J]"]) == [-0.5, 1.5, 2.5, 12.0, 40.25]
    assert str(frame["created [UTC]"].dt.tz) == "UTC"
    body = client.get(URL).json()
    values = pd.json_normalize(body["results"])
    assert values["values.energy"].tolist() == [40.25, 12.0, -0.5, 2.5, 1.5]
    assert pd.to_datetime(values["created"]).dt.tz is not None


def test_an_error_asked_for_as_csv_comes_as_csv(api_entries, member, bearer):
    response = bearer(member).get(URL, {"format": "csv", "since": "never"})
    assert response.status_code == 400
    header, (parameter, problem) = read_csv_rows(response)
    assert header == ["parameter", "problem"] and parameter == "since" and "ISO 8601" in problem


def read_csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_one_entry_with_its_history(api_sheet, api_entries, member, bearer, outsider):
    entry = api_entries[0]
    update_entry(api_sheet, entry, 1, {**entry["values"], "energy": 3.0}, author="bob", comment="fixed", shot_key=None)
    client = bearer(member)
    body = client.get(f"{URL}{entry['_id']}/").json()
    assert body["rev"] == 2 and body["values"]["energy"] == 3.0 and body["shot_key"] is None
    (change,) = body["history"]
    assert change["who"] == "bob" and change["when"].endswith("Z")
    assert change["changes"]["energy"] == {"old": 1.5, "new": 3.0}
    assert change["changes"]["shot_key"] == {"old": "API-20261124-000001", "new": None}
    assert body["fields"]["energy"]["unit"] == "J"
    assert client.get(f"{URL}apisheet:nope/").status_code == 404
    assert client.get(f"{URL}{entry['_id']}/?format=csv").status_code == 406
    assert bearer(outsider).get(f"{URL}{entry['_id']}/").status_code == 404


def test_an_entry_of_another_sheet_is_not_found_through_this_one(api_entries, member, bearer, db):
    from shotsheet.models import Sheet

    Sheet.objects.create(name="Open sheet", slug="open", experiment="OPN")
    entry_id = api_entries[0]["_id"]
    assert bearer(member).get(f"/api/v1/sheets/open/entries/{entry_id}/").status_code == 404


@pytest.mark.slow
def test_mongodb_gone_is_a_503_saying_so_never_a_500(api_sheet, member, bearer, private_mongodb):
    from shotsheet import schema
    from shotsheet.entries import create_entry

    entry = create_entry(api_sheet, schema.save_version(api_sheet), {"energy": 1.0}, author="ada", shot_key=None)
    client = bearer(member)
    assert client.get(URL).status_code == 200
    private_mongodb.kill()
    for url in (URL, f"{URL}?format=csv", f"{URL}{entry['_id']}/"):
        response = client.get(url)
        assert response.status_code == 503, (url, response.status_code)
        assert response["Retry-After"]
        assert b"database cannot be reached" in response.content
        assert b"ServerSelection" not in response.content and b"27017" not in response.content
    assert client.get("/api/v1/sheets/apisheet/").status_code == 200  # the sheet itself is not in MongoDB


def test_voided_entries_are_left_out_unless_asked_for_as_on_the_web_table(api_sheet, api_entries, member, bearer):
    from shotsheet.entries import set_voided

    client = bearer(member)
    voided = api_entries[1]
    set_voided(api_sheet, voided, voided["rev"], author="ada", reason="wrong target")
    assert voided["_id"] not in api_ids(client, {})
    assert voided["_id"] in api_ids(client, {"voided": "show"})
    assert api_ids(client, {"voided": "only"}) == [voided["_id"]]
    [shown] = client.get(URL, {"voided": "only"}).json()["results"]
    assert shown["voided"]["reason"] == "wrong target" and shown["voided"]["who"] == "ada"
    header, *rows = read_csv(client.get(URL, {"voided": "show", "format": "csv"}))
    notes = {row[0]: row[header.index("voided")] for row in rows}
    assert notes[voided["_id"]].endswith(": wrong target") and notes[api_entries[0]["_id"]] == ""


def test_csv_times_are_the_json_times(api_entries, member, bearer):
    """Laser and entry times in CSV as in JSON: ISO 8601 UTC with a Z, microseconds when there are any."""
    client = bearer(member)
    laser_ts_ns = int(datetime(2026, 11, 24, 8, 0, tzinfo=UTC).timestamp()) * 1_000_000_000 + 250_000_000
    mongo.database()[store.ENTRIES].update_one({"_id": api_entries[0]["_id"]}, {"$set": {"laser_ts_ns": laser_ts_ns}})
    store.append_changes("apisheet", [api_entries[0]["_id"]])
    body = client.get(URL).json()["results"]
    rows = list(csv.DictReader(io.StringIO(client.get(URL, {"format": "csv"}).content.decode())))
    assert [(r["laser_time [UTC]"], r["created [UTC]"]) for r in rows] == [
        (e["laser_time"] or "", e["created"]) for e in body
    ]
    assert rows[-1]["laser_time [UTC]"] == "2026-11-24T08:00:00.250000Z" and rows[0]["laser_time [UTC]"] == ""
