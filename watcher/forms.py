from django import forms

from . import store


class EventSearchForm(forms.Form):
    collection = forms.ChoiceField()
    shot_key = forms.CharField(required=False, max_length=200)
    source = forms.CharField(required=False, max_length=200)
    kind = forms.CharField(required=False, max_length=100)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    field = forms.RegexField(required=False, regex=store.FIELD_PATH, max_length=200,
                             error_messages={"invalid": "A field name: letters, digits, _ and dots."})
    value = forms.CharField(required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collection"].choices = [(name, name) for name in store.routed_collections()]

    def query(self) -> store.EventQuery:
        return store.EventQuery(**self.cleaned_data)
