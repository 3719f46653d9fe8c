from django.contrib import admin, messages

from . import choices
from .models import ChoiceSource, DaqProfile, Field, Sheet
from .schema import save_version


class FieldInline(admin.TabularInline):
    model = Field
    extra = 1
    fields = [
        "position",
        "key",
        "label",
        "type",
        "unit",
        "required",
        "min_value",
        "max_value",
        "pattern",
        "default",
        "help_text",
        "choices",
        "choice_source",
        "relay_value",
        "sticky",
        "archived",
    ]


@admin.register(Sheet)
class SheetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "experiment", "active"]
    list_filter = ["active", "experiment"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "experiment"]
    filter_horizontal = ["view_groups", "add_groups", "change_groups"]
    inlines = [FieldInline]

    def save_related(self, request, form, formsets, change) -> None:
        """The fields are saved (the inlines): their schema version now, not at some page view."""
        super().save_related(request, form, formsets, change)
        save_version(form.instance)


@admin.register(DaqProfile)
class DaqProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "updated"]


@admin.register(ChoiceSource)
class ChoiceSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "title", "sheet", "field_key", "refresh_seconds"]
    list_filter = ["kind"]
    actions = ["fetch_now"]

    def save_model(self, request, obj, form, change) -> None:
        """A source is part of its fields' definition: their sheets get a new schema version."""
        super().save_model(request, obj, form, change)
        for sheet in Sheet.objects.filter(fields__choice_source=obj).distinct():
            save_version(sheet)

    @admin.action(description="Fetch the lists now")
    def fetch_now(self, request, queryset):
        for source in queryset:
            cached = choices.refresh(source.describe())
            if cached.get("error"):
                self.message_user(request, f"{source}: {cached['error']}", messages.WARNING)
            else:
                self.message_user(
                    request,
                    f"{source}: {len(cached['values'])} choices "
                    f"(revision {cached.get('revision') or '–'}): "
                    f"{', '.join(cached['values'][:10])}",
                )
