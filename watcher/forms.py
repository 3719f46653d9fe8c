from datetime import UTC, datetime

from django import forms

from . import store

# The times a search can name: in UTC they must exist (0001-01-01 in a zone east of UTC does not) and
# have the four-digit years the time index's minute keys sort by.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "This time is out of the range the watcher can search (years 1000 to 9999, UTC)."


def searchable_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError(OUT_OF_RANGE) from None
    if utc < EARLIEST:
        raise forms.ValidationError(OUT_OF_RANGE)
    return utc


class EventSearchForm(forms.Form):
    collection = forms.ChoiceField()
    shot_key = forms.CharField(required=False, max_length=200)
    source = forms.CharField(required=False, max_length=200)
    kind = forms.CharField(required=False, max_length=100)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    field = forms.RegexField(
        required=False,
        regex=store.FIELD_PATH,
        max_length=200,
        error_messages={"invalid": "A field name: letters, digits, _ and dots."},
    )
    value = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collection"].choices = [(name, name) for name in store.routed_collections()]

    def clean_since(self) -> datetime | None:
        return searchable_time(self.cleaned_data["since"])

    def clean_until(self) -> datetime | None:
        return searchable_time(self.cleaned_data["until"])

    def query(self) -> store.EventQuery:
        return store.EventQuery(**self.cleaned_data)
