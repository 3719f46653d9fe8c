"""Choice lists from a real MediaWiki (Debian's, on PHP's built-in server), pulled with mwclient."""

import pytest

from shotsheet import choices, schema
from shotsheet.forms import entry_form_class
from shotsheet.models import ChoiceSource, Field

from .mediawiki import edit_page, running_mediawiki


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    with running_mediawiki(tmp_path_factory.mktemp("wiki")) as url:
        edit_page(
            url,
            "Targets",
            "Targets of the campaign:\n* Aluminium\n* [[Copper foil|Copper]]\n# Gold\nNot a list line.\n* Aluminium\n",
        )
        for name in ("Laser A", "Laser B"):
            edit_page(url, name, f"{name}.\n[[Category:Lasers]]")
        yield url


def wiki_field(sheet, wiki_url: str, kind=ChoiceSource.Kind.WIKI_PAGE, title="Targets", key="target") -> dict:
    source = ChoiceSource.objects.create(
        name=f"{kind} {title}", kind=kind, wiki_url=f"{wiki_url}/", title=title, refresh_seconds=0
    )
    Field.objects.filter(sheet=sheet, key=key).update(choice_source=source)
    fields = schema.save_version(sheet).fields
    return {"fields": fields, "source": source.describe()}


def offered(form, key="target") -> list[str]:
    return [value for value, _ in form.fields[key].choices if value]


def test_a_wiki_pages_list_items_become_the_choices_cached_with_revision(sheet, wiki, mongo_db):
    setup = wiki_field(sheet, wiki)
    form = entry_form_class(setup["fields"])({"target": "Copper", "energy": "2"})
    assert offered(form) == ["Aluminium", "Copper", "Gold"]
    assert form.is_valid(), form.errors
    cached = mongo_db["choice_lists"].find_one({"_id": choices.source_key(setup["source"])})
    assert cached["values"] == ["Aluminium", "Copper", "Gold"] and cached["revision"] > 0 and cached["error"] is None

    edit_page(wiki, "Targets", "* Aluminium\n* Titanium\n")
    refreshed = choices.refresh(setup["source"])
    assert refreshed["values"] == ["Aluminium", "Titanium"] and refreshed["revision"] > cached["revision"]
    assert not entry_form_class(setup["fields"])({"target": "Copper", "energy": "2"}).is_valid()


def test_a_wiki_categorys_member_pages_become_the_choices(sheet, wiki):
    setup = wiki_field(sheet, wiki, kind=ChoiceSource.Kind.WIKI_CATEGORY, title="Category:Lasers")
    assert offered(entry_form_class(setup["fields"])()) == ["Laser A", "Laser B"]


def test_a_page_missing_from_the_wiki_is_reported_not_raised(sheet, wiki):
    setup = wiki_field(sheet, wiki, title="No such page")
    form = entry_form_class(setup["fields"])({"target": "Cu", "energy": "2"})
    assert "no page 'No such page' on the wiki" in form.fields["target"].help_text
    assert form.is_valid(), form.errors  # typed by hand: entry is never blocked


def test_when_the_wiki_goes_down_the_cached_list_is_used_and_the_form_says_so(admin_client, sheet, tmp_path, mongo_db):
    with running_mediawiki(tmp_path) as url:
        edit_page(url, "Targets", "* Aluminium\n* Copper\n")
        setup = wiki_field(sheet, url)
        assert offered(entry_form_class(setup["fields"])()) == ["Aluminium", "Copper"]
    # The wiki's server is stopped now; the list is due for a refresh (refresh_seconds=0).
    choices.refresh(setup["source"])
    form = entry_form_class(setup["fields"])()
    assert offered(form) == ["Aluminium", "Copper"]
    assert "The wiki is unreachable" in form.fields["target"].help_text
    page = admin_client.get("/sheets/test/new/").content.decode()
    assert "The wiki is unreachable" in page and "using the list of" in page
    response = admin_client.post("/sheets/test/new/", {"target": "Copper", "energy": "3", "save": "1"})
    assert response.status_code == 302
    assert mongo_db["entries"].find_one({"sheet": "test"})["values"]["target"] == "Copper"


def test_a_wiki_never_reached_leaves_a_text_input_so_entry_goes_on(admin_client, sheet, mongo_db):
    wiki_field(sheet, "http://127.0.0.1:9")  # nothing listens on the discard port
    response = admin_client.post("/sheets/test/new/", {"target": "Copper", "energy": "3", "save": "1"})
    assert response.status_code == 302
    assert mongo_db["entries"].find_one({"sheet": "test"})["values"]["target"] == "Copper"
    assert "No list yet" in admin_client.get("/sheets/test/new/").content.decode()
