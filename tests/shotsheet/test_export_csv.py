"""The CSV writer the web export and the read API share: its fast path for plain columns writes
exactly what the cell-by-cell conversion writes."""

import csv
import io
from datetime import UTC, datetime

import pytest

from shotsheet.export import csv_cell, csv_text, to_csv

HEADER = ["entry", "=name", "number", "mixed", "when", "flags", "list", "blank"]
ROWS = [
    ["a:1", "plain", 1, 1.5, datetime(2026, 11, 24, 9, 30, tzinfo=UTC), True, ["He", "N2"], None],
    ["a:2", "=HYPERLINK(1)", -2, "text", datetime(2026, 11, 24, 9, 30, 1, 250000, tzinfo=UTC), False, [-1], None],
    ["a:3", "+cmd", 3, None, None, None, [], None],
    ["a:4", "", 4.25, -7, datetime(2026, 6, 1, tzinfo=UTC), True, ["=x"], None],
]


def cell_by_cell(header, rows, cell) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in header])
    writer.writerows([[cell(v) for v in row] for row in rows])
    return out.getvalue()


def test_the_shared_csv_writer_writes_what_a_conversion_per_cell_writes():
    assert to_csv(HEADER, ROWS) == cell_by_cell(HEADER, ROWS, csv_cell)
    assert to_csv(HEADER, [ROWS[0]]) == cell_by_cell(HEADER, [ROWS[0]], csv_cell)  # plain text only: the fast path
    text = to_csv(HEADER, ROWS)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0][1] == "'=name" and parsed[2][1] == "'=HYPERLINK(1)" and parsed[3][1] == "'+cmd"
    assert parsed[2][2] == "-2" and parsed[4][3] == "-7"  # numbers stay numbers, negative ones too
    assert parsed[1][5] == "yes" and parsed[2][6] == "'-1"  # text made of a list is checked too


def test_the_shared_csv_writer_takes_the_cell_conversion_of_its_caller():
    utc = {datetime: lambda v: v.isoformat(), bool: lambda v: "true" if v else "false"}

    def cell(value):
        convert = utc.get(type(value))
        return convert(value) if convert else csv_cell(value)

    assert csv_text(HEADER, ROWS, cell) == cell_by_cell(HEADER, ROWS, cell)
    assert csv_text(HEADER, [], cell) == cell_by_cell(HEADER, [], cell)


def test_text_with_a_formula_start_after_a_new_line_is_written_as_it_is():
    rows = [["line one\n-line two", "\ttabbed"], ["plain", "plain"]]
    text = to_csv(["note", "other"], rows)
    assert text == cell_by_cell(["note", "other"], rows, csv_cell)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[1] == ["line one\n-line two", "'\ttabbed"]


TRICKY = [
    ["=1+1", 0.1 + 0.2, 2**70, None, "x", "a\r=b", "😀 Ü ‮rtl", -0.0],
    ["\r=cmd", 1e300, -(2**63), "", "-", "line\n=two", "＝SUM(1)", float("inf")],
    ["@x", -1.5e-300, 0, "", "y", " =spaced", "naïve", float("nan")],
    ["plain", 123456789.123456789, -7, None, "z", "tab\tinside", "", -2],
]


def test_tricky_values_are_written_as_the_cell_by_cell_path_wrote_them_and_read_back_exactly():
    from api.renderers import csv_value

    header = ["text", "float", "int", "blank", "short", "inner", "unicode", "number"]
    assert to_csv(header, TRICKY) == cell_by_cell(header, TRICKY, csv_cell)  # the web export before the shared writer
    assert csv_text(header, TRICKY, csv_value) == cell_by_cell(header, TRICKY, csv_value)  # the API's renderer before
    parsed = list(csv.reader(io.StringIO(to_csv(header, TRICKY))))[1:]
    assert [row[0] for row in parsed] == ["'=1+1", "'\r=cmd", "'@x", "plain"]
    assert [float(row[1]) for row in parsed] == [row[1] for row in TRICKY]  # floats round-trip
    assert [int(row[2]) for row in parsed] == [row[2] for row in TRICKY]  # big ints exact
    assert [row[3] for row in parsed] == ["", "", "", ""]
    assert [row[4] for row in parsed] == ["x", "'-", "y", "z"]
    assert [row[6] for row in parsed] == ["😀 Ü ‮rtl", "＝SUM(1)", "naïve", ""]
    assert [row[7] for row in parsed] == ["-0.0", "inf", "nan", "-2"]  # negative numbers stay numbers


def test_a_short_row_is_an_error_not_a_dropped_cell():
    with pytest.raises(ValueError):
        csv_text(["a", "b"], [[1, 2], [3]], csv_cell)
