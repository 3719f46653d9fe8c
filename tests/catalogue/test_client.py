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
