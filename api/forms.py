from django import forms
from django.utils import timezone


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. Grafana or my notebook.")
    expires = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional; in the lab's time zone. Without one the token works until revoked.",
    )

    def clean_expires(self):
        expires = self.cleaned_data["expires"]
        if expires is not None and expires <= timezone.now():
            raise forms.ValidationError("That time has passed.")
        return expires
