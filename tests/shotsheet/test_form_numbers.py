"""A stored number saves again unchanged (review of issue 10): the edit form shows it so that the
sheet's decimal mark reads it back as the same number; integer fields stay within what MongoDB
stores, and exponents within what a float holds."""

from html.parser import HTMLParser

from decimal import Decimal

import pytest

from shotsheet.forms import TypedFloatField
from shotsheet.models import Sheet
from shotsheet.numbers import NumberError, parse_number


class FormValues(HTMLParser):
    """The values a browser would send for the entry form as rendered (inputs, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "checkbox"):
            self.values[attrs["name"]] = attrs.get("value") or ""
        elif tag == "input" and attrs.get("type") == "checkbox" and "checked" in attrs:
            self.values[attrs["name"]] = attrs.get("value", "on")
        elif tag == "select":
            self.select = attrs.get("name")
        elif tag == "option" and self.select and "selected" in attrs:
            self.values[self.select] = attrs.get("value", "")
        elif tag == "textarea":
            self.textarea = attrs.get("name")
            self.values[self.textarea] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data.removeprefix("\n")


def form_values(html: str) -> dict[str, str]:
    parser = FormValues()
    parser.feed(html)
    return parser.values


@pytest.mark.parametrize("decimal_mark", ["auto", "comma", "point"])
@pytest.mark.parametrize("energy", [12.375, 1.064, 99.5, 100.0])
def test_an_entry_holding_a_thousands_shaped_number_saves_again_unchanged(admin_client, sheet, make_entry, mongo_db,
                                                                          decimal_mark, energy):
    Sheet.objects.filter(pk=sheet.pk).update(decimal_mark=decimal_mark)
    entry = make_entry(sheet, energy=energy, shots_on_target=1000)
    url = f"/sheets/test/entries/{entry['_id']}/"
    values = form_values(admin_client.get(url).content.decode())
    response = admin_client.post(url, {**values, "comment": "only the comment changed"})
    assert response.status_code == 302, response.content.decode()
    stored = mongo_db["entries"].find_one({"_id": entry["_id"]})
    assert stored["values"]["energy"] == energy and stored["values"]["shots_on_target"] == 1000
    assert stored["comment"] == "only the comment changed"


def test_a_number_that_could_be_read_two_ways_says_how_to_write_it():
    with pytest.raises(NumberError, match=r"'12.375' could be 12.375 or 12375: write 12.3750 or 12375"):
        parse_number("12.375")
    with pytest.raises(NumberError, match=r"'-1,064' could be -1.064 or -1064: write -1,0640 or -1064"):
        parse_number("-1,064")
    assert TypedFloatField().prepare_value(-12.375) == "-12.3750"
    assert parse_number("-12.3750") == Decimal("-12.375")
