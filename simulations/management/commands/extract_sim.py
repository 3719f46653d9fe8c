from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.envelope import parse_shot_key
from shotsheet import selectors as shotsheet_selectors
from simulations.services import extract_runs


class Command(BaseCommand):
    help = "Extract the metadata of simulation runs (WarpX, PIConGPU, SMILEI folders) into labbook."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="run folders")
        parser.add_argument("--experiment", help="the experiment the runs belong to")
        parser.add_argument("--shots", help="shot keys the runs model, comma-separated")
        parser.add_argument("--sheet", help="the shot sheet (its slug) the runs belong with")
        parser.add_argument("--dry-run", action="store_true", help="print what is found, store nothing")
        parser.add_argument("--settle", type=float, default=60, help="seconds a run must be unchanged (default 60)")

    def handle(self, *args, paths, experiment=None, shots=None, sheet=None, dry_run=False, settle=60, **options):
        if sheet is not None and not shotsheet_selectors.sheet_exists(sheet):
            raise CommandError(f"no shot sheet '{sheet}' (give its slug, as in /sheets/<slug>/)")
        shot_keys = [key.strip() for key in shots.split(",") if key.strip()] if shots is not None else None
        bad = [key for key in shot_keys or [] if not parse_shot_key(key)]
        if bad:
            raise CommandError(f"not shot keys: {', '.join(bad)} (e.g. LWFA-20261124-000042)")
        progress = tqdm(total=len(paths), unit="run", disable=len(paths) < 2, file=self.stderr)
        results = extract_runs(
            paths,
            experiment=experiment,
            shot_keys=shot_keys,
            sheet=sheet,
            store_runs=not dry_run,
            settle_seconds=settle,
            progress=lambda: progress.update(1),
        )
        progress.close()
        for result in results:
            if result.error:
                self.stderr.write(f"✗ {result.error}")
            else:
                run = result.run
                found = ", ".join(
                    f"{k} {v['value']:g} {v['unit']}"
                    for k, v in run["summary"].items()
                    if isinstance(v.get("value"), int | float)
                )
                self.stdout.write(
                    f"{'found' if dry_run else 'stored'} {run['path']}: {run['software']} {run['software_version']}, "
                    f"{len(run.get('series', []))} openPMD series, {len(run['parameters'])} parameters"
                    + (f", {found}" if found else "")
                    + (f", shots {', '.join(result.shot_keys)}" if result.shot_keys else "")
                )
        failed = [r for r in results if r.error]
        if failed:
            others = "found" if dry_run else "stored"
            raise CommandError(
                f"{len(failed)} of {len(results)} runs not extracted (see above); the others are {others}"
            )
