from django.apps import AppConfig
from django.conf import settings


class ShotsheetConfig(AppConfig):
    name = "shotsheet"

    def web_process_started(self) -> None:
        """Called by labbook/asgi.py: read the active sheets' tables ahead (SHOTSHEET_WARM_TABLES),
        so the first page view after a restart does not wait for them. Not in `ready()`: the relay
        and watch processes and every management command have no table to serve."""
        if settings.SHOTSHEET_WARM_TABLES:
            from . import table

            table.warm_in_background()
