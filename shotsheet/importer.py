"""Legacy shot logs (CSV, XLSX) into a sheet: reading the file within limits.

An upload is untrusted: a 42 kB XLSX can unpack to 14 MB of XML (400,000 rows, a minute of CPU
to read and check), a CSV can hold a 200 kB field, a zip can hold broken XML. Everything read
here is bounded by settings (SHOTSHEET_IMPORT_*), the unpacked size is taken from the zip
directory before anything is parsed, and every way a file can be unreadable ends in
`ImportRefused` with a sentence for the person who uploaded it.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings

log = logging.getLogger(__name__)


class ImportRefused(ValueError):
    """The file cannot be imported as it is; the message says why, for the person who uploaded it."""


@dataclass(frozen=True)
class Limits:
    """How much of a file the importer reads at most (settings SHOTSHEET_IMPORT_*)."""

    max_rows: int
    max_columns: int
    max_cell_chars: int
    max_unpacked_bytes: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.SHOTSHEET_IMPORT_MAX_ROWS, settings.SHOTSHEET_IMPORT_MAX_COLUMNS,
                   settings.SHOTSHEET_IMPORT_MAX_CELL_CHARS, settings.SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES)


@dataclass(frozen=True)
class MergedRange:
    """A merged block of cells (1-based, inclusive); only its top-left cell holds the value."""

    min_row: int
    min_col: int
    max_row: int
    max_col: int

    def __contains__(self, cell: tuple[int, int]) -> bool:
        row, col = cell
        return self.min_row <= row <= self.max_row and self.min_col <= col <= self.max_col


@dataclass
class Grid:
    """The cells of a worksheet or CSV file as read: `rows[0]` is the file's row 1."""

    name: str
    rows: list[list] = field(default_factory=list)
    merged: list[MergedRange] = field(default_factory=list)

    def value(self, row: int, col: int):
        """The value at a 1-based cell, None outside the file."""
        if 1 <= row <= len(self.rows) and 1 <= col <= len(self.rows[row - 1]):
            return self.rows[row - 1][col - 1]
        return None

    def merged_range(self, row: int, col: int) -> MergedRange | None:
        return next((r for r in self.merged if (row, col) in r), None)

    @property
    def width(self) -> int:
        return max((len(row) for row in self.rows), default=0)


def read_grid(file: str | Path | IO[bytes], name: str | None = None, limits: Limits | None = None) -> Grid:
    """The cells of a CSV or XLSX file (a path, or an open binary file and its name), within limits."""
    limits = limits or Limits.from_settings()
    name = Path(str(name or file)).name
    if name.lower().endswith((".xlsx", ".xlsm")):
        grid = read_xlsx(file, name, limits)
    elif isinstance(file, str | Path):
        with open(file, "rb") as opened:
            grid = read_csv(opened, name, limits)
    else:
        grid = read_csv(file, name, limits)
    if not any(any(is_filled(v) for v in row) for row in grid.rows):
        raise ImportRefused(f"{name} is empty")
    return grid


def read_xlsx(file, name: str, limits: Limits) -> Grid:
    """The active worksheet with its merged ranges (group headers), after the zip directory's check."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(file) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRefused(f"{name} is not a readable XLSX file ({exc})") from None
    if unpacked > limits.max_unpacked_bytes:
        raise ImportRefused(f"{name} unpacks to {unpacked / 1e6:.1f} MB; the import takes up to "
                            f"{limits.max_unpacked_bytes / 1e6:.1f} MB (SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES)")
    if hasattr(file, "seek"):
        file.seek(0)
    try:
        # Not read-only: that mode does not know merged cells. The size check above bounds the work.
        sheet = load_workbook(file, data_only=True).active
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        merged = [MergedRange(r.min_row, r.min_col, r.max_row, r.max_col) for r in sheet.merged_cells.ranges]
    except Exception as exc:  # openpyxl raises anything from KeyError to XML ParseError on a broken file
        log.info("unreadable XLSX upload %s: %r", name, exc)
        raise ImportRefused(f"{name} is not a readable XLSX file ({type(exc).__name__}: {exc})") from None
    grid = Grid(name, trimmed(rows), merged)
    check_size(grid, limits)
    return grid


def read_csv(file: IO[bytes], name: str, limits: Limits) -> Grid:
    """The rows of a UTF-8 CSV file; the delimiter (comma, semicolon, tab) is taken from its start."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    rows: list[list] = []
    try:
        sample = text.read(64 * 1024)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        text.seek(0)
        for row in csv.reader(text, dialect):
            rows.append(row)
            if len(rows) > limits.max_rows:
                break
            if any(len(value) > limits.max_cell_chars for value in row):
                raise ImportRefused(long_value(name, len(rows), limits))
    except UnicodeDecodeError:
        raise ImportRefused(f"{name} is not UTF-8 text; save it as CSV UTF-8 or XLSX") from None
    except csv.Error as exc:
        row = len(rows) + 1
        if "field larger than field limit" in str(exc):  # csv's own limit, 131,072 characters
            raise ImportRefused(long_value(name, row, limits)) from None
        raise ImportRefused(f"{name}, row {row}: not readable as CSV ({exc})") from None
    grid = Grid(name, trimmed(rows))
    check_size(grid, limits)
    return grid


def long_value(name: str, row: int, limits: Limits) -> str:
    return (f"{name}, row {row}: a value of more than {limits.max_cell_chars:,} characters "
            "(SHOTSHEET_IMPORT_MAX_CELL_CHARS); is it a shot log?")


def check_size(grid: Grid, limits: Limits) -> None:
    if len(grid.rows) > limits.max_rows:
        raise ImportRefused(f"{grid.name} has more than {limits.max_rows:,} rows (SHOTSHEET_IMPORT_MAX_ROWS); "
                            "split it into several files")
    if grid.width > limits.max_columns:
        raise ImportRefused(f"{grid.name} has {grid.width:,} columns; the import takes up to "
                            f"{limits.max_columns:,} (SHOTSHEET_IMPORT_MAX_COLUMNS)")
    for number, row in enumerate(grid.rows, start=1):
        if any(isinstance(v, str) and len(v) > limits.max_cell_chars for v in row):
            raise ImportRefused(long_value(grid.name, number, limits))


def is_filled(value) -> bool:
    """A cell that holds something: formatted but empty cells and blanks do not."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def trimmed(rows: list[list]) -> list[list]:
    """The rows without the empty cells at their ends and without empty rows after the last one."""
    rows = [row[:last_filled(row)] for row in rows]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def last_filled(row: list) -> int:
    for index in range(len(row), 0, -1):
        if is_filled(row[index - 1]):
            return index
    return 0
