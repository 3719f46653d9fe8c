from django.contrib import admin

from . import tokens
from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Every user's tokens: an admin sees and revokes them (a token itself is never stored or shown)."""

    list_display = ["name", "user", "prefix", "created", "last_used", "expires", "revoked_at", "state"]
    list_filter = ["revoked_at", "user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created", "last_used", "expires", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # a token is made by its user on /api/tokens/, where it is shown once

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            tokens.revoke(token)
        self.message_user(request, f"{queryset.count()} token(s) revoked.")
