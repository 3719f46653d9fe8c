"""Shot-sheet configuration edited in the Django admin. Entries themselves live in MongoDB."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from .numbers import AUTO, DECIMAL_MARKS


class DaqProfile(models.Model):
    """A named DAQ configuration; the one current for a sheet is copied into each new entry."""

    name = models.CharField(max_length=200, unique=True)
    config = models.JSONField(help_text="The DAQ configuration, as JSON.")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ChoiceSource(models.Model):
    """Where a choice field's list comes from when it is not typed in: a wiki or another sheet."""

    class Kind(models.TextChoices):
        WIKI_PAGE = "wiki_page", "MediaWiki page (its list items)"
        WIKI_CATEGORY = "wiki_category", "MediaWiki category (its member pages)"
        SHEET_FIELD = "sheet_field", "Values of another sheet's field"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    wiki_url = models.URLField(
        blank=True, help_text="The wiki's script path, where api.php lives, e.g. https://wiki.example.org/w/"
    )
    title = models.CharField(max_length=255, blank=True, help_text="Page title, or category name without 'Category:'.")
    sheet = models.ForeignKey(
        "Sheet",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="For another sheet's field: the sheet.",
    )
    field_key = models.SlugField(max_length=60, blank=True, help_text="For another sheet's field: its key.")
    refresh_seconds = models.PositiveIntegerField(default=300, help_text="How old the cached list may get.")

    def clean(self) -> None:
        if self.kind == self.Kind.SHEET_FIELD:
            if not self.sheet or not self.field_key:
                raise ValidationError("Choose the sheet and the key of its field.")
        elif not self.wiki_url or not self.title:
            raise ValidationError("A wiki source needs the wiki's URL and the page or category title.")

    def describe(self) -> dict:
        """What the schema snapshot records of the source (also the key of its cached list)."""
        if self.kind == self.Kind.SHEET_FIELD:
            return {
                "kind": self.kind,
                "sheet": self.sheet.slug if self.sheet else "",
                "field": self.field_key,
                "refresh_seconds": self.refresh_seconds,
            }
        return {
            "kind": self.kind,
            "wiki_url": self.wiki_url,
            "title": self.title,
            "refresh_seconds": self.refresh_seconds,
        }

    def __str__(self) -> str:
        return self.name


class SheetQuerySet(models.QuerySet):
    def viewable_by(self, user) -> models.QuerySet:
        """The sheets `allows(user, "view")`, in one query (not one per sheet with view groups)."""
        if user.is_superuser:
            return self
        return self.filter(Q(view_groups__isnull=True) | Q(view_groups__in=user.groups.all())).distinct()


class Sheet(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    experiment = models.CharField(max_length=100, help_text="Experiment or campaign id; it prefixes every shot key.")
    active = models.BooleanField(default=True)
    decimal_mark = models.CharField(
        max_length=5,
        choices=DECIMAL_MARKS,
        default=AUTO,
        help_text="How numbers are typed: a value that could be read two ways is refused, never guessed.",
    )
    daq_profile = models.ForeignKey(
        DaqProfile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="The current DAQ configuration, snapshotted into every new entry.",
    )
    view_groups = models.ManyToManyField(
        Group, blank=True, related_name="+", help_text="Who may see the sheet (none chosen: every user)."
    )
    add_groups = models.ManyToManyField(
        Group, blank=True, related_name="+", help_text="Who may add entries (none chosen: every user)."
    )
    change_groups = models.ManyToManyField(
        Group, blank=True, related_name="+", help_text="Who may edit entries (none chosen: every user)."
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = SheetQuerySet.as_manager()

    class Meta:
        ordering = ["-active", "name"]

    def allows(self, user, action: str) -> bool:
        """Per-sheet permission through groups: 'view', 'add' or 'change'."""
        if user.is_superuser:
            return True
        groups = getattr(self, f"{action}_groups").all()
        if action != "view" and not self.allows(user, "view"):
            return False
        return not groups or user.groups.filter(pk__in=groups).exists()

    def __str__(self) -> str:
        return self.name


# Names an entry uses itself (its document's top-level keys, the export's columns, what the
# importer matches, the entry form's own inputs): a field with one of them as key or label would
# be confused with the entry's own value in exports, imports and the form. Compared case-blind.
RESERVED_NAMES = frozenset(
    {
        "_id",
        "sheet",
        "experiment",
        "schema_version",
        "values",
        "shot_key",
        "shot_number",
        "laser_ts_ns",
        "laser_ts",
        "author",
        "created",
        "updated",
        "comment",
        "rev",
        "history",
        "daq",
        "import_id",
        "voided",  # document, export column
        "entry",
        "shot",  # export column, import alias
        "overwrite",
        "save",
        "save_next",
        "sourced",
        "csrfmiddlewaretoken",  # entry form
    }
)


def reserved_name(text: str) -> bool:
    return text.strip().lower().replace(" ", "_") in RESERVED_NAMES


def heading(label: str, unit: str) -> str:
    """A field's heading wherever it is shown: 'Energy [J]', the label alone when there is no unit."""
    return f"{label} [{unit}]" if unit else label


class Field(models.Model):
    class Type(models.TextChoices):
        TEXT = "text", "Text"
        LONG_TEXT = "long_text", "Long text"
        INTEGER = "integer", "Integer"
        FLOAT = "float", "Float"
        BOOLEAN = "boolean", "Yes/no"
        CHOICE = "choice", "Choice"
        MULTI_CHOICE = "multi_choice", "Multiple choice"
        DATETIME = "datetime", "Date/time"
        JSON = "json", "JSON / DAQ block"

    sheet = models.ForeignKey(Sheet, related_name="fields", on_delete=models.CASCADE)
    key = models.SlugField(
        max_length=60, help_text="Stable key of the value in every entry; never changes once entries exist."
    )
    label = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.TEXT)
    unit = models.CharField(max_length=30, blank=True)
    required = models.BooleanField(default=False)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    pattern = models.CharField(max_length=200, blank=True, help_text="Regular expression for text values.")
    default = models.CharField(max_length=200, blank=True)
    help_text = models.CharField(max_length=300, blank=True)
    choices = models.TextField(blank=True, help_text="Static choices, one per line.")
    choice_source = models.ForeignKey(
        ChoiceSource,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Take the choices from a wiki or another sheet instead.",
    )
    relay_value = models.CharField(
        max_length=200,
        blank=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", "A dotted path of the shot envelope, e.g. values.energy_J"
            )
        ],
        help_text="Prefill from the relay's shot envelope (a dotted path, e.g. values.energy_J); editable in the form.",
    )
    sticky = models.BooleanField(default=False, help_text="Carried over from the previous entry.")
    archived = models.BooleanField(default=False, help_text="Hidden from new entries, kept for old ones.")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sheet", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["sheet", "key"], name="unique_field_key_per_sheet")]

    def __str__(self) -> str:
        return heading(self.label, self.unit)

    def clean(self) -> None:
        old_key = Field.objects.filter(pk=self.pk).values_list("key", flat=True).first() if self.pk else None
        # a key already stored in entries stays (it cannot change); its label can, and must
        checked = [("label", self.label)] + ([("key", self.key)] if self.key != old_key else [])
        reserved = {
            name: f"'{value}' is one of the entry's own names ({', '.join(sorted(RESERVED_NAMES))}); "
            f"choose another {name}."
            for name, value in checked
            if value and reserved_name(value)
        }
        if reserved:
            raise ValidationError(reserved)
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValidationError({"max_value": "The maximum is below the minimum."})
        if self.choice_source_id and self.type not in (self.Type.CHOICE, self.Type.MULTI_CHOICE):
            raise ValidationError({"choice_source": "Only choice fields take a choice source."})
        if self.pk and self.sheet_id:
            from . import store

            if old_key and old_key != self.key and store.has_entries(self.sheet.slug):
                raise ValidationError(
                    {
                        "key": f"The key '{old_key}' is stored in this sheet's entries and "
                        "cannot change; change the label instead."
                    }
                )


class SchemaVersion(models.Model):
    """A snapshot of a sheet's fields; every change to the fields makes a new one."""

    sheet = models.ForeignKey(Sheet, related_name="versions", on_delete=models.CASCADE)
    number = models.PositiveIntegerField()
    fields = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sheet", "-number"]
        constraints = [models.UniqueConstraint(fields=["sheet", "number"], name="unique_version_per_sheet")]

    def __str__(self) -> str:
        return f"{self.sheet.slug} v{self.number}"


class GridLayout(models.Model):
    """How one user arranged a sheet's grid: column order, widths and which are shown, and density."""

    class Density(models.TextChoices):
        COMPACT = "compact"
        COMFORTABLE = "comfortable"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sheet = models.ForeignKey(Sheet, on_delete=models.CASCADE, related_name="+")
    columns = models.JSONField(default=list, help_text='[{"field": "energy", "visible": true, "width": 120}, …]')
    density = models.CharField(max_length=12, choices=Density.choices, default=Density.COMPACT)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "sheet"], name="one_grid_layout_per_user_and_sheet")]

    def __str__(self) -> str:
        return f"{self.user} · {self.sheet}"
