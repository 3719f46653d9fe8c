"""The importer never changes a value silently (review of issue 10's import): large integers,
local times in the DST change hours, columns named like letters, yes/no fields without a column,
the decimal mark of each column."""

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from openpyxl import Workbook

from shotsheet import importer
from shotsheet.models import Field

from .legacy_log import legacy_choices, legacy_log, legacy_sheet
from .previewed import import_previewed, preview, previewed


@pytest.fixture
def legacy(db, mongo_db):
    return legacy_sheet()


def run_import(path, *args) -> str:
    out = io.StringIO()
    try:
        call_command("import_entries", "legacy", str(path), *args, stdout=out, stderr=out)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{out.getvalue()}") from None
    return out.getvalue()


def entries(mongo_db) -> dict[str, dict]:
    return {e["shot_key"]: e for e in mongo_db["entries"].find({"sheet": "legacy"})}


def test_a_large_integer_typed_as_text_is_stored_exactly(legacy, mongo_db, tmp_path):
    Field.objects.create(sheet=legacy, key="stamp", label="Stamp", type=Field.Type.INTEGER, position=9)
    path = tmp_path / "log.csv"
    path.write_text("shot_key,Energy [J],Stamp\nLWFA-20261124-000001,1,1732456980123456789\n")
    run_import(path)
    assert entries(mongo_db)["LWFA-20261124-000001"]["values"]["stamp"] == 1732456980123456789  # was ...768


def test_a_fraction_in_an_integer_field_is_refused_as_text_or_xlsx_number(legacy, mongo_db, tmp_path):
    Field.objects.create(sheet=legacy, key="count", label="Count", type=Field.Type.INTEGER, position=9)
    workbook = Workbook()
    workbook.active.append(["shot_key", "Energy [J]", "Count"])
    for shot, count in enumerate([3.0, 7, "12", 2.5, "4,5"], start=1):
        workbook.active.append([f"LWFA-20261124-{shot:06d}", 1.0, count])
    path = tmp_path / "log.xlsx"
    workbook.save(path)
    with pytest.raises(CommandError) as refused:
        run_import(path)
    assert "2 rows in Count: not a whole number — C5 '2.5', C6 '4,5'" in str(refused.value)
    workbook.active.delete_rows(5, 2)
    workbook.save(path)
    run_import(path)
    counts = {key: e["values"]["count"] for key, e in entries(mongo_db).items()}
    assert counts == {"LWFA-20261124-000001": 3, "LWFA-20261124-000002": 7, "LWFA-20261124-000003": 12}
    assert all(type(count) is int for count in counts.values())


def test_a_local_time_in_the_hours_the_clocks_change_is_refused_not_moved(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "shot_key;Energy [J];Time\nLWFA-20261124-000001;1;29.03.2026 02:30\n"
        "LWFA-20261124-000002;1;25.10.2026 02:30\nLWFA-20261124-000003;1;25.10.2026 03:30\n"
    )
    with pytest.raises(CommandError) as refused:
        run_import(path, "--entry-time", "Time")
    report = str(refused.value)
    assert "2 of 3 rows have errors" in report
    assert (
        "no such time in Europe/Berlin (the clocks go forward): write it with its offset, "
        "e.g. 2026-03-29T02:30+01:00 — C2 '29.03.2026 02:30'"
    ) in report
    assert (
        "happens twice in Europe/Berlin (the clocks go back): write it with its offset, "
        "2026-10-25T02:30+02:00 or 2026-10-25T02:30+01:00 — C3 '25.10.2026 02:30'"
    ) in report
    path.write_text("shot_key;Energy [J];Time\nLWFA-20261124-000002;1;2026-10-25T02:30+01:00\n")
    run_import(path, "--entry-time", "Time")
    assert str(entries(mongo_db)["LWFA-20261124-000002"]["created"]) == "2026-10-25 01:30:00+00:00"


HEADED_LIKE_A_LETTER = b"shot_key,Energy [J],E,Pulse (fs),Remarks\nLWFA-20261124-000001,1,fine,25,junk\n"


def test_the_web_preview_sends_each_columns_choice_by_its_letter_only(admin_client, legacy, mongo_db):
    response = admin_client.post(
        "/sheets/legacy/import/", {"file": SimpleUploadedFile("log.csv", HEADED_LIKE_A_LETTER)}
    )
    chosen = {
        "header_row": 1,
        "shown_header_row": 1,
        "decimal_mark": "auto",
        "date_order": "auto",
        "col_A": "shot_key",
        "col_B": "energy",
        "col_C": "note",
        "col_D": "pulse",
        "col_E": importer.IGNORE,
    }
    page = admin_client.post(response["Location"], {**chosen, "check": ""}).content.decode()
    assert "Ignored columns (not imported): E “Remarks”." in page  # column C headed `E` took E's choice
    assert import_previewed(admin_client, response["Location"], chosen).status_code == 302
    assert entries(mongo_db)["LWFA-20261124-000001"]["values"]["note"] == "fine"


def test_a_command_choice_that_is_a_header_and_another_columns_letter_is_refused(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(HEADED_LIKE_A_LETTER)
    with pytest.raises(
        CommandError,
        match="'E' is the header of column C and the letter of column E: write the "
        "header's column as col:C, column E as col:E",
    ):
        run_import(path, "--map", "E=note", "--ignore", "Remarks")
    assert mongo_db["entries"].count_documents({}) == 0
    run_import(path, "--map", "col:C=note", "--ignore", "col:E")
    assert entries(mongo_db)["LWFA-20261124-000001"]["values"]["note"] == "fine"


def test_a_field_the_file_has_no_column_for_is_left_empty_not_no(admin_client, legacy, mongo_db, tmp_path):
    Field.objects.create(sheet=legacy, key="aligned", label="Aligned", type=Field.Type.BOOLEAN, position=9)
    path = tmp_path / "log.csv"
    path.write_text("shot_key,Energy [J]\nLWFA-20261124-000001,1\n")
    run_import(path)
    values = entries(mongo_db)["LWFA-20261124-000001"]["values"]
    assert values == {"energy": 1.0}  # was aligned: False ("no") and empty pulse, gas pressure, target, note
    exported = admin_client.get("/sheets/legacy/export.csv").content.decode().splitlines()
    assert exported[0].endswith("Aligned") and exported[1].endswith(",1.0,,,,,")


@pytest.mark.django_db(transaction=True)
def test_pressing_import_twice_imports_once(admin_user, legacy, mongo_db):
    log = legacy_log(bad=False)
    first, second = Client(), Client()
    first.force_login(admin_user)
    second.cookies = first.cookies  # the same session, as two presses of one browser
    preview_url = first.post("/sheets/legacy/import/", {"file": SimpleUploadedFile("log.xlsx", log.content)})[
        "Location"
    ]
    chosen = legacy_choices()
    chosen |= {"previewed": previewed(preview(first, preview_url, chosen)), "import": ""}
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda client: client.post(preview_url, chosen), (first, second)))
    assert [r.status_code for r in responses] == [302, 302]
    assert mongo_db["entries"].count_documents({"sheet": "legacy"}) == 500  # was 1000
    assert mongo_db["imports"].count_documents({}) == 1


def staged(client, name: str, content: bytes) -> tuple[str, str]:
    """A file uploaded for import: its preview's URL and the token it is kept under."""
    url = client.post("/sheets/legacy/import/", {"file": SimpleUploadedFile(name, content)})["Location"]
    return url, url.rstrip("/").rsplit("/", 1)[-1]


def test_an_upload_claimed_between_finding_and_reading_it_is_being_imported_not_a_server_error(
    admin_client, legacy, mongo_db, monkeypatch
):
    """The second press of Import found the kept file, then the first press claimed it (renamed it)
    before the second read it: FileNotFoundError, a 500 (clean-clone CI, 2026-12-03)."""
    url, token = staged(admin_client, "log.csv", b"shot_key;Energy [J]\nLWFA-20261124-000001;1.5\n")
    chosen = {
        "header_row": 1,
        "shown_header_row": 1,
        "decimal_mark": "point",
        "date_order": "auto",
        "col_A": "shot_key",
        "col_B": "energy",
    }
    chosen |= {"previewed": previewed(preview(admin_client, url, chosen)), "import": ""}
    read_grid = importer.read_grid

    def claimed_first(file, *args, **kwargs):
        importer.claim_upload(token)  # the other press, between this one's finding and reading the file
        return read_grid(file, *args, **kwargs)

    monkeypatch.setattr(importer, "read_grid", claimed_first)
    response = admin_client.post(url, chosen, follow=True)
    assert response.redirect_chain[-1][0] == "/sheets/legacy/"
    assert "log.csv is being imported already (Import was pressed twice)" in response.content.decode()
    assert mongo_db["entries"].count_documents({"sheet": "legacy"}) == 0  # the other press imports it


def test_an_xlsx_upload_claimed_while_it_is_read_is_being_imported_not_unreadable(
    admin_user, legacy, mongo_db, monkeypatch
):
    """An XLSX file was opened twice (its size check, then its cells): the other press of Import
    renaming it in between made it "not a readable XLSX file" and dropped it from the session."""
    import openpyxl

    client = Client()
    client.force_login(admin_user)
    url, token = staged(client, "log.xlsx", legacy_log(bad=False).content)
    chosen = legacy_choices()
    chosen |= {"previewed": previewed(preview(client, url, chosen)), "import": ""}
    load_workbook = openpyxl.load_workbook

    def claimed_meanwhile(file, *args, **kwargs):
        importer.claim_upload(token)  # the other press, after the size check, before the cells
        return load_workbook(file, *args, **kwargs)

    monkeypatch.setattr(openpyxl, "load_workbook", claimed_meanwhile)
    response = client.post(url, chosen, follow=True)
    page = response.content.decode()
    assert "not a readable XLSX file" not in page
    assert response.redirect_chain[-1][0] == "/sheets/legacy/"
    assert "log.xlsx is being imported already (Import was pressed twice)" in page


def test_an_upload_removed_between_listing_and_its_age_is_not_kept(settings, tmp_path, monkeypatch):
    settings.SHOTSHEET_IMPORT_DIR = str(tmp_path)
    token = importer.keep_upload([b"shot_key\n"], "log.csv")
    listed = list(tmp_path.glob(f"{token}.*"))
    assert importer.claim_upload(token) is not None  # claimed after the directory was listed
    monkeypatch.setattr(importer, "upload_dir", lambda: ListedBefore(listed))
    assert importer.kept_upload(token) is None  # was FileNotFoundError from its stat


class ListedBefore:
    """A directory whose listing was taken before its files were renamed."""

    def __init__(self, paths):
        self.paths = paths

    def glob(self, pattern):
        return iter(self.paths)


def test_each_column_shows_its_own_decimal_mark(legacy, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("shot_key;Energy [J];Gas pressure [mbar]\nLWFA-20261124-000001;1,5;1.250\n")
    with pytest.raises(CommandError, match="1 of 1 rows have errors"):
        run_import(path)  # was imported, 1.250 mbar as 1250
    path.write_text(
        "shot_key;Energy [J];Pulse (fs);Gas pressure [mbar]\nLWFA-20261124-000001;1,5;25;1.250\n"
        "LWFA-20261124-000002;2;12.5;3\n"
    )
    with pytest.raises(CommandError) as refused:  # Energy's comma made the file "comma": Gas pressure 1250
        run_import(path)
    report = str(refused.value)
    assert "numbers typed as text in Energy [J]: decimal comma, as the file shows (B2 '1,5')" in report
    assert "numbers typed as text in Pulse (fs): decimal point, as the file shows (C3 '12.5')" in report
    assert (
        "1 row in Gas pressure [mbar]: ambiguous number: thousands separator or decimal mark? "
        "(choose the decimal mark) — D2 '1.250'" in report
    )
    run_import(path, "--decimal", "comma", "--ignore", "Pulse (fs)")  # the mark chosen: for every column
    stored = entries(mongo_db)["LWFA-20261124-000001"]["values"]
    assert stored == {"energy": 1.5, "gas_pressure": 1250.0}


def test_the_web_import_imports_only_the_choices_and_fields_it_previewed(admin_client, legacy, mongo_db):
    response = admin_client.post(
        "/sheets/legacy/import/",
        {"file": SimpleUploadedFile("log.csv", b"shot_key;Energy [J];Remarks\nLWFA-20261124-000001;1.250;fine\n")},
    )
    url = response["Location"]
    shown = {
        "header_row": 1,
        "shown_header_row": 1,
        "decimal_mark": "point",
        "date_order": "auto",
        "col_A": "shot_key",
        "col_B": "energy",
        "col_C": importer.IGNORE,
    }
    digest = previewed(preview(admin_client, url, shown))
    changed_in_the_same_submit = [{"decimal_mark": "comma"}, {"date_order": "dmy"}, {"col_C": "note"}]
    for change in changed_in_the_same_submit:
        page = admin_client.post(url, {**shown, **change, "previewed": digest, "import": ""}).content.decode()
        assert "The choices (or the sheet&#x27;s fields) changed since this preview" in page, change
    assert mongo_db["entries"].count_documents({}) == 0  # the comma's 1250 J was imported unseen
    Field.objects.filter(sheet=legacy, key="energy").update(max_value=1)  # the admin changes a field meanwhile
    page = admin_client.post(url, {**shown, "previewed": digest, "import": ""}).content.decode()
    assert "changed since this preview" in page and "Above the maximum of 1.0" in page
    assert mongo_db["entries"].count_documents({}) == 0
    Field.objects.filter(sheet=legacy, key="energy").update(max_value=100)
    assert import_previewed(admin_client, url, shown).status_code == 302
    assert entries(mongo_db)["LWFA-20261124-000001"]["values"] == {"energy": 1.25}
