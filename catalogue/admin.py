from django.contrib import admin

from .models import Rule, Server


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
