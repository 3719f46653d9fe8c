from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: the shot envelope, times, the document store, the run loop, live sends."""

    name = "core"
    verbose_name = "labbook core"
