"""A stored number saves again unchanged (review of issue 10): the edit form shows it so that the
sheet's decimal mark reads it back as the same number; integer fields stay within what MongoDB
stores, and exponents within what a float holds."""

import io
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.core.management import CommandError, call_command

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
def test_an_entry_holding_a_thousands_shaped_number_saves_again_unchanged(
    admin_client, sheet, make_entry, mongo_db, decimal_mark, energy
):
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


@pytest.mark.parametrize(
    "typed, message",
    [
        ("1e400000", "&#x27;1e400000&#x27; has an exponent beyond ±308: no field holds such a number."),
        (
            "9223372036854775808",
            "9223372036854775808 is beyond what an integer field holds "
            "(-9,223,372,036,854,775,808 to 9,223,372,036,854,775,807).",
        ),
        ("-1e19", "-10000000000000000000 is beyond what an integer field holds"),
    ],
)
def test_an_integer_beyond_int64_or_an_exponent_beyond_a_float_is_a_form_error(
    admin_client, sheet, mongo_db, typed, message
):
    response = admin_client.post("/sheets/test/new/", {"target": "Al", "energy": "1", "shots_on_target": typed})
    assert response.status_code == 200 and message in response.content.decode()
    assert mongo_db["entries"].count_documents({}) == 0


def test_the_importer_refuses_an_integer_beyond_int64_and_a_huge_exponent(sheet, mongo_db, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "shot_key,Target,Energy [J],Shots on target\nTST-1,Al,1e400000,1\n"
        "TST-2,Al,1,9223372036854775808\nTST-3,Al,1,9223372036854775807\n"
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 of 3 rows have errors"):
        call_command("import_entries", "test", str(path), stdout=out, stderr=out)
    assert "1 row in Energy [J]: exponent beyond ±308 — C2 '1e400000'" in out.getvalue()
    assert "1 row in Shots on target: 9223372036854775808 is beyond what an integer field holds" in out.getvalue()


def test_a_sticky_thousands_shaped_number_saves_in_the_next_entry(admin_client, sheet, make_entry, mongo_db):
    sheet.fields.filter(key="energy").update(sticky=True)
    make_entry(sheet, energy=12.375)
    values = form_values(admin_client.get("/sheets/test/new/").content.decode())
    assert values["energy"] == "12.3750"
    response = admin_client.post("/sheets/test/new/", values)
    assert response.status_code == 302, response.content.decode()
    assert mongo_db["entries"].count_documents({"values.energy": 12.375}) == 2
