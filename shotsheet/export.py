"""Export of a sheet's entries as CSV, XLSX and JSON: every column any version had, times in the
lab's zone, no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import orjson

from . import table
from .display import created_header, display, iso_time, lab_time, voided_note
from .schema import SheetSchema


def export_rows(schema: SheetSchema, query: dict, sort: list, limit: int = 100_000) -> tuple[list[str], list[list]]:
    sheet, columns = schema.sheet, schema.columns
    header = ["entry", "shot_key", created_header(), "author", "schema_version", "comment"] + [
        c.heading for c in columns
    ]
    rows = [
        [e["_id"], e.get("shot_key"), e["created"], e.get("author"), e.get("schema_version"), e.get("comment", "")]
        + [e["values"].get(c.key) for c in columns]
        for e in table.table(sheet.slug).find(query, sort)[:limit]
    ]
    if query.get("voided", "shown") is not None:  # voided entries asked for: say which they are, and why
        header.append("voided")
        found = table.table(sheet.slug).entries
        rows = [row + [voided_note(found.get(row[0], {}).get("voided"))] for row in rows]
    return header, rows


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)


def csv_cell(value) -> str:
    """A value as CSV text; text a spreadsheet would run as a formula gets a leading `'` (OWASP's
    advice), numbers stay as they are (a negative number is still a number)."""
    if isinstance(value, int | float):
        return display(value)
    text = value if isinstance(value, str) else iso_time(value) if isinstance(value, datetime) else display(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: list[str], rows: list[list]) -> str:
    return csv_text(header, rows, csv_cell)


PLAIN = frozenset({int, float, type(None)})  # the csv module writes these as csv_cell would


def csv_text(header: list[str], rows: Sequence[Sequence], cell: Callable[[object], object]) -> str:
    """CSV of a header and rows of equal length, each cell as `cell` makes it — the web export's
    and the read API's. Column by column: a column of only numbers and None, or only text none of
    which could be a formula, goes to the csv module as it is (checked at C speed); the others go
    through `cell`, cell by cell (the web export's 10,000 rows: 77 → 53 ms, all cells through
    csv_cell before)."""
    return csv_text_of_columns(header, zip(*rows, strict=True), cell)  # a short row: an error, not a lost cell


def csv_text_of_columns(header: list[str], columns: Iterable[Sequence], cell: Callable[[object], object]) -> str:
    """csv_text of a table given column by column (no rows built only to be turned into columns)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in header])
    writer.writerows(zip(*[csv_column(column, cell) for column in columns], strict=True))
    return out.getvalue()


def csv_column(column: Sequence, cell: Callable[[object], object]) -> Sequence:
    kinds = set(map(type, column))
    if kinds <= PLAIN or (kinds == {str} and not could_start_a_formula(column)):
        return column
    return list(map(cell, column))


def could_start_a_formula(texts: Sequence[str]) -> bool:
    """Whether any text may start as a formula does, checked at C speed on the texts joined by new
    lines (a text holding a new line followed by, say, `-` is a false alarm: its column is then
    converted cell by cell, which is only slower)."""
    joined = "\n" + "\n".join(texts)
    return any(start in joined for start in FORMULA_LINE_STARTS)


FORMULA_LINE_STARTS = tuple("\n" + start for start in FORMULA_STARTS)


def xlsx_cell(sheet, value):
    """Text is stored as a string cell, never a formula (openpyxl makes one of any text starting
    with `=`; other text is a string cell already, and a cell object per value cost 2x the time)."""
    if isinstance(value, datetime):  # Excel has no zones: the lab's time, named in the header
        return lab_time(value).replace(tzinfo=None)
    if isinstance(value, list | dict):
        value = display(value)
    if not isinstance(value, str) or not value.startswith("="):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


def to_xlsx(header: list[str], rows: list[list]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("entries")
    sheet.append([xlsx_cell(sheet, h) for h in header])
    for row in rows:
        sheet.append([xlsx_cell(sheet, v) for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def to_json(header: list[str], rows: list[list]) -> bytes:
    rows = [[lab_time(v) if isinstance(v, datetime) else v for v in row] for row in rows]
    return orjson.dumps([dict(zip(header, row, strict=True)) for row in rows], option=orjson.OPT_INDENT_2, default=str)
