from django.contrib import admin

from .models import DaqProfile, Field, Sheet


class FieldInline(admin.TabularInline):
    model = Field
    extra = 1
    fields = ["position", "key", "label", "type", "unit", "required", "min_value", "max_value",
              "choices", "sticky", "archived"]


@admin.register(Sheet)
class SheetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "experiment", "active"]
    list_filter = ["active", "experiment"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "experiment"]
    filter_horizontal = ["view_groups", "add_groups", "change_groups"]
    inlines = [FieldInline]


@admin.register(DaqProfile)
class DaqProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "updated"]
