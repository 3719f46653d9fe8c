"""The watcher's reads for the read API (`watcher.selectors`): the search a page at a time with its
limits reported, and a collection's events of a time range, under both index strategies."""

from datetime import UTC, datetime, timedelta

import pytest

from core.envelope import make_envelope
from watcher import selectors
from watcher.indexes import handmade
from watcher.selectors import EventQuery

from .ingest import ingest

T0 = datetime(2026, 12, 2, 9, 59, tzinfo=UTC)


def diagnostics(count: int, source: str = "probe", step_s: float = 3.0, same_time_every: int = 0) -> list[dict]:
    """Events every `step_s` s from T0 (pairs at one instant if `same_time_every`), energy = n / 2."""
    events = []
    for n in range(1, count + 1):
        at = T0 + timedelta(seconds=step_s * (n // 2 * 2 if same_time_every else n))
        events.append(
            make_envelope(
                experiment="LWFA",
                source=source if n % 4 else "camera",
                kind="measurement",
                shot_number=n,
                laser_ts_ns=int(at.timestamp()) * 10**9,
                tz="UTC",
                seq=n,
                values={"energy": n / 2, "label": "text" if n % 10 == 0 else None},
            )
        )
    return events


@pytest.mark.django_db
def test_the_search_comes_a_page_at_a_time_in_a_total_order_and_reports_what_it_read(mongo_db, index_strategy):
    ingest("diag", diagnostics(50, same_time_every=2))  # pairs of events at one instant: ties by `_id`
    pages, after = [], None
    while True:
        query = EventQuery(collection="diag", source="probe", limit=7)
        if after:
            query.after_ts, query.after_id = after
        result = selectors.search(query)
        assert result.complete and result.indexed
        pages.append([doc["_id"] for doc in result.events])
        if len(result.events) < 7:
            break
        last = result.events[-1]
        after = (last["_ts"], last["_id"])
    found = [i for page in pages for i in page]
    everything = selectors.search(EventQuery(collection="diag", source="probe", limit=1000))
    assert found == [doc["_id"] for doc in everything.events] and len(found) == len(set(found)) == 38
    if index_strategy == "handmade":
        assert everything.examined >= 50 and everything.fetched == 38  # references read, events read by `_id`


@pytest.mark.django_db
def test_the_search_says_it_stopped_at_its_limit(mongo_db, handmade_indexes, monkeypatch):
    ingest("diag", diagnostics(30))
    monkeypatch.setattr(handmade, "MAX_FETCHED", 5)
    result = selectors.search(EventQuery(collection="diag", field="values.energy", value="0.5"))
    assert not result.complete and result.fetched == 5 and result.events == []


@pytest.mark.django_db
def test_events_of_a_time_range_carry_only_their_time_and_the_field(mongo_db, index_strategy):
    ingest("diag", diagnostics(40))
    result = selectors.events_in_range(
        "diag", T0 + timedelta(seconds=30), T0 + timedelta(seconds=60), "values.energy", 100
    )
    assert [doc["values"]["energy"] for doc in result.events] == [n / 2 for n in range(19, 9, -1)]
    assert set(result.events[0]) == {"_id", "_ts", "values"} and result.complete
    capped = selectors.events_in_range("diag", T0, T0 + timedelta(hours=1), "values.energy", 5)
    assert len(capped.events) == 5 and not capped.complete
    assert [doc["_ts"] for doc in capped.events] == sorted((doc["_ts"] for doc in capped.events), reverse=True)
    with pytest.raises(ValueError, match="not a routed collection"):
        selectors.events_in_range("auth_user", T0, T0, "x", 5)
    with pytest.raises(ValueError, match="not a field name"):
        selectors.events_in_range("diag", T0, T0, "values.$gt", 5)
