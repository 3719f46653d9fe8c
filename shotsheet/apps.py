from django.apps import AppConfig


class ShotsheetConfig(AppConfig):
    name = "shotsheet"
