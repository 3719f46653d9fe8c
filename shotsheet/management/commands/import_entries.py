"""`manage.py import_entries SHEET FILE`: a legacy Excel/CSV shot log into a sheet, all or nothing."""

from django.core.management.base import BaseCommand, CommandError
from pymongo.errors import PyMongoError
from tqdm import tqdm

from shotsheet import services
from shotsheet.models import Sheet


class Command(BaseCommand):
    help = "Import a CSV or XLSX shot log into a sheet: every row valid, or nothing imported."

    def add_arguments(self, parser):
        parser.add_argument("sheet", help="the sheet's slug")
        parser.add_argument("file", help="a .csv or .xlsx file; the first row names the columns")
        parser.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                            help="map a column to a field key (default: header = field key or label)")
        parser.add_argument("--author", default="import")

    def handle(self, *args, sheet, file, map, author, **options):
        try:
            target = Sheet.objects.get(slug=sheet)
        except Sheet.DoesNotExist:
            raise CommandError(f"no sheet '{sheet}'") from None
        try:
            explicit = services.parse_mapping(map)
            header, rows = services.read_table(file)
            stored, errors = services.import_rows(target, header, rows, explicit, author=author,
                                                  progress=lambda r: tqdm(r, desc="checking rows", unit="row"))
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except PyMongoError as exc:
            raise CommandError(f"nothing was imported: MongoDB failed ({exc})") from None
        if errors:
            self.stderr.write("\n".join(errors))
            raise CommandError(f"{len(errors)} of {len(rows)} rows have errors; nothing was imported")
        self.stdout.write(self.style.SUCCESS(f"Imported {stored} entries into '{target.slug}'."))
