"""The catalogue's pages: counts, refused jobs with SciCat's message, re-queue (POST, CSRF, staff
only), an entry's status and dataset link, and the admin's "register now"."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from catalogue import selectors, store
from catalogue.builder import dataset_pid
from catalogue.models import Rule
from catalogue.services import Sync
from tests.test_csp import inline_code


@pytest.fixture
def refused(catalogued, scicat):
    """Two entries: one registered, one refused with a message that holds markup."""
    good = catalogued.entries.add(note="good")
    bad = catalogued.entries.add(note="bad")
    catalogued.rule.name_template = "Shots {entry_id} <script>"
    catalogued.rule.save()
    scicat.state.refuse_names.add(f"Shots {bad['_id']} <script>")
    Sync().run_once()
    return good, bad


def test_overview_shows_counts_and_refusals_escaped(admin_client, refused):
    page = admin_client.get("/catalogue/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd class="col-sm-10" id="registered">1</dd>' in html
    assert '<dd class="col-sm-10" id="failed">1</dd>' in html
    assert "is refused" in html and refused[1]["_id"] in html and "Queue again" in html
    assert "&lt;script&gt;" in html and "<script>" not in html.split("<main")[1].split("</main>")[0]
    assert inline_code(html) == []


def test_requeue_is_post_csrf_and_staff_only(db, refused, admin_user):
    [job] = store.failed_jobs()
    plain = get_user_model().objects.create_user("pat", password="pw-for-the-test-1")
    user_client = Client()
    user_client.force_login(plain)
    assert "Queue again" not in user_client.get("/catalogue/").content.decode()
    assert user_client.post("/catalogue/requeue/", {"job": job["_id"]}).status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post("/catalogue/requeue/", {"job": job["_id"]}).status_code == 403  # no CSRF token
    staff = Client()
    staff.force_login(admin_user)
    assert staff.get("/catalogue/requeue/").status_code == 405
    assert store.counts()["failed"] == 1
    answer = staff.post("/catalogue/requeue/", {"job": job["_id"]}, follow=True)
    assert "queued again" in answer.content.decode()
    assert store.counts() == {"registered": 1, "pending": 1, "failed": 0}
    answer = staff.post("/catalogue/requeue/", {"job": "no-such|r1"}, follow=True)
    assert "no refused job" in answer.content.decode()


def test_entry_status_names_the_dataset_and_the_error(admin_client, refused):
    good, bad = refused
    status = selectors.entry_status(good["_id"])
    pid = dataset_pid(good["_id"], "20.500.12345")
    assert status.state == "registered" and status.revision == 1 and status.pid == pid
    assert status.url.endswith("/api/v4/datasets/20.500.12345%2F" + pid.split("/")[1])
    failed = selectors.entry_status(bad["_id"])
    assert failed.state == "failed" and "is refused" in failed.error
    page = admin_client.get(f"/catalogue/entry/{good['_id']}/").content.decode()
    assert "in SciCat (revision 1)" in page and status.url in page


def test_admin_register_now_sends_at_once(admin_client, catalogued, scicat, settings):
    settings.CATALOGUE_SETTLE_SECONDS = 600  # "now" does not wait for the shots to settle
    entries = [catalogued.entries.add(note=f"n{i}") for i in range(3)]
    answer = admin_client.post(
        "/admin/catalogue/rule/",
        {"action": "register_now", "_selected_action": [catalogued.rule.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    assert "3 datasets created" in answer.content.decode()
    assert {dataset_pid(e["_id"], "20.500.12345") for e in entries} == set(scicat.state.datasets)
    assert Rule.objects.count() == 1


def test_pages_need_a_login(client, db):
    assert client.get("/catalogue/")["Location"].startswith("/accounts/login/")
    assert client.post("/catalogue/requeue/", {"job": "x"})["Location"].startswith("/accounts/login/")


def test_the_entry_page_shows_its_scicat_status(admin_client, catalogued, refused):
    good, bad = refused
    page = admin_client.get(f"/sheets/{catalogued.sheet.slug}/entries/{good['_id']}/").content.decode()
    assert 'id="scicat-status"' in page and "in SciCat (revision 1)" in page
    assert selectors.entry_status(good["_id"]).url in page
    page = admin_client.get(f"/sheets/{catalogued.sheet.slug}/entries/{bad['_id']}/").content.decode()
    assert "refused by SciCat" in page and "is refused" in page and "&lt;script&gt;" in page


def test_jobs_being_retried_show_why_on_the_overview_and_the_entry(admin_client, catalogued, scicat):
    """A pending job that keeps failing (SciCat answering 500, a proxy's page) must say so: "pending"
    alone looks like a queue that will drain, at 3 a.m. nobody reads the sync's log."""
    entry = catalogued.entries.add(note="stuck")
    scicat.state.server_errors = 1
    Sync().run_once()
    assert store.counts()["pending"] == 1
    html = admin_client.get("/catalogue/").content.decode()
    retried = html.split('id="retried"')[1].split("</table>")[0]
    assert entry["_id"] in retried and "500" in retried and "Internal" in retried
    status = selectors.entry_status(entry["_id"])
    assert status.state == "pending" and status.error.startswith("500")
    page = admin_client.get(f"/catalogue/entry/{entry['_id']}/").content.decode()
    assert "waiting for SciCat" in page and "tried 1 time" in page and status.error in page


def test_a_refused_or_retried_simulation_run_is_listed_not_a_server_error(admin_client, catalogued):
    """A simulation run's job has no sheet: its row links to the run, and the page still opens."""
    jobs = {
        job.entry: job for job in store.enqueue("", [("run-refused", 1), ("run-retried", 1)], kind=store.SIMULATION)
    }
    store.fail(jobs["run-refused"], "400: inputDatasets must be an array")
    store.retry_later(jobs["run-retried"], "503: Service Unavailable", timedelta(minutes=5))
    page = admin_client.get("/catalogue/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "run-refused" in html and "inputDatasets must be an array" in html
    assert "run-retried" in html and "/simulations/run-refused/" in html


def test_pending_says_how_many_are_only_looks_for_late_files(admin_client, catalogued):
    """A listed folder's follow-ups wait ten minutes after each registration: "pending 2" alone would
    look like a stuck queue."""
    store.enqueue("shots", [("e1", 1)])
    store.enqueue_files("shots", {store.files_job_id("e0", "l1"): ("e0", 1, datetime.now(UTC))})
    html = admin_client.get("/catalogue/").content.decode()
    assert '<dd class="col-sm-10" id="pending">2 <span class="text-muted">(1 of them look again' in html


def test_a_user_who_may_not_view_a_sheet_sees_neither_its_entries_status_nor_its_refusals(db, catalogued, refused):
    """The sheet's own pages refuse such a user; the catalogue's must not show its entry ids and
    SciCat's messages (which quote the dataset's name and values) instead."""
    from django.contrib.auth.models import Group

    good, bad = refused
    catalogued.sheet.view_groups.add(Group.objects.create(name="laser team"))
    outsider = get_user_model().objects.create_user("eve", password="pw-for-the-test-1")
    browser = Client()
    browser.force_login(outsider)
    assert browser.get(f"/catalogue/entry/{bad['_id']}/").status_code == 404
    html = browser.get("/catalogue/").content.decode()
    assert bad["_id"] not in html and "is refused" not in html
    member = get_user_model().objects.create_user("bo", password="pw-for-the-test-1")
    member.groups.add(Group.objects.get(name="laser team"))
    browser.force_login(member)
    assert "is refused" in browser.get(f"/catalogue/entry/{bad['_id']}/").content.decode()
    assert bad["_id"] in browser.get("/catalogue/").content.decode()


def test_a_rule_naming_a_field_the_sheet_does_not_have_is_not_saved(catalogued):
    """A typo in the rule's fields ("enrgy") or filter ({"taget": "Al"}) would drop the energy from
    every dataset, or select no entry ever, without a word."""
    from django.core.exceptions import ValidationError

    rule = catalogued.rule
    rule.metadata_fields, rule.entry_filter = "energy, enrgy", {"taget": "Al"}
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "enrgy" in str(refused.value.message_dict["metadata_fields"])
    assert "taget" in str(refused.value.message_dict["entry_filter"])
    rule.metadata_fields, rule.entry_filter = "energy, note", {"target": "Al"}
    rule.full_clean()
