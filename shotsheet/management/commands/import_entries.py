"""`manage.py import_entries SHEET FILE`: a legacy Excel/CSV shot log into a sheet, all or nothing."""

from django.core.management.base import BaseCommand, CommandError
from pymongo.errors import PyMongoError
from tqdm import tqdm

from shotsheet import importer, schema
from shotsheet.models import Sheet
from shotsheet.numbers import DECIMAL_MARKS


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX shot log into a sheet: every column matched or ignored, every row valid, "
        "or nothing imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("sheet", help="the sheet's slug")
        parser.add_argument("file", help="a .csv or .xlsx file; the header row is found below any title rows")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help="send a column (its header, its letter, or col:LETTER) to a field key, shot_key, "
            f"comment or '{importer.ENTRY_TIME}'; COLUMN= ignores it. A header that is "
            "another column's letter must be named col:LETTER",
        )
        parser.add_argument(
            "--ignore",
            action="append",
            default=[],
            metavar="COLUMN",
            help="leave a column out (every column must be matched or ignored)",
        )
        parser.add_argument("--entry-time", metavar="COLUMN", help="a column that holds each entry's time")
        parser.add_argument("--header-row", type=int, help="the header's row number (default: found)")
        parser.add_argument(
            "--decimal",
            choices=[mark for mark, _ in DECIMAL_MARKS],
            default="auto",
            help="the decimal mark of numbers typed as text (default: either, ambiguous refused)",
        )
        parser.add_argument(
            "--dates",
            choices=["auto", "dmy", "mdy"],
            default="auto",
            help="the order of dates written with slashes (default: as the file's unambiguous "
            "ones show it, ambiguous refused); dotted dates are day.month.year",
        )
        parser.add_argument("--author", default="import")

    def handle(self, *args, sheet, file, author, **options):
        try:
            target = Sheet.objects.get(slug=sheet)
        except Sheet.DoesNotExist:
            raise CommandError(f"no sheet '{sheet}'") from None
        try:
            choices = importer.parse_choices(options["map"])
            choices |= {column: importer.IGNORE for column in options["ignore"]}
            if options["entry_time"]:
                choices[options["entry_time"]] = importer.ENTRY_TIME
            version = schema.save_version(target)  # an import is a write: its entries name their version
            fields = schema.field_defs(version.fields)
            plan = importer.plan_import(
                importer.read_grid(file),
                fields,
                importer.ImportOptions(options["header_row"], options["decimal"], options["dates"], choices),
            )
            self.stdout.write(describe(plan))
            if problems := plan.problems():
                raise CommandError("nothing was imported:\n" + "\n".join(problems))
            checked = importer.check_rows(plan, fields, progress=lambda r: tqdm(r, desc="checking rows", unit="row"))
            if checked.problems:
                self.stderr.write("\n".join(map(str, checked.groups)))
                raise CommandError(
                    f"{checked.bad_rows} of {len(plan.data_rows)} rows have errors; nothing was imported"
                )
            stored = importer.store_rows(target, version.number, checked.rows, author=author)
        except OSError as exc:
            raise CommandError(str(exc)) from None
        except importer.ImportRefused as exc:
            raise CommandError(str(exc)) from None
        except PyMongoError as exc:
            raise CommandError(f"nothing was imported: MongoDB failed ({exc})") from None
        skipped = f"; {plan.empty_rows} empty rows skipped" if plan.empty_rows else ""
        self.stdout.write(self.style.SUCCESS(f"Imported {stored} entries into '{target.slug}'{skipped}."))


def describe(plan: importer.Plan) -> str:
    """The plan in a few lines: header row, where each column goes."""
    lines = [
        f"{plan.grid.name}: header in row {plan.header_row}, {len(plan.data_rows)} rows"
        f"{f', {plan.empty_rows} empty rows skipped' if plan.empty_rows else ''}"
    ]
    if plan.date_seen:
        lines.append(f"  dates with slashes: {plan.date_order}, as the file shows ({plan.date_seen})")
    lines += [f"  numbers typed as text in {note}" for note in plan.decimal_notes]
    for column in plan.columns:
        goes = (
            "ignored"
            if column.target == importer.IGNORE
            else f"→ {plan.targets[column.target].title}"
            if column.target
            else "→ ?"
        )
        lines.append(f"  {column.letter} {column.name}: {goes}")
    return "\n".join(lines)
