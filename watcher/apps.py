from django.apps import AppConfig


class WatcherConfig(AppConfig):
    name = "watcher"

    def ready(self) -> None:
        from core import mongo

        from .indexes.handmade import INDEX_DATABASE

        mongo.declare_companion(INDEX_DATABASE)  # the hand-made indexes' own database
