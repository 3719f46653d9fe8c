"""Values exactly as entered, one clock, and exports a spreadsheet cannot turn into commands (issue 10)."""

import csv
import io

from openpyxl import load_workbook

from shotsheet.models import Field

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
