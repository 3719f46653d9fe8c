"""Values exactly as entered, one clock, and exports a spreadsheet cannot turn into commands (issue 10)."""

import csv
import io
import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from shotsheet import store
from shotsheet.models import Field
from shotsheet.numbers import NotANumber, NumberError, parse_number

FORMULAS = ["=1+1", "=cmd|' /C calc'!A0", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def test_export_neutralises_text_that_a_spreadsheet_would_run_as_a_formula(admin_client, sheet, make_entry):
    for formula in FORMULAS:
        make_entry(sheet, note=formula, energy=-2.5, shots_on_target=-3)
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/sheets/test/export.csv").content.decode())))
    assert sorted(row["Note"] for row in rows) == sorted(f"'{formula}" for formula in FORMULAS)
    assert {row["Energy [J]"] for row in rows} == {"-2.5"}  # a negative number stays a number
    assert {row["Shots on target"] for row in rows} == {"-3"}

    workbook = load_workbook(io.BytesIO(admin_client.get("/sheets/test/export.xlsx").content))
    header, *cells = list(workbook.active.iter_rows())
    note = [c.value for c in header].index("Note")
    energy = [c.value for c in header].index("Energy [J]")
    kept = sorted(row[note].value for row in cells if "\n" not in row[note].value)  # XML reads CR as LF
    assert kept == sorted(formula for formula in FORMULAS if "\r" not in formula)  # the text itself
    assert {row[note].data_type for row in cells} == {"s"}  # a string, never a formula
    assert {(row[energy].value, row[energy].data_type) for row in cells} == {(-2.5, "n")}


@pytest.mark.parametrize(
    ("typed", "decimal_mark", "number"),
    [
        ("3,7", "auto", 3.7),
        ("3.7", "auto", 3.7),
        ("-0,5", "auto", -0.5),
        ("0,125", "auto", 0.125),
        ("1,5e-3", "auto", 0.0015),
        (" 12 ", "auto", 12.0),
        ("1234,5", "auto", 1234.5),
        ("1.234,5", "comma", 1234.5),
        ("3,7", "comma", 3.7),
        ("1.234.567", "comma", 1234567.0),
        ("1,234", "comma", 1.234),
        ("1,234.5", "point", 1234.5),
        ("3.7", "point", 3.7),
        ("1,234", "point", 1234.0),
    ],
)
def test_a_number_is_read_with_the_sheets_decimal_mark(typed, decimal_mark, number):
    assert parse_number(typed, decimal_mark) == Decimal(str(number))


@pytest.mark.parametrize(
    ("typed", "decimal_mark", "message"),
    [
        ("1,234.5", "auto", "both a comma and a point"),
        ("1.234,5", "auto", "both a comma and a point"),
        ("1,234", "auto", "could be 1.234 or 1234"),
        ("1.234.567", "auto", "more than one comma or point"),
        ("3.7", "comma", "does not fit this sheet's decimal mark, the comma"),
        ("3,7", "point", "does not fit this sheet's decimal mark, the point"),
        ("1,2,3", "comma", "more than one decimal comma"),
        ("lots", "auto", "is not a number"),
        ("-", "auto", "not a number"),
    ],
)
def test_a_number_that_could_be_read_two_ways_is_refused_with_the_reason(typed, decimal_mark, message):
    with pytest.raises(NumberError, match=re.escape(message)):
        parse_number(typed, decimal_mark)


def test_the_form_takes_a_decimal_comma_and_keeps_an_ambiguous_value_with_its_message(admin_client, sheet, mongo_db):
    response = admin_client.post(
        "/sheets/test/new/", {"target": "Al", "energy": "1.234,5", "shots_on_target": "3,0", "note": "kept"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="error_1_id_energy"' in html and "both a comma and a point" in html
    assert 'value="1.234,5"' in html and 'value="kept"' in html and 'inputmode="decimal"' in html
    assert 'type="number"' not in html  # a number input lets the browser rewrite what was typed
    assert mongo_db["entries"].count_documents({}) == 0

    saved = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "3,7", "shots_on_target": "3"})
    assert saved.status_code == 302
    assert mongo_db["entries"].find_one()["values"]["energy"] == 3.7


def test_a_sheet_with_a_decimal_comma_reads_thousands_points_and_shows_its_numbers_with_a_comma(
    admin_client, sheet, mongo_db
):
    sheet.decimal_mark = "comma"
    sheet.save()
    saved = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1,5", "shots_on_target": "1.000"})
    assert saved.status_code == 302
    entry = mongo_db["entries"].find_one()
    assert (entry["values"]["energy"], entry["values"]["shots_on_target"]) == (1.5, 1000)
    url = f"/sheets/test/entries/{entry['_id']}/"
    assert 'value="1,5"' in admin_client.get(url).content.decode()
    saved_again = admin_client.post(url, {"target": "Al", "energy": "1,5", "shots_on_target": "1000", "rev": "1"})
    assert saved_again.status_code == 302 and store.get_entry(entry["_id"])["rev"] == 1  # nothing changed


def test_the_tables_number_filters_take_a_decimal_comma_as_typed(admin_client, sheet, make_entry):
    for energy in (3.5, 3.9):
        make_entry(sheet, energy=energy)
    page = admin_client.get("/sheets/test/", {"f_energy_min": "3,7"}).content.decode()
    assert "3.9" in page and "3.5" not in page and 'type="number"' not in page
    refused = admin_client.get("/sheets/test/", {"f_energy_min": "1,234.5"}).content.decode()
    assert "Energy: &#x27;1,234.5&#x27; has both a comma and a point" in refused


# --- one clock: stored in UTC, read in the lab's zone (settings.TIME_ZONE, Europe/Berlin here) ---------
ALIGNED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


@pytest.fixture
def timed_entry(sheet, make_entry):
    Field.objects.create(sheet=sheet, key="aligned", label="Aligned", type=Field.Type.DATETIME, position=9)
    entry = make_entry(sheet, aligned=ALIGNED, shot_key="TST-20261124-000001")
    return {**entry, "created": store.get_entry(entry["_id"])["created"]}  # as stored (milliseconds)


def lab(when: datetime) -> datetime:
    return when.astimezone(ZoneInfo("Europe/Berlin"))


def test_the_table_shows_times_in_the_labs_zone_and_names_it(settings, admin_client, timed_entry):
    assert settings.TIME_ZONE == "Europe/Berlin"
    page = admin_client.get("/sheets/test/").content.decode()
    assert 'created</a> <span class="text-muted">[Europe/Berlin]</span>' in page
    assert f"{lab(timed_entry['created']):%Y-%m-%d %H:%M:%S}</a>" in page
    assert "<td>2026-11-24 10:00:00</td>" in page and "+00:00" not in page
    assert 'aria-label="created [Europe/Berlin] from"' in page  # the filter takes the lab's time too


def test_the_entry_form_shows_a_date_time_value_in_the_labs_zone(admin_client, timed_entry):
    page = admin_client.get(f"/sheets/test/entries/{timed_entry['_id']}/").content.decode()
    assert 'value="2026-11-24 10:00:00"' in page and "lab time, Europe/Berlin" in page
    assert "+00:00" not in page


def test_exports_carry_the_labs_zone_csv_and_json_with_their_offset_xlsx_in_the_header(admin_client, timed_entry):
    created = lab(timed_entry["created"])
    row = next(csv.DictReader(io.StringIO(admin_client.get("/sheets/test/export.csv").content.decode())))
    assert datetime.fromisoformat(row["created [Europe/Berlin]"]) == created
    assert row["created [Europe/Berlin]"].endswith("+01:00") and row["Aligned"] == "2026-11-24T10:00:00+01:00"

    exported = json.loads(admin_client.get("/sheets/test/export.json").content)[0]
    assert datetime.fromisoformat(exported["created [Europe/Berlin]"]) == created
    assert exported["created [Europe/Berlin]"].endswith("+01:00") and exported["Aligned"] == "2026-11-24T10:00:00+01:00"

    workbook = load_workbook(io.BytesIO(admin_client.get("/sheets/test/export.xlsx").content))
    header, values = list(workbook.active.values)
    cells = dict(zip(header, values, strict=True))
    assert cells["created [Europe/Berlin]"] == created.replace(tzinfo=None, microsecond=created.microsecond)
    assert cells["Aligned"] == datetime(2026, 11, 24, 10, 0)  # the lab's time, as Excel shows it


def test_a_long_pasted_text_is_refused_at_once_with_a_short_message():
    started = time.monotonic()
    with pytest.raises(NotANumber) as refused:
        parse_number("1" * 200_000 + "x")
    assert time.monotonic() - started < 1 and len(str(refused.value)) < 80
