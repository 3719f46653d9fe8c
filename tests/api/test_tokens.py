"""Tokens: made and revoked on the tokens page, stored hashed, exactly their user's permissions,
never able to write."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from api.models import ApiToken

SHEET_ENDPOINTS = ["/api/v1/sheets/apisheet/", "/api/v1/sheets/apisheet/entries/"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def every_stored_text() -> str:
    """Every row of every table of Django's database, as text."""
    with connection.cursor() as cursor:
        texts = []
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            texts += [repr(row) for row in cursor.fetchall()]
    return "\n".join(texts)


def test_a_token_made_on_the_page_is_shown_once_and_stored_only_as_a_digest(member, api_sheet):
    client = logged_in(member)
    made = client.post("/api/tokens/", {"name": "notebook", "expires": ""})
    assert made.status_code == 200
    plain = re.search(r'id="new-token">(lbk_[^<]+)<', made.content.decode()).group(1)
    assert plain not in every_stored_text()  # not in the token table, not in the session
    token = ApiToken.objects.get(user=member)
    assert token.prefix == plain[:12] and token.digest != plain and len(token.digest) == 64
    again = client.get("/api/tokens/").content.decode()
    assert plain not in again and token.prefix in again  # listed by its prefix only
    assert Client(HTTP_AUTHORIZATION=f"Bearer {plain}").get("/api/v1/sheets/apisheet/").status_code == 200


def test_the_tokens_page_needs_a_login_and_a_csrf_token(member):
    assert Client().get("/api/tokens/")["Location"].startswith("/accounts/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    assert strict.post("/api/tokens/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_an_expiry_in_the_past_is_refused(member):
    response = logged_in(member).post("/api/tokens/", {"name": "old", "expires": "2000-01-01T00:00"})
    assert "That time has passed" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoked_expired_unknown_and_malformed_tokens_are_401(api_sheet, member, token_of):
    revoked, revoked_plain = token_of(member, "revoked")
    logged_in(member).post(f"/api/tokens/{revoked.pk}/revoke/")
    expired, expired_plain = token_of(member, "expired", timezone.now() + timedelta(seconds=30))
    ApiToken.objects.filter(pk=expired.pk).update(expires=timezone.now() - timedelta(seconds=1))
    _, good = token_of(member, "good")
    for header in [
        f"Bearer {revoked_plain}",
        f"Bearer {expired_plain}",
        f"Bearer {good[:-2]}xx",
        "Bearer lbk_",
        "Bearer ",
        "Bearer " + "x" * 5000,
        f"bearer {good}x",
    ]:
        response = Client(HTTP_AUTHORIZATION=header).get("/api/v1/sheets/")
        assert response.status_code == 401, header
        assert response.json()["errors"][0]["problem"]
    assert Client(HTTP_AUTHORIZATION=f"Bearer {good}").get("/api/v1/sheets/").status_code == 200


def test_a_token_of_a_deactivated_user_is_401(api_sheet, member, token_of):
    _, plain = token_of(member)
    member.is_active = False
    member.save()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {plain}").get("/api/v1/sheets/").status_code == 401


def test_last_used_is_noted_at_most_once_a_minute(api_sheet, member, token_of):
    token, plain = token_of(member)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert token.last_used is None
    client.get("/api/v1/sheets/")
    token.refresh_from_db()
    first = token.last_used
    assert first is not None and timezone.now() - first < timedelta(seconds=10)
    half_a_minute_ago = first - timedelta(seconds=30)
    ApiToken.objects.filter(pk=token.pk).update(last_used=half_a_minute_ago)
    client.get("/api/v1/sheets/")
    token.refresh_from_db()
    assert token.last_used == half_a_minute_ago  # not written again within the minute
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    client.get("/api/v1/sheets/")
    token.refresh_from_db()
    assert token.last_used > first - timedelta(seconds=1)


def test_a_token_of_a_user_outside_the_view_group_gets_404_on_every_endpoint_of_the_sheet(
    api_entries, member, outsider, bearer
):
    entry_url = f"/api/v1/sheets/apisheet/entries/{api_entries[0]['_id']}/"
    inside, outside = bearer(member), bearer(outsider)
    for url in [*SHEET_ENDPOINTS, entry_url, "/api/v1/sheets/apisheet/entries/?format=csv"]:
        assert inside.get(url).status_code == 200, url
        response = outside.get(url)
        assert response.status_code == 404, url
        assert "apisheet" not in response.content.decode()
    # the same answer as for a sheet that does not exist: nothing says it is there
    assert outside.get("/api/v1/sheets/nosuchsheet/").json() == outside.get("/api/v1/sheets/apisheet/").json()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_token_can_write(api_entries, member, bearer, method):
    admin = get_user_model().objects.create_superuser("boss", password="boss-pass-123")
    entry_url = f"/api/v1/sheets/apisheet/entries/{api_entries[0]['_id']}/"
    for client in (bearer(member), bearer(admin)):
        for url in ["/api/v1/sheets/", *SHEET_ENDPOINTS, entry_url, "/api/v1/schema/"]:
            response = getattr(client, method)(url, {"values": {"energy": 99}}, content_type="application/json")
            assert response.status_code == 405, (method, url, response.status_code)
            assert b"errors" in response.content  # the schema's 405 comes as YAML
    entry = bearer(member).get(entry_url).json()
    assert entry["values"]["energy"] == 1.5 and entry["rev"] == 1


def test_a_user_revokes_only_their_own_tokens_and_the_admin_any(api_sheet, member, outsider, token_of):
    mine, mine_plain = token_of(member, "mine")
    theirs, theirs_plain = token_of(outsider, "theirs")
    assert logged_in(member).post(f"/api/tokens/{theirs.pk}/revoke/").status_code == 404
    assert logged_in(member).get(f"/api/tokens/{mine.pk}/revoke/").status_code == 405  # a GET never revokes
    listed = logged_in(member).get("/api/tokens/").content.decode()
    assert "mine" in listed and "theirs" not in listed

    admin = get_user_model().objects.create_superuser("boss", password="boss-pass-123")
    changelist = logged_in(admin).get("/admin/api/apitoken/")
    assert changelist.status_code == 200
    assert "mine" in changelist.content.decode() and "theirs" in changelist.content.decode()
    done = logged_in(admin).post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [mine.pk, theirs.pk]}, follow=True
    )
    assert done.status_code == 200
    for plain in (mine_plain, theirs_plain):
        assert Client(HTTP_AUTHORIZATION=f"Bearer {plain}").get("/api/v1/sheets/").status_code == 401
    assert logged_in(admin).get("/admin/api/apitoken/add/").status_code == 403  # made by users, shown once


def test_too_many_requests_get_429_with_retry_after_per_token(api_sheet, member, token_of, settings):
    settings.API_REQUESTS_PER_MINUTE = 3
    _, first = token_of(member, "first")
    _, second = token_of(member, "second")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {first}")
    assert [client.get("/api/v1/sheets/").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/sheets/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["errors"][0]["parameter"] is None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {second}").get("/api/v1/sheets/").status_code == 200  # its own count
