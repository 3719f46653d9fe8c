"""Creating, checking and revoking API tokens (the views, the admin and the authentication call these)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.utils import timezone

from .models import ApiToken

PREFIX = "lbk_"  # marks a labbook token (e.g. for secret scanners); the visible prefix includes it
VISIBLE = 12
LAST_USED_EVERY = timedelta(minutes=1)  # last_used is written at most this often, not per request


def digest(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def create_token(user, name: str, expires: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token of the user: the record and the token itself, which is shown once and never stored."""
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, digest=digest(plain), prefix=plain[:VISIBLE], expires=expires)
    return token, plain


def valid_token(plain: str) -> ApiToken | None:
    """The active token of an active user with this value (None: unknown, revoked or expired);
    notes when it was used. One look-up by the unique digest, its state checked here, at every
    request (nothing kept: a token revoked or expired is refused at the next request)."""
    if not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=digest(plain)).first()
    if token is None or token.state != "active" or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
