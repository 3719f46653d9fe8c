"""Legacy shot logs (CSV, XLSX) into a sheet, the way labs keep them in Excel.

Three steps, each a plain function so the command, the web preview and the tests share them:
`read_grid` (the cells, within limits), `plan_import` (header row below the title rows, merged group
headers, each column → a field, matched or chosen, never dropped unseen), `check_rows` (every cell
read as its field reads it, every row through the sheet's entry form, problems by cell); then
`store_rows`, all or nothing.

An upload is untrusted: a 42 kB XLSX can unpack to 14 MB of XML (400,000 rows, a minute of CPU
to read and check), a CSV can hold a 200 kB field, a zip can hold broken XML. Everything read
is bounded by settings (SHOTSHEET_IMPORT_*), the unpacked size is taken from the zip directory
before anything is parsed, and every way a file can be unreadable ends in `ImportRefused` with a
sentence for the person who uploaded it. Reading and checking 10,000 rows takes about 3 s of CPU.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import os
import re
import secrets
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from django.conf import settings

from . import store
from .entries import entry_document, log_change, new_id
from .forms import entry_form_class, entry_values
from .metrics import ENTRIES_SAVED
from .models import Field, heading
from .numbers import NumberError, decimal_evidence, parse_number
from .schema import FieldDef, field_defs, save_version

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
        return cls(
            settings.SHOTSHEET_IMPORT_MAX_ROWS,
            settings.SHOTSHEET_IMPORT_MAX_COLUMNS,
            settings.SHOTSHEET_IMPORT_MAX_CELL_CHARS,
            settings.SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES,
        )


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
    if isinstance(file, str | Path):  # opened once: an import's claim may rename it while it is read
        with open(file, "rb") as opened:
            return read_grid(opened, name, limits)
    if name.lower().endswith((".xlsx", ".xlsm")):
        grid = read_xlsx(file, name, limits)
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
        raise ImportRefused(
            f"{name} unpacks to {unpacked / 1e6:.1f} MB; the import takes up to "
            f"{limits.max_unpacked_bytes / 1e6:.1f} MB (SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES)"
        )
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
        delimiter = csv_delimiter(text.read(64 * 1024))
        text.seek(0)
        for row in csv.reader(text, delimiter=delimiter):
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
    finally:
        text.detach()  # the caller's file stays open
    grid = Grid(name, trimmed(rows))
    check_size(grid, limits)
    return grid


def csv_delimiter(sample: str) -> str:
    """Comma, semicolon (Excel in German) or tab: the one that splits most rows into the same number
    of cells. csv.Sniffer took the decimal commas of `X;1,5` for the delimiter when a title row
    came first."""
    lines = sample.splitlines()[:200]

    def agreeing_rows(delimiter: str) -> int:
        try:
            counts = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter) if row)
        except csv.Error:
            return 0
        return max((rows for cells, rows in counts.items() if cells > 1), default=0)

    return max([",", ";", "\t"], key=agreeing_rows)


def long_value(name: str, row: int, limits: Limits) -> str:
    return (
        f"{name}, row {row}: a value of more than {limits.max_cell_chars:,} characters "
        "(SHOTSHEET_IMPORT_MAX_CELL_CHARS); is it a shot log?"
    )


def check_size(grid: Grid, limits: Limits) -> None:
    if len(grid.rows) > limits.max_rows:
        raise ImportRefused(
            f"{grid.name} has more than {limits.max_rows:,} rows (SHOTSHEET_IMPORT_MAX_ROWS); "
            "split it into several files"
        )
    if grid.width > limits.max_columns:
        raise ImportRefused(
            f"{grid.name} has {grid.width:,} columns; the import takes up to "
            f"{limits.max_columns:,} (SHOTSHEET_IMPORT_MAX_COLUMNS)"
        )
    for number, row in enumerate(grid.rows, start=1):
        if any(isinstance(v, str) and len(v) > limits.max_cell_chars for v in row):
            raise ImportRefused(long_value(grid.name, number, limits))


def is_filled(value) -> bool:
    """A cell that holds something: formatted but empty cells and blanks do not."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def trimmed(rows: list[list]) -> list[list]:
    """The rows without the empty cells at their ends and without empty rows after the last one."""
    rows = [row[: last_filled(row)] for row in rows]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def last_filled(row: list) -> int:
    for index in range(len(row), 0, -1):
        if is_filled(row[index - 1]):
            return index
    return 0


# --- columns: where the header is, what each column holds -------------------------------------------
IGNORE = "(ignore)"
ENTRY_TIME = "(entry time)"
SHOT_KEY = "shot_key"
COMMENT = "comment"
LETTER_PREFIX = "col:"  # a choice for `col:E` is for column E, whatever the headers say
HEADER_SEARCH_ROWS = 30  # title rows above the header: a lab's log has a few, never pages
UNIT = re.compile(r"^(?P<name>.*?)\s*[\[(]\s*(?P<unit>[^\[\]()]*?)\s*[\])]\s*$")


@dataclass(frozen=True)
class Target:
    """What a column can go to: a field of the sheet, the entry's shot key, comment or time."""

    value: str
    label: str
    unit: str = ""
    type: str = ""

    @property
    def title(self) -> str:
        return heading(self.label, self.unit)


def targets_of(fields: list[FieldDef]) -> dict[str, Target]:
    """Every target of a schema version's fields, by value (what --map and the preview's choices name)."""
    found = {
        SHOT_KEY: Target(SHOT_KEY, "Shot key", type=Field.Type.TEXT),
        COMMENT: Target(COMMENT, "Comment", type=Field.Type.TEXT),
        ENTRY_TIME: Target(ENTRY_TIME, "Entry time", type=Field.Type.DATETIME),
    }
    for f in fields:
        if not f.archived and f.key not in found:
            found[f.key] = Target(f.key, f.label, f.unit, f.type)
    return found


def normal(text: str) -> str:
    """A header or name as compared: case, underscores and spacing do not count."""
    return " ".join(text.replace("_", " ").casefold().split()).strip(" :.")


def same_unit(a: str, b: str) -> bool:
    return a.replace("µ", "u").replace("μ", "u").strip() == b.replace("µ", "u").replace("μ", "u").strip()


def name_and_unit(header: str) -> tuple[str, str]:
    """`Energy [J]` and `Pulse (fs)` → (name, unit)."""
    match = UNIT.match(header)
    return (match["name"], match["unit"]) if match and match["name"] else (header, "")


@dataclass
class Match:
    """What a header names: a target, or (unmatched) a close one to suggest, with why."""

    target: str = ""
    suggestion: str = ""
    note: str = ""


def header_names(targets: dict[str, Target]) -> dict[str, str]:
    """Normalised names → target: the fields' keys and labels first, then the entry's own names."""
    names: dict[str, str] = {}
    for target in sorted(targets.values(), key=lambda t: t.value in (SHOT_KEY, COMMENT, ENTRY_TIME)):
        if target.value != ENTRY_TIME:  # the entry time only when the user says so
            names.setdefault(normal(target.value), target.value)
            names.setdefault(normal(target.label), target.value)
    for alias in ("shot", "shotkey"):
        names.setdefault(alias, SHOT_KEY)
    return names


def match_header(header: str, group: str, targets: dict[str, Target], suggest: bool = True) -> Match:
    """The target a header names (`Energy [J]`, `energy (J)`, `Laser › Energy`), else a close one."""
    names = header_names(targets)
    name, unit = name_and_unit(header)
    for candidate in filter(None, (normal(name), normal(f"{group} {name}") if group else "")):
        if candidate in names:
            target = targets[names[candidate]]
            if unit and target.unit and not same_unit(unit, target.unit):
                return Match(
                    suggestion=target.value,
                    note=f"its unit is {unit}, the field's is {target.unit}: convert the values first",
                )
            return Match(target=target.value)
    close = difflib.get_close_matches(normal(name), list(names), n=1, cutoff=0.75) if suggest else []
    return Match(suggestion=names[close[0]]) if close else Match()


@dataclass
class Column:
    """One column of the file under the header row, and where it goes."""

    index: int  # 1-based
    header: str
    group: str = ""  # the merged group header above it, if any
    samples: list[str] = field(default_factory=list)
    target: str = ""  # "" = nobody said yet; IGNORE = explicitly ignored
    matched: bool = False  # the target came from the header, not from the user
    suggestion: str = ""
    note: str = ""

    @property
    def letter(self) -> str:
        from openpyxl.utils import get_column_letter

        return get_column_letter(self.index)

    @property
    def name(self) -> str:
        """How reports name it: its header (under its group), or its letter when it has none."""
        header = self.header or f"column {self.letter}"
        return f"{self.group} › {header}" if self.group else header


@dataclass
class ImportOptions:
    """What the person importing chose: header row, decimal mark, date order, column → target."""

    header_row: int | None = None  # 1-based; None: found by matching
    decimal_mark: str = "auto"
    date_order: str = "auto"  # dmy, mdy or auto for 01/02/2026; dotted dates are always day.month.year
    choices: dict[str, str] = field(default_factory=dict)  # `col:<letter>`, header, name or letter → target


@dataclass(frozen=True)
class DecimalSeen:
    """The decimal mark a column's numbers typed as text show beyond doubt, and where."""

    column: str
    mark: str
    cell: str  # `B10 '5,5'`


@dataclass
class Plan:
    """The file as the importer understood it: header row, columns and their targets, data rows."""

    grid: Grid
    header_row: int
    columns: list[Column]
    data_rows: list[int]  # 1-based row numbers that hold something
    empty_rows: int  # blank or formatted-empty rows under the header, skipped
    options: ImportOptions
    targets: dict[str, Target]
    required: list[str]  # targets that must have a column
    unknown_columns: list[str] = field(default_factory=list)  # chosen for, but no column is called so
    decimal_seen: dict[int, DecimalSeen] = field(default_factory=dict)  # column index → its mark, when not chosen
    date_order: str = "auto"  # of slashed dates: as chosen, or as the file's unambiguous ones show it
    date_seen: str = ""

    def decimal_mark(self, column: Column) -> str:
        """The decimal mark of a column's numbers typed as text: as chosen, else as the column shows it.

        Per column: `1,5` in Energy made the whole file "comma", and `1.250` in Pulse became 1250."""
        if self.options.decimal_mark != "auto":
            return self.options.decimal_mark
        return seen.mark if (seen := self.decimal_seen.get(column.index)) else "auto"

    @property
    def decimal_notes(self) -> list[str]:
        """What the columns showed (`Energy [J]: decimal comma, as the file shows (B10 '5,5')`)."""
        return [
            f"{seen.column}: decimal {seen.mark}, as the file shows ({seen.cell})"
            for seen in self.decimal_seen.values()
        ]

    @property
    def unresolved(self) -> list[Column]:
        return [c for c in self.columns if not c.target]

    @property
    def ignored(self) -> list[Column]:
        return [c for c in self.columns if c.target == IGNORE]

    @property
    def mapped(self) -> list[Column]:
        return [c for c in self.columns if c.target and c.target != IGNORE]

    def problems(self) -> list[str]:
        """What stops the import before any row is read: unresolved columns, double or missing targets."""
        found = [
            f"Column {c.letter} “{c.name}” matches no field{suggestion_text(self, c)}: choose a field or ignore it."
            for c in self.unresolved
        ]
        by_target: dict[str, list[Column]] = {}
        for column in self.mapped:
            by_target.setdefault(column.target, []).append(column)
        for target, columns in by_target.items():
            if len(columns) > 1:
                found.append(
                    f"{self.targets[target].title} is chosen for columns "
                    f"{', '.join(c.letter for c in columns)}: choose one."
                )
        found += [
            f"{self.targets[key].title} is required, but no column goes to it."
            for key in self.required
            if key not in by_target
        ]
        found += [
            f"No column is called “{name}” (a typo in a choice would otherwise go unnoticed)."
            for name in self.unknown_columns
        ]
        if not set(by_target) - {SHOT_KEY, COMMENT, ENTRY_TIME}:
            found.append("No column goes to a field of the sheet.")
        return found


def suggestion_text(plan: Plan, column: Column) -> str:
    if not column.suggestion:
        return ""
    return f" (did you mean {plan.targets[column.suggestion].title}?{' ' + column.note if column.note else ''})"


def plan_import(grid: Grid, fields: list[FieldDef], options: ImportOptions | None = None) -> Plan:
    """Find the header (below any title rows), name each column, match it to a field, count the rows."""
    options = options or ImportOptions()
    targets = targets_of(fields)
    header_row = options.header_row or find_header_row(grid, targets)
    if not 1 <= header_row <= len(grid.rows):
        raise ImportRefused(f"{grid.name} has no row {header_row}")
    data_rows = [n for n in range(header_row + 1, len(grid.rows) + 1) if any(map(is_filled, grid.rows[n - 1]))]
    columns = []
    for index in range(1, grid.width + 1):
        header, group = header_text(grid, header_row, index), group_text(grid, header_row, index)
        samples = [display_value(grid.value(n, index)) for n in data_rows if is_filled(grid.value(n, index))]
        if not header and not samples:
            continue  # nothing in it: nothing to lose
        column = Column(index, header, group, samples[:3])
        match = match_header(header, group, targets) if header else Match()
        column.target, column.matched, column.suggestion, column.note = (
            match.target,
            bool(match.target),
            match.suggestion,
            match.note,
        )
        chosen = next((options.choices[k] for k in choice_keys(column) if k and k in options.choices), None)
        if chosen is not None:
            if chosen and chosen != IGNORE and chosen not in targets:
                raise ImportRefused(f"{grid.name}: no field '{chosen}' in the sheet (for column {column.letter})")
            column.target, column.matched = chosen, False
        columns.append(column)
    required = [f.key for f in fields if f.required and not f.archived]
    check_choice_keys(grid, columns, options.choices)
    named = {name for c in columns for name in choice_keys(c)}
    plan = Plan(
        grid,
        header_row,
        columns,
        data_rows,
        len(grid.rows) - header_row - len(data_rows),
        options,
        targets,
        required,
        unknown_columns=sorted(set(options.choices) - named),
        date_order=options.date_order,
    )
    if options.decimal_mark == "auto":
        plan.decimal_seen = column_decimal_marks(plan)
    if options.date_order == "auto":
        plan.date_order, plan.date_seen = file_date_order(plan)
    return plan


def choice_keys(column: Column) -> tuple[str, ...]:
    """What a choice can call a column: `col:E` (its letter, always), its header, its name, `E`."""
    return (f"{LETTER_PREFIX}{column.letter}", column.header, column.name, column.letter)


def check_choice_keys(grid: Grid, columns: list[Column], choices: dict[str, str]) -> None:
    """A bare `E` that is one column's header and another column's letter is refused: the choice
    went to whichever was looked up first (a column headed `E` took column E's choice)."""
    for key in choices:
        by_letter = next((c for c in columns if c.letter == key), None)
        by_header = [c for c in columns if key in (c.header, c.name)]
        if by_letter and any(c is not by_letter for c in by_header):
            raise ImportRefused(
                f"{grid.name}: '{key}' is the header of column {by_header[0].letter} and the letter "
                f"of column {key}: write the header's column as {LETTER_PREFIX}"
                f"{by_header[0].letter}, column {key} as {LETTER_PREFIX}{key}"
            )


def text_cells(plan: Plan, types: tuple[str, ...]):
    """(cell, text) of every text cell in the columns that go to targets of these types."""
    for column in plan.mapped:
        if plan.targets[column.target].type in types:
            for number in plan.data_rows:
                if isinstance(raw := plan.grid.value(number, column.index), str):
                    yield f"{column.letter}{number}", raw.strip()


def column_decimal_marks(plan: Plan) -> dict[int, DecimalSeen]:
    """Each number column's decimal mark, when its values typed as text all show the same one.

    So `1.234` next to `12.25` in its column is 1.234, and next to `3,7` it is 1234; a column with
    no such evidence of its own, or both marks, refuses every value that could be either."""
    found = {}
    for column in plan.mapped:
        if plan.targets[column.target].type not in (Field.Type.FLOAT, Field.Type.INTEGER):
            continue
        seen: dict[str, str] = {}
        for number in plan.data_rows:
            raw = plan.grid.value(number, column.index)
            if isinstance(raw, str) and (mark := decimal_evidence(raw)) and mark not in seen:
                seen[mark] = f"{column.letter}{number} {raw.strip()!r}"
        if len(seen) == 1:
            mark, cell = next(iter(seen.items()))
            found[column.index] = DecimalSeen(column.name, mark, cell)
    return found


def file_date_order(plan: Plan) -> tuple[str, str]:
    """day/month or month/day, as the file's slashed dates show it beyond doubt (`24/11/2026`)."""
    seen: dict[str, str] = {}
    for cell, text in text_cells(plan, (Field.Type.DATETIME,)):
        if (order := slashed_order(text)) and order not in seen:
            seen[order] = f"{cell} {text!r}"
    return next(iter(seen.items())) if len(seen) == 1 else ("auto", "")


def slashed_order(text: str) -> str | None:
    """The order a slashed date shows beyond doubt: 24/11 is day/month, 11/24 month/day."""
    match = SLASHED.match(text)
    if not match or (int(match["a"]) > 12) == (int(match["b"]) > 12):
        return None
    return "dmy" if int(match["a"]) > 12 else "mdy"


def find_header_row(grid: Grid, targets: dict[str, Target]) -> int:
    """The row (of the first few) whose cells name the most fields; the first filled row if none does."""
    best, best_score = 0, 0
    for row in range(1, min(len(grid.rows), HEADER_SEARCH_ROWS) + 1):
        score = sum(
            1
            for col in range(1, grid.width + 1)
            if (header := header_text(grid, row, col))
            and match_header(header, group_text(grid, row, col), targets, suggest=False).target
        )
        if score > best_score:
            best, best_score = row, score
    return best or next(n for n, row in enumerate(grid.rows, start=1) if any(map(is_filled, row)))


def header_text(grid: Grid, row: int, col: int) -> str:
    """A header cell's text; a header merged down from the row above (`Shot` over two rows) counts."""
    value = grid.value(row, col)
    if not is_filled(value):
        merged = grid.merged_range(row, col)
        if merged and merged.min_col == col and merged.min_row < row:
            value = grid.value(merged.min_row, merged.min_col)
    return " ".join(str(value).split()) if is_filled(value) else ""


def group_text(grid: Grid, row: int, col: int) -> str:
    """The merged group header above a header cell (`Laser` over `Energy [J]` and `Pulse (fs)`)."""
    merged = grid.merged_range(row - 1, col) if row > 1 else None
    if merged and merged.max_col > merged.min_col and (row, col) not in merged:
        return header_text(grid, merged.min_row, merged.min_col)
    return ""


def display_value(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


# --- rows: converting and checking every cell, the report ----------------------------------------------
TRUE_WORDS = {"yes", "y", "true", "1", "on", "x", "ok", "ja", "j", "wahr"}
FALSE_WORDS = {"no", "n", "false", "0", "off", "-", "nein", "falsch", ""}
DOTTED = re.compile(r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4}|\d{2})")
SLASHED = re.compile(r"(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})")
CLOCK = re.compile(r"(?:[ T,]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?")
REPORT_EXAMPLES = 12  # cells listed per kind of problem; the count says how many there are


@dataclass
class Problem:
    """One bad cell: where it is, which column, what it holds and what is wrong with it."""

    row: int
    cell: str  # `C17`, or `row 17` for a problem of the whole row
    column: str
    value: str
    problem: str


@dataclass
class ProblemGroup:
    """Problems of one kind in one column (`100 rows in Energy [J]: decimal comma, …`)."""

    column: str
    problem: str
    cells: list[Problem]

    @property
    def summary(self) -> str:
        where = f" in {self.column}" if self.column else ""
        return f"{len(self.cells)} row{'s' if len(self.cells) != 1 else ''}{where}: {self.problem.rstrip('.')}"

    @property
    def examples(self) -> list[Problem]:
        return self.cells[:REPORT_EXAMPLES]

    @property
    def more(self) -> int:
        return len(self.cells) - len(self.examples)

    def __str__(self) -> str:
        cells = ", ".join(f"{p.cell} {p.value!r}" if p.value else p.cell for p in self.examples)
        return f"{self.summary} — {cells}{f', … {self.more} more' if self.more else ''}"


@dataclass
class ImportRow:
    """A row that passed the entry form: what its entry will hold."""

    row: int
    values: dict
    shot_key: str | None
    comment: str
    created: datetime | None


@dataclass
class Checked:
    """Every data row of a plan checked: the rows to store, or what is wrong, grouped by kind."""

    rows: list[ImportRow]
    problems: list[Problem]

    @property
    def bad_rows(self) -> int:
        return len({p.row for p in self.problems})

    @property
    def groups(self) -> list[ProblemGroup]:
        groups: dict[tuple[str, str], ProblemGroup] = {}
        for problem in self.problems:
            key = (problem.column, problem.problem)
            groups.setdefault(key, ProblemGroup(problem.column, problem.problem, [])).cells.append(problem)
        return sorted(groups.values(), key=lambda g: -len(g.cells))


def check_rows(plan: Plan, fields: list[FieldDef], progress=None) -> Checked:
    """Convert every cell the way its field reads it and check each row with the sheet's entry form."""
    form_class = entry_form_class(fields)
    column_of = {c.target: c for c in plan.mapped}
    rows, problems = [], []
    for number in progress(plan.data_rows) if progress else plan.data_rows:
        data, failed, created = {}, set(), None
        for column in plan.mapped:
            raw = plan.grid.value(number, column.index)
            try:
                value = cell_value(raw, plan.targets[column.target].type, plan.decimal_mark(column), plan.date_order)
            except ValueError as exc:
                problems.append(Problem(number, f"{column.letter}{number}", column.name, display_value(raw), str(exc)))
                failed.add(column.target)
                continue
            if column.target == ENTRY_TIME:
                created = value or None
            else:
                data[column.target] = value
        form = form_class(data)
        valid = form.is_valid()
        for key, messages in form.errors.items():
            if key in failed:
                continue
            column = column_of.get(key)
            cell = f"{column.letter}{number}" if column else f"row {number}"
            name = column.name if column else plan.targets[key].title if key in plan.targets else ""
            raw = display_value(plan.grid.value(number, column.index)) if column else ""
            problems += [Problem(number, cell, name, raw, message) for message in messages]
        if ENTRY_TIME in column_of and created is None and ENTRY_TIME not in failed:
            column = column_of[ENTRY_TIME]
            problems.append(Problem(number, f"{column.letter}{number}", column.name, "", "no entry time"))
            failed.add(ENTRY_TIME)
        if valid and not failed:
            # Only what the file has a column for: a yes/no field it does not mention was stored as "no".
            values = {key: value for key, value in entry_values(form, fields).items() if key in column_of}
            rows.append(
                ImportRow(
                    number, values, form.cleaned_data["shot_key"].strip() or None, form.cleaned_data["comment"], created
                )
            )
    return Checked(rows, problems)


def cell_value(raw, kind: str, decimal_mark: str = "auto", date_order: str = "auto"):
    """A cell as its field's form reads it; ValueError with the problem when it cannot be read so."""
    if not is_filled(raw):
        return [] if kind == Field.Type.MULTI_CHOICE else ""
    if kind in (Field.Type.FLOAT, Field.Type.INTEGER):
        if isinstance(raw, bool | datetime | date):
            raise ValueError("not a number")
        try:
            number = raw if isinstance(raw, int | float) else parse_number(str(raw), decimal_mark)
        except NumberError as exc:
            raise ValueError(exc.reason) from None  # without the text: the report groups rows by it
        return number_of(number, kind)
    if kind == Field.Type.DATETIME:
        return local_time(raw, date_order)
    if kind == Field.Type.BOOLEAN:
        if isinstance(raw, bool | int | float) and raw in (0, 1):
            return bool(raw)
        word = str(raw).strip().casefold()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError("not yes or no")
    if kind == Field.Type.MULTI_CHOICE:
        return [v.strip() for v in re.split(r"[,;]", str(raw)) if v.strip()]
    return display_value(raw)


def number_of(number: int | float | Decimal, kind: str) -> int | float:
    """A cell's number as its field holds it. The Decimal of a number typed as text goes to an int
    directly: through a float, 1732456980123456789 became 1732456980123456768."""
    if kind == Field.Type.FLOAT:
        return float(number)
    if isinstance(number, int):
        return number
    if number != int(number):
        raise ValueError("not a whole number")
    return int(number)


def local_time(raw, date_order: str = "auto") -> datetime:
    """A date/time cell or text in the lab's zone (settings.TIME_ZONE, unless it says its own) → UTC."""
    if isinstance(raw, datetime):
        when = raw
    elif isinstance(raw, date):
        when = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        when = parse_time_text(raw.strip(), date_order)
    else:
        raise ValueError("not a date")
    if when.tzinfo is None:
        when = in_lab_zone(when)
    return when.astimezone(UTC)


def in_lab_zone(when: datetime) -> datetime:
    """A time without a zone in the lab's zone, refused in the hours the clocks change: the time
    that does not exist (spring) or happens twice (autumn) was stored as one of them, unsaid."""
    zone = settings.TIME_ZONE
    first, second = when.replace(tzinfo=ZoneInfo(zone), fold=0), when.replace(tzinfo=ZoneInfo(zone), fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    example = f"{when:%Y-%m-%dT%H:%M}"
    if first.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != when:
        raise ValueError(
            f"no such time in {zone} (the clocks go forward): write it with its offset, "
            f"e.g. {example}{offset_text(first)}"
        )
    raise ValueError(
        f"happens twice in {zone} (the clocks go back): write it with its offset, "
        f"{example}{offset_text(first)} or {example}{offset_text(second)}"
    )


def offset_text(when: datetime) -> str:
    minutes = int(when.utcoffset().total_seconds() // 60)
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_time_text(text: str, date_order: str = "auto") -> datetime:
    """`24.11.2026 14:03`, `24/11/2026` (or 11/24/2026 by the date order), ISO 8601."""
    for pattern in (DOTTED, SLASHED):
        if match := re.fullmatch(pattern.pattern + CLOCK.pattern, text):
            parts = match.groupdict()
            if pattern is DOTTED:
                day, month = parts["d"], parts["m"]
            else:
                order = (
                    date_order
                    if date_order != "auto"
                    else slashed_order(text) or ("dmy" if parts["a"] == parts["b"] else "")
                )
                if not order:
                    raise ValueError("ambiguous date: day/month or month/day? (choose the date order)")
                day, month = (parts["a"], parts["b"]) if order == "dmy" else (parts["b"], parts["a"])
            year = int(parts["y"]) + (2000 if len(parts["y"]) == 2 else 0)
            try:
                return datetime(
                    year, int(month), int(day), int(parts["H"] or 0), int(parts["M"] or 0), int(parts["S"] or 0)
                )
            except ValueError:
                raise ValueError("no such date or time") from None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not a date (dd.mm.yyyy HH:MM or ISO 8601)") from None


def import_grid(
    sheet, grid: Grid, options: ImportOptions | None = None, *, author: str, progress=None
) -> tuple[int, Checked]:
    """A whole file at once (the command, tests): (entries stored, the check); none stored if any row is bad."""
    version = save_version(sheet)  # an import is a write: its entries name the version of their fields
    fields = field_defs(version.fields)
    plan = plan_import(grid, fields, options)
    if problems := plan.problems():
        raise ImportRefused("nothing was imported: " + " ".join(problems))
    checked = check_rows(plan, fields, progress)
    if checked.problems:
        return 0, checked
    return store_rows(sheet, version.number, checked.rows, author=author), checked


def store_rows(sheet, version_number: int, rows: list[ImportRow], *, author: str) -> int:
    """All rows as entries of one import, marked done only once every one is in (all or nothing)."""
    now = datetime.now(UTC)
    import_id = new_id(sheet, now)
    entries = []
    for order, row in enumerate(rows):
        created = row.created or now + timedelta(milliseconds=order)  # the log's row order, oldest first
        entries.append(
            entry_document(
                sheet,
                version_number,
                row.values,
                author=author,
                shot_key=row.shot_key,
                comment=row.comment,
                created=created,
                import_id=import_id,
            )
        )
    # A server lost midway leaves the import unfinished, and the entries of an unfinished import
    # are not part of the sheet.
    store.begin_import(import_id, sheet.slug, len(entries))
    store.insert_entries(entries)
    store.finish_import(import_id)
    ENTRIES_SAVED.labels(sheet.slug, "import").inc(len(entries))
    log_change(sheet, [e["_id"] for e in entries])
    return len(entries)


# --- the uploaded file between the preview and the import ------------------------------------------------
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
CLAIMED = ".importing"  # a kept upload being imported


def upload_dir() -> Path:
    return Path(settings.SHOTSHEET_IMPORT_DIR)


def keep_upload(chunks, name: str) -> str:
    """Keep an upload (already size-checked) under a random name until its import; old ones are removed."""
    directory = upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    remove_expired(directory)
    token = secrets.token_urlsafe(16)
    path = directory / f"{token}{Path(name).suffix.lower()}"
    with open(path, "xb") as out:
        for chunk in chunks:
            out.write(chunk)
    return token


def kept_upload(token: str) -> Path | None:
    """The file kept under a token, None when there is none or it expired."""
    if not TOKEN.fullmatch(token):
        return None
    for path in upload_dir().glob(f"{token}.*"):
        if path.suffix not in (".csv", ".xlsx", ".xlsm"):
            continue
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return None  # claimed by an import, or removed, since the directory was listed
        return path if time.time() - modified <= settings.SHOTSHEET_IMPORT_KEEP_SECONDS else None
    return None


def being_imported(token: str) -> bool:
    """Whether a request has claimed the upload and is importing it now."""
    return bool(TOKEN.fullmatch(token)) and any(upload_dir().glob(f"{token}.*{CLAIMED}"))


def claim_upload(token: str) -> Path | None:
    """The kept file, renamed so that no other request finds it: None when another one (a second
    press of Import) has claimed it already. Without the claim both imported all rows."""
    path = kept_upload(token)
    if path is None:
        return None
    claimed = path.with_name(f"{path.name}{CLAIMED}")
    try:
        os.replace(path, claimed)  # atomic: of two requests, one renames, the other finds nothing
    except FileNotFoundError:
        return None
    return claimed


def release_upload(claimed: Path) -> None:
    """A claimed file back under its token (the import failed: it can be tried again)."""
    os.replace(claimed, claimed.with_name(claimed.name.removesuffix(CLAIMED)))


def discard_upload(token: str) -> None:
    if path := kept_upload(token):
        path.unlink(missing_ok=True)


def remove_expired(directory: Path) -> None:
    cutoff = time.time() - settings.SHOTSHEET_IMPORT_KEEP_SECONDS
    for path in directory.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass  # another process removed it first


def parse_choices(lines: list[str]) -> dict[str, str]:
    """`COLUMN=FIELD` pairs (from the command line) as a dict; `COLUMN=` ignores the column."""
    choices = {}
    for pair in filter(None, (line.strip() for line in lines)):
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise ImportRefused(f"a mapping is COLUMN=FIELD, not '{pair}'")
        choices[column.strip()] = target.strip() or IGNORE
    return choices
