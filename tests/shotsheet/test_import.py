"""The legacy importer (issue 10, items 9 and 10): every column matched or ignored, empty rows
skipped and counted, the header found below title rows, text decimals and dates read, errors named
by cell, column, value and problem."""

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from openpyxl import Workbook
from openpyxl.styles import PatternFill

from shotsheet import importer
from shotsheet.models import Field
from shotsheet.numbers import NumberError, parse_number
from shotsheet.schema import FieldDef

from .legacy_log import FIRST_ROW, legacy_choices, legacy_log, legacy_sheet
from .previewed import import_previewed


@pytest.fixture
def legacy(db, mongo_db):
    return legacy_sheet()


def run_import(path, *args) -> str:
    out = io.StringIO()
    call_command("import_entries", "legacy", str(path), *args, stdout=out, stderr=out)
    return out.getvalue()


def entries(mongo_db) -> dict[str, dict]:
    return {e["shot_key"]: e for e in mongo_db["entries"].find({"sheet": "legacy"})}


# --- item 9: nothing dropped without a word ------------------------------------------------------------
def test_a_misspelt_column_stops_the_import_until_it_is_mapped_or_ignored(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("shot_key,Energy [J],Gas presure [mbar],Remarks\nLWFA-20261124-000001,5,1.5,fine\n")
    with pytest.raises(CommandError) as refused:
        run_import(path)
    assert "“Gas presure [mbar]” matches no field (did you mean Gas pressure [mbar]?)" in str(refused.value)
    assert "“Remarks” matches no field" in str(refused.value)
    assert mongo_db["entries"].count_documents({}) == 0  # it was imported with empty pressures
    output = run_import(path, "--map", "Gas presure [mbar]=gas_pressure", "--ignore", "Remarks")
    assert "D Remarks: ignored" in output
    assert entries(mongo_db)["LWFA-20261124-000001"]["values"]["gas_pressure"] == 1.5


def test_blank_and_formatted_empty_rows_are_skipped_and_counted(legacy, mongo_db, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["shot_key", "Energy [J]", "target"])
    sheet.append(["LWFA-20261124-000001", 1.5, "Al"])
    sheet["A3"].fill = PatternFill("solid", fgColor="FFFF00")  # formatted, empty
    sheet["B4"] = "  "  # blanks
    sheet["A5"] = None
    sheet.append(["LWFA-20261124-000002", 2.5, "Cu"])
    path = tmp_path / "log.xlsx"
    workbook.save(path)
    legacy.fields.filter(key="energy").update(required=False)  # empty rows then passed the form: 5 entries
    output = run_import(path)
    assert "Imported 2 entries into 'legacy'; 3 empty rows skipped." in output
    assert sorted(entries(mongo_db)) == ["LWFA-20261124-000001", "LWFA-20261124-000002"]


# --- item 10: the importer finds the data itself ------------------------------------------------------
def test_a_realistic_excel_log_imports_with_one_mapping_and_one_ignore(legacy, mongo_db, tmp_path):
    log = legacy_log(bad=False)
    path = tmp_path / "campaign.xlsx"
    path.write_bytes(log.content)
    output = run_import(
        path, "--map", "Gas presure [mbar]=gas_pressure", "--ignore", "Remarks of the night", "--entry-time", "Time"
    )
    assert "header in row 5, 500 rows, 4 empty rows skipped" in output
    assert "A Shot: → Shot key" in output and "B Laser › Energy [J]: → Energy [J]" in output
    assert "C Laser › Pulse (fs): → Pulse [fs]" in output and "E Conditions › target: → Target" in output
    assert "H NOTE: → Note" in output
    stored = entries(mongo_db)
    assert len(stored) == 500
    assert stored["LWFA-20261124-000015"]["values"]["energy"] == 15.5  # "15,5" typed as text
    assert stored["LWFA-20261124-000016"]["values"]["energy"] == 17.25
    assert stored["LWFA-20261124-000016"]["shot_number"] == 16
    # "24.11.2026 14:13" typed as text and a real Excel time, both Berlin time (UTC+1 in November)
    assert stored["LWFA-20261124-000010"]["created"] == datetime(2026, 11, 24, 13, 13, tzinfo=UTC)
    assert stored["LWFA-20261124-000011"]["created"] == datetime(2026, 11, 24, 13, 14, tzinfo=UTC)


def test_bad_cells_are_reported_by_cell_column_value_and_problem_grouped_by_kind(legacy, mongo_db, tmp_path):
    log = legacy_log()
    path = tmp_path / "campaign.xlsx"
    path.write_bytes(log.content)
    mapping = ["--map", "Gas presure [mbar]=gas_pressure", "--ignore", "Remarks of the night", "--ignore", "Time"]
    out = io.StringIO()
    with pytest.raises(CommandError, match="3 of 500 rows have errors; nothing was imported"):
        call_command("import_entries", "legacy", str(path), *mapping, stdout=out, stderr=out)
    report = out.getvalue()
    over, ambiguous, choice = log.bad_cells
    assert f"1 row in Laser › Energy [J]: Above the maximum of 100.0 J — {over} '150'" in report
    assert "numbers typed as text in Laser › Energy [J]: decimal comma, as the file shows (B10 '5,5')" in report
    assert f"1 row in Laser › Energy [J]: not a number — {ambiguous} '12,5.3'" in report
    assert (
        f"1 row in Conditions › target: Select a valid choice. Fe is not one of the available choices — {choice} 'Fe'"
    ) in report
    with pytest.raises(CommandError):
        call_command("import_entries", "legacy", str(path), *mapping, "--decimal", "point", stdout=out, stderr=out)
    assert (
        "99 rows in Laser › Energy [J]: decimal comma, but this import reads decimal points — "
        f"B{FIRST_ROW + 4} '5,5'" in out.getvalue()
    )
    assert mongo_db["entries"].count_documents({}) == 0


def test_headers_match_with_units_in_brackets_or_parentheses_case_and_spacing(legacy):
    fields = [
        FieldDef(key=f.key, label=f.label, unit=f.unit, type=f.type, required=f.required) for f in legacy.fields.all()
    ]
    targets = importer.targets_of(fields)
    for header, target in [
        ("Energy [J]", "energy"),
        ("energy (J)", "energy"),
        ("  ENERGY   [ J ] ", "energy"),
        ("gas_pressure", "gas_pressure"),
        ("Gas  Pressure (mbar)", "gas_pressure"),
        ("Shot key", "shot_key"),
        ("pulse(fs)", "pulse"),
    ]:
        assert importer.match_header(header, "", targets).target == target, header
    wrong_unit = importer.match_header("Energy [mJ]", "", targets)
    assert wrong_unit.target == "" and wrong_unit.suggestion == "energy" and "mJ" in wrong_unit.note


def test_numbers_and_dates_typed_as_text():
    assert parse_number("3,7") == Decimal("3.7") and parse_number("-0,25") == Decimal("-0.25")
    assert parse_number("1.5e3") == 1500 and parse_number("1 234,5") == Decimal("1234.5")
    assert parse_number("1.234,5", "comma") == Decimal("1234.5") and parse_number("1,234.5", "point") == Decimal(
        "1234.5"
    )
    for ambiguous in ("1,234", "1.234", "1,234.5", "1.234,5"):
        with pytest.raises(NumberError) as refused:
            parse_number(ambiguous)
        assert refused.value.reason.startswith("ambiguous number"), ambiguous
    assert importer.local_time("24.11.2026 14:03") == datetime(2026, 11, 24, 13, 3, tzinfo=UTC)
    assert importer.local_time("01.07.2026") == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # summer: UTC+2
    assert importer.local_time("11/24/2026 14:03", "mdy") == datetime(2026, 11, 24, 13, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="no such date"):
        importer.local_time("11/24/2026", "dmy")
    assert importer.local_time("11/24/2026 14:03") == datetime(2026, 11, 24, 13, 3, tzinfo=UTC)  # only mdy fits
    with pytest.raises(ValueError, match="ambiguous date"):
        importer.local_time("01/02/2026")


def test_slashed_dates_that_could_be_either_are_read_as_the_rest_of_the_file_shows(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    for other, meant in (
        ("24/11/2026 14:03", datetime(2026, 2, 1, 9, 0, tzinfo=UTC)),
        ("11/24/2026 14:03", datetime(2026, 1, 2, 9, 0, tzinfo=UTC)),
    ):
        mongo_db["entries"].delete_many({})
        path.write_text(
            f"shot_key,Energy [J],when\nLWFA-20261124-000001,1,01/02/2026 10:00\nLWFA-20261124-000002,1,{other}\n"
        )
        output = run_import(path, "--entry-time", "when")
        assert "dates with slashes: " in output
        assert entries(mongo_db)["LWFA-20261124-000001"]["created"] == meant
    path.write_text("shot_key,Energy [J],when\nLWFA-20261124-000001,1,01/02/2026 10:00\n")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_entries", "legacy", str(path), "--entry-time", "when", stdout=out, stderr=out)
    assert "1 row in when: ambiguous date: day/month or month/day? (choose the date order)" in out.getvalue()


# --- item 10 in the web: preview, then import ---------------------------------------------------------------
def upload(client, name: str, content: bytes):
    return client.post("/sheets/legacy/import/", {"file": SimpleUploadedFile(name, content)})


def test_the_web_import_previews_every_column_before_it_imports(admin_client, legacy, mongo_db):
    log = legacy_log(bad=False)
    response = upload(admin_client, "campaign.xlsx", log.content)
    assert response.status_code == 302
    preview_url = response["Location"]
    page = admin_client.get(preview_url).content.decode()
    assert "Header in row <strong>5</strong>" in page and '<strong id="import-rows">500</strong>' in page
    assert "did you mean <strong>Gas pressure [mbar]</strong>?" in page
    assert "Dates and times without a zone are read as Europe/Berlin time (stored in UTC)." in page
    assert "LWFA-20261124-000001 · LWFA-20261124-000002" in page  # sample values
    refused = admin_client.post(
        preview_url,
        {"header_row": 5, "shown_header_row": 5, "decimal_mark": "auto", "date_order": "auto", "import": ""},
    ).content.decode()
    assert "Column D “Conditions › Gas presure [mbar]” matches no field" in refused
    assert mongo_db["entries"].count_documents({}) == 0
    chosen = legacy_choices()
    page = admin_client.post(preview_url, {**chosen, "check": ""}).content.decode()
    assert "Ignored columns (not imported): G “Remarks of the night”" in page
    response = import_previewed(admin_client, preview_url, chosen)
    assert response.status_code == 302 and response["Location"] == "/sheets/legacy/"
    assert mongo_db["entries"].count_documents({"sheet": "legacy"}) == 500
    assert admin_client.get(preview_url)["Location"] == "/sheets/legacy/import/"  # the file is gone


def test_a_kept_upload_is_only_its_uploaders_and_expires(admin_client, client, legacy, settings, django_user_model):
    response = upload(admin_client, "log.csv", b"shot_key,Energy [J]\nLWFA-20261124-000001,1\n")
    preview_url = response["Location"]
    token = preview_url.rstrip("/").rsplit("/", 1)[1]
    assert len(token) == 22 and importer.kept_upload(token).parent == settings.SHOTSHEET_IMPORT_DIR
    other = django_user_model.objects.create_superuser("eve", "e@example.org", "pass-eve-123")
    client.force_login(other)
    assert client.get(preview_url)["Location"] == "/sheets/legacy/import/"
    assert admin_client.get(preview_url).status_code == 200
    settings.SHOTSHEET_IMPORT_KEEP_SECONDS = 0
    assert admin_client.get(preview_url)["Location"] == "/sheets/legacy/import/"
    assert admin_client.get("/sheets/legacy/import/../../../etc/passwd/").status_code == 404


def test_a_yes_no_cell_that_is_neither_is_refused_not_read_as_no(legacy, mongo_db, tmp_path):
    Field.objects.create(sheet=legacy, key="aligned", label="Aligned", type=Field.Type.BOOLEAN, position=9)
    workbook = Workbook()
    workbook.active.append(["shot_key", "Energy [J]", "Aligned"])
    for shot, aligned in enumerate([1, 0, True, "ja", "nein", 0.5, "maybe"], start=1):
        workbook.active.append([f"LWFA-20261124-{shot:06d}", 1.0, aligned])
    path = tmp_path / "log.xlsx"
    workbook.save(path)
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 of 7 rows have errors"):
        call_command("import_entries", "legacy", str(path), stdout=out, stderr=out)
    assert "2 rows in Aligned: not yes or no — C7 '0.5', C8 'maybe'" in out.getvalue()


def test_a_choice_for_a_column_that_is_not_there_is_refused(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("shot_key,Energy [J]\nLWFA-20261124-000001,5\n")
    with pytest.raises(CommandError, match="No column is called “Remarks”"):
        run_import(path, "--ignore", "Remarks")
    assert mongo_db["entries"].count_documents({}) == 0


def test_a_german_excel_csv_with_a_title_row_semicolons_and_decimal_commas(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "Schusslog Kampagne November\n\nShot;Energy [J];Pulse (fs)\n"
        "LWFA-20261124-000001;3,7;25,5\nLWFA-20261124-000002;12;30\n",
        encoding="utf-8",
    )
    assert "Imported 2 entries" in run_import(path)
    stored = entries(mongo_db)
    assert stored["LWFA-20261124-000001"]["values"]["energy"] == 3.7
    assert stored["LWFA-20261124-000001"]["values"]["pulse"] == 25.5


def test_the_web_import_imports_only_what_was_previewed(admin_client, legacy, mongo_db):
    response = upload(admin_client, "log.csv", b"Shot log\nshot_key,Energy [J]\nLWFA-20261124-000001,5\n")
    preview_url = response["Location"]
    chosen = {"shown_header_row": 2, "decimal_mark": "auto", "date_order": "auto", "import": ""}
    # the header moved in the same submit: the columns are others now, so they are shown first
    page = admin_client.post(preview_url, {**chosen, "header_row": 1}).content.decode()
    assert "The header is now row 1: check where each column goes, then import." in page
    page = admin_client.post(preview_url, {**chosen, "header_row": 99}).content.decode()
    assert "log.csv has no row 99" in page  # the upload is still there
    page = admin_client.post(preview_url, {**chosen, "header_row": "two"}).content.decode()
    assert "Header row: Enter a whole number." in page
    page = admin_client.post(preview_url, {**chosen, "header_row": 2, "col_B": "no_such_field"}).content.decode()
    assert "no field &#x27;no_such_field&#x27; in the sheet (for column B)" in page
    assert mongo_db["entries"].count_documents({}) == 0
    assert import_previewed(admin_client, preview_url, {**chosen, "header_row": 2}).status_code == 302
    assert mongo_db["entries"].count_documents({}) == 1


def test_numbers_that_could_be_either_are_read_as_the_rest_of_the_file_shows(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    for others, meant in (("12.25", 1.234), ("3,7", 1234.0)):
        mongo_db["entries"].delete_many({})
        path.write_text(
            f"shot_key;Energy [J];Pulse (fs)\nLWFA-20261124-000001;1;1.234\nLWFA-20261124-000002;1;{others}\n"
        )
        run_import(path)
        assert entries(mongo_db)["LWFA-20261124-000001"]["values"]["pulse"] == meant
    path.write_text(
        "shot_key;Energy [J];Pulse (fs)\nLWFA-20261124-000001;1;1.234\nLWFA-20261124-000002;1;1.5\n"
        "LWFA-20261124-000003;1;2,5\n"
    )
    out = io.StringIO()
    with pytest.raises(CommandError):  # both marks in one file: what could be either is refused
        call_command("import_entries", "legacy", str(path), stdout=out, stderr=out)
    assert "1 row in Pulse (fs): ambiguous number: thousands separator or decimal mark?" in out.getvalue()
