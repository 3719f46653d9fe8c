"""Entry forms generated from a schema version: one Django form class per version."""

from functools import lru_cache

import orjson
from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from .choices import choices_for
from .models import Field
from .numbers import AUTO, COMMA, DECIMAL_MARKS, THOUSANDS_SHAPED, NotANumber, NumberError, parse_number
from .schema import FieldDef, field_defs


def choices_of(field: FieldDef) -> list[tuple[str, str]]:
    if field.choice_source:
        return []  # resolved per form by EntryForm, so a changed list needs no new form class
    return [(c.strip(), c.strip()) for c in field.choices.splitlines() if c.strip()]


class CommaSeparatedField(forms.CharField):
    """A multi-choice typed by hand (its list is unavailable): values separated by commas."""

    def to_python(self, value):
        return [v.strip() for v in super().to_python(value).split(",") if v.strip()]


class TypedNumberMixin:
    """A number typed as text and read with the sheet's decimal mark (numbers.py).

    A text input, not a number input: Chromium's number input dropped a typed comma (3,7 → 37).
    """

    def __init__(self, *, decimal_mark: str = AUTO, **kwargs):
        self.decimal_mark = decimal_mark
        attrs = {"inputmode": "decimal", "autocomplete": "off"}
        super().__init__(widget=forms.TextInput(attrs=attrs), **kwargs)

    def to_python(self, value):
        if not isinstance(value, str) or value.strip() in self.empty_values:
            return super().to_python(value)  # empty, or already a number (an XLSX cell)
        try:
            return self.number(parse_number(value, self.decimal_mark))
        except NotANumber:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        except NumberError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None

    def prepare_value(self, value):
        """A stored number shown with the sheet's decimal mark, so saving it again reads it back.

        With "comma or point", 12.375 shown as `12.375` could be 12375, and every save of the entry
        (a comment only, or a sticky value) was refused: it is shown as `12.3750`."""
        if not isinstance(value, float):
            return value
        text = str(value).replace(".", ",") if self.decimal_mark == COMMA else str(value)
        if self.decimal_mark == AUTO and THOUSANDS_SHAPED.fullmatch(text.lstrip("-")):
            text += "0"
        return text


class TypedFloatField(TypedNumberMixin, forms.FloatField):
    number = float


INT64 = (-(2**63), 2**63 - 1)  # what MongoDB (BSON) stores as an integer


class TypedIntegerField(TypedNumberMixin, forms.IntegerField):
    def number(self, value):
        if value != value.to_integral_value():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(value)

    def validate(self, value):
        """Within int64, from the form and the importer alike: a larger one passed and BSON raised
        OverflowError on saving (a 500)."""
        super().validate(value)
        if value is not None and not INT64[0] <= value <= INT64[1]:
            raise forms.ValidationError(
                f"{value} is beyond what an integer field holds ({INT64[0]:,} to {INT64[1]:,}).", code="int64"
            )


class EntryForm(forms.Form):
    """Base of the generated entry forms: fills in choice lists that come from a wiki or a sheet."""

    sourced: dict[str, FieldDef] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, field in self.sourced.items():
            listing = choices_for(field.choice_source)
            held = self.initial.get(key)  # what an entry already holds stays a valid choice
            held = held if isinstance(held, list) else [held] if held not in (None, "") else []
            values = listing.values + [str(v) for v in held if str(v) not in listing.values]
            form_field = self.fields[key]
            if values:
                options = [(v, v) for v in values]
                form_field.choices = options if field.type == Field.Type.MULTI_CHOICE else [("", "—")] + options
            else:  # no list at all (the wiki never answered): entry must not be blocked, so type it
                text_class = CommaSeparatedField if field.type == Field.Type.MULTI_CHOICE else forms.CharField
                form_field = self.fields[key] = text_class(
                    label=form_field.label, required=form_field.required, help_text=form_field.help_text
                )
            if listing.note:
                form_field.help_text = " ".join(filter(None, [form_field.help_text, listing.note]))


def range_hint(field: FieldDef) -> str:
    """What a number may be, said before it is typed: "0 to 100 J", "at least 0 J", "in J"."""
    unit = f" {field.unit}" if field.unit else ""
    low, high = (f"{v:g}" if v is not None else None for v in (field.min_value, field.max_value))
    if low is not None and high is not None:
        return f"{low} to {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    if high is not None:
        return f"at most {high}{unit}"
    return f"in{unit}" if unit else ""


def bound_messages(field: FieldDef) -> dict:
    """Django's "Ensure this value is less than or equal to 100." with the unit and the reason."""
    unit = f" {field.unit}" if field.unit else ""
    return {
        "min_value": f"Below the minimum of %(limit_value)s{unit}.",
        "max_value": f"Above the maximum of %(limit_value)s{unit}.",
        "invalid": f"Enter a number{f' (in{unit})' if unit else ''}.",
    }


def form_field(field: FieldDef, decimal_mark: str = AUTO) -> forms.Field:
    hint = range_hint(field) if field.numeric else ""
    common = {
        "label": field.heading,
        "required": field.required,
        "help_text": " · ".join(filter(None, [hint, field.help_text])),
    }
    bounds = {k: v for k, v in (("min_value", field.min_value), ("max_value", field.max_value)) if v is not None}
    kind = field.type
    if kind == Field.Type.INTEGER:
        return TypedIntegerField(
            **common,
            **{k: int(v) for k, v in bounds.items()},
            decimal_mark=decimal_mark,
            error_messages=bound_messages(field)
            | {"invalid": f"Enter a whole number{f' (in {field.unit})' if field.unit else ''}."},
        )
    if kind == Field.Type.FLOAT:
        return TypedFloatField(**common, **bounds, decimal_mark=decimal_mark, error_messages=bound_messages(field))
    if kind == Field.Type.BOOLEAN:
        return forms.BooleanField(**{**common, "required": False})
    if kind == Field.Type.CHOICE:
        return forms.ChoiceField(**common, choices=[("", "—")] + choices_of(field))
    if kind == Field.Type.MULTI_CHOICE:
        return forms.MultipleChoiceField(**common, choices=choices_of(field), widget=forms.CheckboxSelectMultiple)
    if kind == Field.Type.DATETIME:  # typed and shown in the lab's zone (Django's current time zone)
        zone = f"lab time, {settings.TIME_ZONE}"
        return forms.DateTimeField(
            **{**common, "help_text": " · ".join(filter(None, [common["help_text"], zone]))},
            widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        )
    if kind == Field.Type.JSON:
        return forms.JSONField(**common)
    validators = [RegexValidator(field.pattern, f"Does not match the pattern {field.pattern}")] if field.pattern else []
    widget = forms.Textarea(attrs={"rows": 2}) if kind == Field.Type.LONG_TEXT else None
    return forms.CharField(**common, validators=validators, widget=widget)


@lru_cache(maxsize=256)
def _form_class(fields_json: bytes, decimal_mark: str) -> type[forms.Form]:
    fields = field_defs(orjson.loads(fields_json))
    attrs = {f.key: form_field(f, decimal_mark) for f in fields if not f.archived}
    for f in fields:
        if f.relay_value and not f.archived:  # the entry form's script fills it for the shot
            attrs[f.key].widget.attrs["data-relay"] = f.relay_value
    attrs["shot_key"] = forms.CharField(
        required=False, max_length=100, label="Shot key", help_text="Prefilled from the relay's latest shot."
    )
    attrs["comment"] = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    attrs["sourced"] = {f.key: f for f in fields if f.choice_source and not f.archived}
    attrs["field_order"] = ["shot_key"]  # first: the shot an entry is about, then the sheet's fields in order
    return type("EntryForm", (EntryForm,), attrs)


def entry_form_class(fields: list[FieldDef | dict], decimal_mark: str = AUTO) -> type[forms.Form]:
    """The form class of one schema version (its fields, or their stored snapshot) and decimal mark
    (cached: versions never change)."""
    return _form_class(orjson.dumps(field_defs(fields)), decimal_mark)


def entry_values(form: forms.Form, fields: list[FieldDef]) -> dict:
    """The cleaned values with native types (numbers, booleans, datetimes, lists, objects)."""
    return {f.key: form.cleaned_data.get(f.key) for f in fields if not f.archived}


def initial_values(fields: list[FieldDef]) -> dict:
    initial = {}
    for f in fields:
        if f.default:
            initial[f.key] = (f.default.lower() in ("1", "true", "yes")) if f.type == Field.Type.BOOLEAN else f.default
    return initial


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV (UTF-8) or XLSX, as the lab keeps it: title rows and group headers "
        "are fine. Next you see where each column goes, before anything is "
        "imported. Bigger logs: manage.py import_entries."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".xlsx", ".xlsm")):
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        limit = settings.SHOTSHEET_IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file has {upload.size / 1e6:.1f} MB; the web takes up to "
                f"{limit / 1e6:.1f} MB. Use manage.py import_entries."
            )
        return upload


class ImportOptionsForm(forms.Form):
    """How the file is read (the preview's choices besides each column's target)."""

    header_row = forms.IntegerField(
        min_value=1, label="Header row", widget=forms.NumberInput(attrs={"class": "form-control form-control-sm"})
    )
    shown_header_row = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    decimal_mark = forms.ChoiceField(
        choices=DECIMAL_MARKS,
        label="Numbers typed as text",
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
    date_order = forms.ChoiceField(
        choices=[
            ("auto", "as the file shows, refuse what is ambiguous"),
            ("dmy", "day/month/year (24/11/2026)"),
            ("mdy", "month/day/year (11/24/2026)"),
        ],
        label="Dates with slashes",
        help_text="Dotted dates are always day.month.year.",
        widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
    )
