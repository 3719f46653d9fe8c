from django.contrib import admin

from .models import Route


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "topic",
        "topic_is_regex",
        "collection",
        "id_strategy",
        "on_duplicate",
        "enabled",
        "updated",
    ]
    list_filter = ["enabled", "id_strategy", "on_duplicate"]
    list_editable = ["enabled"]
    search_fields = ["name", "topic", "collection"]
