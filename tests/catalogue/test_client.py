"""SciCat's answers as a foreign server gives them (a wrong API root, a proxy, a body too large):
each either done, refused with SciCat's words, or tried again, never counted as done unseen."""

from catalogue import selectors, store
from catalogue.services import Sync


def test_a_server_without_the_api_answering_404_is_not_counted_as_registered(catalogued, scicat):
    """A v4 rule pointed at a backend that serves only v3 (or a wrong API root) gets NestJS's JSON
    404 "Cannot POST /api/v4/datasets" for every dataset: that is no dataset in SciCat, and must
    not be recorded as registered (nothing would ever send it again)."""
    scicat.state.version = "v3"  # the rule's server still says v4
    entry = catalogued.entries.add()
    sync = Sync()
    sync.run_once()
    assert scicat.state.count("POST", "/api/v4/datasets", 404) == 1
    assert sync.stats.created == 0 and store.dataset(entry["_id"]) is None
    assert store.counts()["registered"] == 0 and store.counts()["pending"] == 1
    status = selectors.entry_status(entry["_id"])
    assert status.state == "pending" and "Cannot POST /api/v4/datasets" in status.error


def test_a_body_too_large_is_refused_with_its_reason_not_retried(catalogued, scicat):
    entry = catalogued.entries.add()
    scicat.state.too_large = 1
    Sync().run_once()
    status = selectors.entry_status(entry["_id"])
    assert status.state == "failed" and status.error.startswith("413")


def test_an_entry_whose_value_would_move_its_source_folder_is_refused_naming_the_value(catalogued, scicat):
    catalogued.rule.source_folder_template = "/data/{experiment}/{field_note}"
    catalogued.rule.save()
    bad = catalogued.entries.add(note="../../home")
    good = catalogued.entries.add(note="run7")
    Sync().run_once()
    status = selectors.entry_status(bad["_id"])
    assert status.state == "failed" and "{field_note}" in status.error and "../../home" in status.error
    assert [dataset["sourceFolder"] for dataset in scicat.state.datasets.values()] == ["/data/LWFA/run7"]
    assert selectors.entry_status(good["_id"]).state == "registered"


def test_a_rule_template_saved_without_the_admins_check_refuses_its_jobs_saying_why(catalogued, scicat):
    """A rule written from a shell or a fixture skips `Rule.clean`: its jobs must say what is wrong
    with the template on the catalogue page, not be retried for ever as an unexpected error."""
    catalogued.rule.name_template = "{sheet_name} {shot}"
    catalogued.rule.save()
    entry = catalogued.entries.add()
    Sync().run_once()
    status = selectors.entry_status(entry["_id"])
    assert status.state == "failed" and "'{shot}' is not known" in status.error
