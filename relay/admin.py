from django.contrib import admin

from .models import RelayInput


@admin.register(RelayInput)
class RelayInputAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "mode", "topics", "parser", "source", "time_zone", "enabled"]
    list_editable = ["enabled"]
