from django.contrib import admin, messages
from pymongo.errors import PyMongoError

from .models import Rule, Server
from .services import Sync, enqueue_sheet

REGISTER_NOW_JOBS = 100  # sent within the admin's request; catalogue_sync sends the rest


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "api_version", "owner_group", "enabled"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "api_version", "enabled", "timeout_seconds"]}),
        (
            "Credentials (names of environment variables, never the secrets)",
            {"fields": ["username_env", "password_env", "token_env"]},
        ),
        (
            "Every dataset",
            {
                "fields": [
                    "owner",
                    "owner_group",
                    "access_groups",
                    "contact_email",
                    "principal_investigator",
                    "creation_location",
                    "pid_prefix",
                    "frontend_url",
                    "labbook_url",
                    "files_per_block",
                ]
            },
        ),
    ]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["sheet", "server", "enabled", "name_template", "source_folder_template"]
    list_filter = ["enabled", "server"]
    actions = ["register_now"]

    @admin.action(description="Register now (queue every selected entry, send the first ones at once)")
    def register_now(self, request, queryset):
        sync = Sync()
        try:
            queued = sum(enqueue_sheet(rule) for rule in queryset.select_related("sheet", "server"))
            sync.run_once(max_jobs=REGISTER_NOW_JOBS)
        except PyMongoError as exc:
            self.message_user(request, f"The database cannot be reached ({type(exc).__name__}).", messages.ERROR)
            return
        finally:
            sync.close()
        stats = sync.stats
        self.message_user(
            request,
            f"{queued} jobs queued; {stats.created} datasets created, {stats.patched} updated, "
            f"{stats.failed} refused (see the catalogue page), {stats.retries} waiting for SciCat; "
            "catalogue_sync sends the rest.",
            messages.WARNING if stats.failed or stats.retries else messages.SUCCESS,
        )
