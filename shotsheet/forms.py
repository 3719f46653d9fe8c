"""Entry forms generated from a schema version: one Django form class per version."""

from functools import lru_cache

import orjson
from django import forms
from django.core.validators import RegexValidator

from .models import Field


def choices_of(field: dict) -> list[tuple[str, str]]:
    return [(c.strip(), c.strip()) for c in field["choices"].splitlines() if c.strip()]


def form_field(field: dict) -> forms.Field:
    label = f"{field['label']} [{field['unit']}]" if field["unit"] else field["label"]
    common = {"label": label, "required": field["required"], "help_text": field["help_text"]}
    bounds = {k: v for k, v in (("min_value", field["min_value"]), ("max_value", field["max_value"])) if v is not None}
    kind = field["type"]
    if kind == Field.Type.INTEGER:
        return forms.IntegerField(**common, **{k: int(v) for k, v in bounds.items()})
    if kind == Field.Type.FLOAT:
        return forms.FloatField(**common, **bounds, widget=forms.NumberInput(attrs={"step": "any"}))
    if kind == Field.Type.BOOLEAN:
        return forms.BooleanField(**{**common, "required": False})
    if kind == Field.Type.CHOICE:
        return forms.ChoiceField(**common, choices=[("", "—")] + choices_of(field))
    if kind == Field.Type.MULTI_CHOICE:
        return forms.MultipleChoiceField(**common, choices=choices_of(field), widget=forms.CheckboxSelectMultiple)
    if kind == Field.Type.DATETIME:
        return forms.DateTimeField(**common, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    if kind == Field.Type.JSON:
        return forms.JSONField(**common)
    validators = [RegexValidator(field["pattern"], f"Does not match the pattern {field['pattern']}")] \
        if field["pattern"] else []
    widget = forms.Textarea(attrs={"rows": 2}) if kind == Field.Type.LONG_TEXT else None
    return forms.CharField(**common, validators=validators, widget=widget)


@lru_cache(maxsize=256)
def _form_class(fields_json: bytes) -> type[forms.Form]:
    fields = orjson.loads(fields_json)
    attrs = {f["key"]: form_field(f) for f in fields if not f["archived"]}
    attrs["shot_key"] = forms.CharField(required=False, max_length=100, label="Shot key",
                                        help_text="Prefilled from the relay's latest shot.")
    attrs["comment"] = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    return type("EntryForm", (forms.Form,), attrs)


def entry_form_class(fields: list[dict]) -> type[forms.Form]:
    """The form class of one schema version (cached: versions never change)."""
    return _form_class(orjson.dumps(fields))


def entry_values(form: forms.Form, fields: list[dict]) -> dict:
    """The cleaned values with native types (numbers, booleans, datetimes, lists, objects)."""
    return {f["key"]: form.cleaned_data.get(f["key"]) for f in fields if not f["archived"]}


def initial_values(fields: list[dict]) -> dict:
    initial = {}
    for f in fields:
        if f["default"]:
            initial[f["key"]] = (f["default"].lower() in ("1", "true", "yes")) \
                if f["type"] == Field.Type.BOOLEAN else f["default"]
    return initial
