from adminsortable2.admin import SortableAdminBase, SortableStackedInline
from django.contrib import admin, messages
from django.db import models
from django.forms import Textarea
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import path

from . import choices
from .designer import designed_fields
from .forms import entry_form_class
from .models import ChoiceSource, DaqProfile, Field, Sheet
from .numbers import AUTO
from .schema import save_version

GROUPS = ["view_groups", "add_groups", "change_groups"]
COMMON = (("key", "label", "type"), ("unit", "required"), ("min_value", "max_value"), "choices")
MORE = ("choice_source", "relay_value", "sticky", "default", "help_text", "pattern", "archived")


class FieldInline(SortableStackedInline):
    """The form designer: the fields in the order of the entry form (drag to reorder), each with
    the settings used most first and the rest folded; archived fields are in their own section."""

    model = Field
    ordering = ["position"]  # the field adminsortable2 drags
    extra = 0
    verbose_name = "field of the entry form"
    verbose_name_plural = "fields of the entry form (drag ⇅ to reorder)"
    fieldsets = [
        (None, {"fields": (*COMMON, "position")}),  # position: hidden, renumbered by dragging
        ("More settings", {"fields": MORE, "classes": ["collapse"]}),
    ]
    formfield_overrides = {models.TextField: {"widget": Textarea(attrs={"rows": 2, "cols": 40})}}

    def get_queryset(self, request):
        return super().get_queryset(request).filter(archived=False)


class ArchivedFormSet(BaseInlineFormSet):
    @classmethod
    def get_default_prefix(cls) -> str:
        return "archived_fields"  # beside the active fields' inline of the same model


class ArchivedFieldInline(admin.StackedInline):
    model = Field
    formset = ArchivedFormSet
    extra = 0
    classes = ["collapse"]
    verbose_name = "archived field"
    verbose_name_plural = "archived fields (kept for old entries; untick “archived” to bring one back)"
    fieldsets = [
        (None, {"fields": (("key", "label", "type"), ("unit", "archived"))}),
        ("More settings", {"fields": COMMON[2:] + MORE[:-1] + ("required", "position"), "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(archived=True)


@admin.register(Sheet)
class SheetAdmin(SortableAdminBase, admin.ModelAdmin):
    list_display = ["name", "slug", "experiment", "active"]
    list_filter = ["active", "experiment"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "experiment"]
    filter_horizontal = ["view_groups", "add_groups", "change_groups"]
    fieldsets = [
        (None, {"fields": (("name", "slug"), ("experiment", "active"), ("decimal_mark", "daq_profile"))}),
        ("Description", {"fields": ["description"], "classes": ["collapse"]}),
        ("Who may view, add and change entries", {"fields": GROUPS, "classes": ["collapse"]}),
    ]
    inlines = [FieldInline, ArchivedFieldInline]
    change_form_template = "admin/shotsheet/sheet/change_form.html"

    class Media:
        css = {"all": ["shotsheet/form_designer.css"]}
        js = ["shotsheet/form_designer.js"]

    def get_urls(self):
        preview = path("preview/", self.admin_site.admin_view(self.preview), name="shotsheet_sheet_preview")
        return [preview, *super().get_urls()]

    def preview(self, request):
        """The entry form as the fields being edited would make it (nothing is saved): the
        designer's live preview, drawn by the same form code as the entry page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        fields, notes = designed_fields(request.POST)
        form = entry_form_class(fields, request.POST.get("decimal_mark") or AUTO)()
        return render(request, "shotsheet/form_preview.html", {"form": form, "notes": notes})

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
