"""A shot log the way a lab keeps it in Excel, made with openpyxl for the import tests."""

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from openpyxl import Workbook
from openpyxl.styles import PatternFill

from shotsheet import importer
from shotsheet.models import Field, Sheet

HEADER_ROW = 5
FIRST_ROW = HEADER_ROW + 1
EMPTY_EVERY = 100  # a blank or formatted-empty row after every 100 shots


def legacy_choices() -> dict:
    """The preview's choices that import the log: its header row, and where its misspelt, time and
    remarks columns go."""
    return {
        "header_row": HEADER_ROW,
        "shown_header_row": HEADER_ROW,
        "decimal_mark": "auto",
        "date_order": "auto",
        "col_D": "gas_pressure",
        "col_F": importer.ENTRY_TIME,
        "col_G": importer.IGNORE,
    }


@dataclass
class LegacyLog:
    """The workbook and what the tests need to know of it: where each shot and each bad cell is."""

    content: bytes
    rows_of: dict[int, int] = field(default_factory=dict)  # shot number → Excel row
    empty_rows: int = 0
    bad_cells: dict[str, str] = field(default_factory=dict)  # cell → its value


def legacy_sheet() -> Sheet:
    sheet = Sheet.objects.create(name="Legacy sheet", slug="legacy", experiment="LWFA")
    for position, (key, label, type_, extra) in enumerate(
        [
            ("energy", "Energy", Field.Type.FLOAT, {"unit": "J", "required": True, "max_value": 100}),
            ("pulse", "Pulse", Field.Type.FLOAT, {"unit": "fs"}),
            ("gas_pressure", "Gas pressure", Field.Type.FLOAT, {"unit": "mbar"}),
            ("target", "Target", Field.Type.CHOICE, {"choices": "Al\nCu"}),
            ("note", "Note", Field.Type.TEXT, {}),
        ]
    ):
        Field.objects.create(sheet=sheet, key=key, label=label, type=type_, position=position, **extra)
    return sheet


def legacy_log(shots: int = 500, bad: bool = True) -> LegacyLog:
    """Title rows, merged group headers, `Energy [J]` and `Pulse (fs)`, a misspelt and an unmatched
    column, blank and formatted-empty rows, 100 decimal commas as text, 50 times typed as text."""
    workbook = Workbook()
    sheet = workbook.active
    sheet["A1"] = "LWFA shot log, campaign November 2026"
    sheet.merge_cells("A1:H1")
    sheet["A2"] = "Operator: night shift; energies on the calorimeter"
    sheet["A4"] = "Shot"
    sheet.merge_cells("A4:A5")
    sheet["B4"] = "Laser"
    sheet.merge_cells("B4:C4")
    sheet["D4"] = "Conditions"
    sheet.merge_cells("D4:E4")
    for column, header in zip(
        "BCDEFGH",
        ["Energy [J]", "Pulse (fs)", "Gas presure [mbar]", "target", "Time", "Remarks of the night", "NOTE"],
        strict=True,
    ):
        sheet[f"{column}{HEADER_ROW}"] = header
    log = LegacyLog(b"")
    grey = PatternFill("solid", fgColor="DDDDDD")
    row = FIRST_ROW
    start = datetime(2026, 11, 24, 14, 3)
    for shot in range(1, shots + 1):
        time = start + timedelta(minutes=shot)
        energy = f"{shot % 50},{shot % 10}" if shot % 5 == 0 else round(1 + shot % 50 + 0.25, 2)  # 100 as text
        typed_time = time.strftime("%d.%m.%Y %H:%M") if shot % 10 == 0 else time  # 50 typed as text
        sheet.append(
            [
                f"LWFA-20261124-{shot:06d}",
                energy,
                30 + shot % 7,
                1.5,
                "Al" if shot % 2 else "Cu",
                typed_time,
                "ok" if shot % 3 else "",
                f"shot {shot}",
            ]
        )
        log.rows_of[shot] = row
        row += 1
        if shot % EMPTY_EVERY == 0 and shot < shots:
            if shot % 200 == 0:  # formatted but empty: fills and a cell of blanks
                for column in "ABCDEFGH":
                    sheet[f"{column}{row}"].fill = grey
                sheet[f"H{row}"] = "   "
            else:  # blank
                sheet[f"A{row}"] = None
            log.empty_rows += 1
            row += 1
    if bad:
        for shot, column, value in ((12, "B", 150), (250, "B", "12,5.3"), (480, "E", "Fe")):
            cell = f"{column}{log.rows_of[shot]}"
            sheet[cell] = value
            log.bad_cells[cell] = str(value)
    out = io.BytesIO()
    workbook.save(out)
    log.content = out.getvalue()
    return log
