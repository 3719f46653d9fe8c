"""SciCat configuration edited in the admin: the server labbook registers datasets with, and which
entries of which sheet become datasets. Secrets never live here: only the names of the environment
variables holding them. What was registered lives in MongoDB (catalogue/store.py)."""

import re
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.db import models

from .templating import TemplateError, names

FIELD_KEY = re.compile(r"^[-a-zA-Z0-9_]+$")


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Server(models.Model):
    class ApiVersion(models.TextChoices):
        V4 = "v4", "v4 (backend 4.x, /api/v4/datasets)"
        V3 = "v3", "v3 (/api/v3/datasets, raw dataset fields of v3)"

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(help_text="The backend's API root, e.g. https://scicat.example.org/api")
    api_version = models.CharField(max_length=2, choices=ApiVersion.choices, default=ApiVersion.V4)
    username_env = models.CharField(
        max_length=100,
        default="SCICAT_USERNAME",
        help_text="Name of the environment variable with the functional account's user name.",
    )
    password_env = models.CharField(
        max_length=100, default="SCICAT_PASSWORD", help_text="Name of the environment variable with its password."
    )
    token_env = models.CharField(
        max_length=100,
        default="SCICAT_TOKEN",
        blank=True,
        help_text="Name of an environment variable with a ready token, used when it is set (no login).",
    )
    owner = models.CharField(max_length=200, help_text="The datasets' owner (a user or the functional account).")
    owner_group = models.CharField(max_length=200)
    access_groups = models.CharField(max_length=500, blank=True, help_text="Comma-separated groups that may read.")
    contact_email = models.EmailField()
    principal_investigator = models.CharField(
        max_length=200, blank=True, help_text="v3 only (required there): the principal investigator."
    )
    creation_location = models.CharField(max_length=200, help_text="Where the data was taken, e.g. the lab's name.")
    pid_prefix = models.CharField(
        max_length=100,
        blank=True,
        help_text="The server's PID prefix (e.g. 20.500.12345): a pid is '<prefix>/<UUIDv5 of the entry>'.",
    )
    frontend_url = models.URLField(
        blank=True,
        help_text="SciCat's web frontend, for links to a dataset (empty: the dataset's API address).",
    )
    labbook_url = models.URLField(
        blank=True, help_text="This labbook's address, for the link from each dataset back to its entry."
    )
    files_per_block = models.PositiveIntegerField(default=1000, help_text="Files per OrigDatablock at most.")
    timeout_seconds = models.FloatField(default=10.0)
    enabled = models.BooleanField(default=True)
    register_simulations = models.BooleanField(
        default=False,
        help_text="Register simulation runs (manage.py extract_sim / watch_sims) here as derived datasets.",
    )

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url}, {self.api_version})"

    def dataset_url(self, pid: str) -> str:
        quoted = quote(pid, safe="")
        if self.frontend_url:
            return f"{self.frontend_url.rstrip('/')}/datasets/{quoted}"
        return f"{self.base_url.rstrip('/')}/{self.api_version}/datasets/{quoted}"

    def clean(self) -> None:
        if self.api_version == self.ApiVersion.V3 and not self.principal_investigator:
            raise ValidationError({"principal_investigator": "API v3 requires a principal investigator."})


class Rule(models.Model):
    """Which entries of a sheet become datasets, and how a dataset reads."""

    sheet = models.OneToOneField("shotsheet.Sheet", on_delete=models.CASCADE, related_name="+")
    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="rules")
    enabled = models.BooleanField(default=True)
    entry_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text='Only entries whose values equal these, e.g. {"target": "Al"}; {} takes every entry.',
    )
    require_shot_key = models.BooleanField(default=False, help_text="Only entries that name a shot.")
    name_template = models.CharField(max_length=300, default="{sheet_name} {shot_key}")
    source_folder_template = models.CharField(max_length=300, default="/data/{experiment}/{yyyymmdd}/{shot_number}")
    metadata_fields = models.CharField(
        max_length=1000, blank=True, help_text="Comma-separated field keys for scientificMetadata; empty: all."
    )
    include_shot = models.BooleanField(default=True, help_text="Add the relay's shot record and the shot's events.")
    keywords = models.CharField(max_length=500, blank=True, help_text="Comma-separated keywords.")

    def __str__(self) -> str:
        return f"catalogue rule of sheet {self.sheet_id}"

    def clean(self) -> None:
        errors = {}
        for name in ("name_template", "source_folder_template"):
            try:
                names(getattr(self, name))
            except TemplateError as exc:
                errors[name] = str(exc)
        if not isinstance(self.entry_filter, dict) or any(
            not FIELD_KEY.match(str(key)) or isinstance(value, dict | list) for key, value in self.entry_filter.items()
        ):
            errors["entry_filter"] = 'An object of field keys and plain values, e.g. {"target": "Al"}.'
        if self.sheet_id:  # a typo would drop a field from every dataset, or select no entry, without a word
            known = self.field_keys()
            for name, keys in (
                ("metadata_fields", comma_list(self.metadata_fields)),
                ("entry_filter", self.entry_filter),
            ):
                unknown = [key for key in keys if key not in known] if name not in errors else []
                if unknown:
                    errors[name] = f"The sheet has no field {', '.join(map(repr, unknown))}."
        if errors:
            raise ValidationError(errors)

    def field_keys(self) -> set[str]:
        """The keys of the sheet's fields, now and in every saved version."""
        keys = set(self.sheet.fields.values_list("key", flat=True))
        for fields in self.sheet.versions.values_list("fields", flat=True):
            keys.update(field["key"] for field in fields)
        return keys

    def selects(self, entry: dict) -> bool:
        if self.require_shot_key and not entry.get("shot_key"):
            return False
        values = entry.get("values") or {}
        return all(values.get(key) == wanted for key, wanted in self.entry_filter.items())
