"""Uploads the importer refuses with a clear message instead of a 500 or minutes of CPU (issue 10, item 12)."""

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from openpyxl import Workbook


def small_workbook() -> bytes:
    workbook = Workbook()
    workbook.active.append(["shot_key", "Energy [J]", "target"])
    workbook.active.append(["TST-20261101-000001", 12.5, "Cu"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def with_sheet_xml(xlsx: bytes, sheet_xml: bytes) -> bytes:
    """The workbook with its worksheet's XML replaced (as a broken or hostile file would have it)."""
    source, out = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            data = sheet_xml if info.filename == "xl/worksheets/sheet1.xml" else source.read(info.filename)
            target.writestr(info.filename, data)
    return out.getvalue()


def bomb_workbook(rows: int = 400_000) -> bytes:
    """A small XLSX that unpacks to 13.6 MB of worksheet XML: `rows` rows of one number."""
    body = b'<row><c t="n"><v>123</v></c></row>' * rows
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheetData>' + body + b"</sheetData></worksheet>"
    )
    return with_sheet_xml(small_workbook(), xml)


def post(client, name: str, content: bytes):
    return client.post("/sheets/test/import/", {"file": SimpleUploadedFile(name, content)})


def test_an_xlsx_with_malformed_xml_is_refused_with_a_message(admin_client, sheet, mongo_db):
    broken = with_sheet_xml(small_workbook(), b'<?xml version="1.0"?><worksheet><sheetData><row r="1"><c')
    response = post(admin_client, "log.xlsx", broken)
    assert response.status_code == 200
    assert "log.xlsx is not a readable XLSX file" in response.content.decode()
    assert mongo_db["entries"].count_documents({}) == 0


def test_a_csv_with_a_200_kb_value_is_refused_with_a_message(admin_client, sheet, mongo_db):
    content = b"shot_key,Energy [J],note\nTST-20261101-000001,1," + b"a" * 200_000 + b"\n"
    response = post(admin_client, "log.csv", content)
    assert response.status_code == 200
    page = response.content.decode()
    assert "log.csv, row 2: a value of more than 10,000 characters" in page
    assert mongo_db["entries"].count_documents({}) == 0


def test_an_xlsx_that_unpacks_to_14_mb_is_refused_before_it_is_parsed(admin_client, sheet, mongo_db):
    bomb = bomb_workbook()
    assert len(bomb) < 100_000  # what is uploaded is small...
    started = time.process_time()
    response = post(admin_client, "bomb.xlsx", bomb)
    assert time.process_time() - started < 2  # ...and never unpacked (reading it took a minute of CPU)
    page = response.content.decode()
    assert response.status_code == 200 and "bomb.xlsx unpacks to 13.6 MB; the import takes up to 10.0 MB" in page
    assert mongo_db["entries"].count_documents({}) == 0


def test_more_rows_or_columns_than_the_limits_are_refused(admin_client, sheet, mongo_db, settings):
    settings.SHOTSHEET_IMPORT_MAX_ROWS = 100
    rows = "".join(f"TST-20261101-{n:06d},1\n" for n in range(1, 102)).encode()
    page = post(admin_client, "log.csv", b"shot_key,Energy [J]\n" + rows).content.decode()
    assert "log.csv has more than 100 rows" in page
    settings.SHOTSHEET_IMPORT_MAX_COLUMNS = 5
    workbook = Workbook()
    workbook.active.append([f"c{n}" for n in range(6)])
    out = io.BytesIO()
    workbook.save(out)
    page = post(admin_client, "wide.xlsx", out.getvalue()).content.decode()
    assert "wide.xlsx has 6 columns; the import takes up to 5" in page
    assert mongo_db["entries"].count_documents({}) == 0


def test_the_command_refuses_the_same_files(sheet, mongo_db, tmp_path):
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(bomb_workbook())
    with pytest.raises(CommandError, match="unpacks to 13.6 MB"):
        call_command("import_entries", "test", str(path))
    path = tmp_path / "long.csv"
    path.write_bytes(b"shot_key,note\nTST-20261101-000001," + b"a" * 200_000 + b"\n")
    with pytest.raises(CommandError, match="row 2: a value of more than 10,000 characters"):
        call_command("import_entries", "test", str(path))
