"""Create the demo sheet and an admin account, once (idempotent)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from shotsheet import store
from shotsheet.models import Field, Sheet
from shotsheet.schema import save_version

DEMO_FIELDS = [
    # key, label, type, unit, extra
    ("target", "Target", Field.Type.CHOICE, "", {"choices": "Al 10 µm\nCu 5 µm\nTi 20 µm\nCH 2 µm", "sticky": True}),
    ("energy_on_target", "Energy on target", Field.Type.FLOAT, "J", {"min_value": 0, "max_value": 100}),
    ("focus_z", "Focus position", Field.Type.FLOAT, "µm", {"sticky": True}),
    ("gas_pressure", "Gas pressure", Field.Type.FLOAT, "mbar", {"min_value": 0}),
    ("shot_ok", "Shot OK", Field.Type.BOOLEAN, "", {"default": "true"}),
]


class Command(BaseCommand):
    help = "Create the demo shot sheet and an admin account if they do not exist yet."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("LABBOOK_ADMIN_USER", "admin"))

    @transaction.atomic
    def handle(self, *args, username, **options):
        sheet, created = Sheet.objects.get_or_create(
            slug="demo",
            defaults={
                "name": "Demo shot sheet",
                "experiment": "DEMO",
                "description": "A demo sheet for the simulated laser.",
            },
        )
        if created:
            for position, (key, label, type_, unit, extra) in enumerate(DEMO_FIELDS):
                Field.objects.create(
                    sheet=sheet, key=key, label=label, type=type_, unit=unit, position=position, **extra
                )
            save_version(sheet)  # as the admin's save of a sheet does
            self.stdout.write(f"Created the demo sheet '{sheet.name}' with {len(DEMO_FIELDS)} fields.")

        store.ensure_indexes()

        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            password = os.environ.get("LABBOOK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(
                self.style.SUCCESS(f"Created the admin account: user '{username}', password '{password}'")
            )
        else:
            self.stdout.write(f"Admin account '{username}' exists (password unchanged).")
