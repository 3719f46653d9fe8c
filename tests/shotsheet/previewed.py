"""Importing from the web preview as a person does: the choices are checked (shown) first, then
imported with the preview's digest of what it showed."""

import re

PREVIEWED = re.compile(r'name="previewed" value="([0-9a-f]{64})"')


def preview(client, url: str, data: dict) -> str:
    """The preview page for these choices."""
    shown = {key: value for key, value in data.items() if key != "import"}
    return client.post(url, {**shown, "check": ""}).content.decode()


def previewed(page: str) -> str:
    return PREVIEWED.search(page).group(1)


def import_previewed(client, url: str, data: dict):
    """Show the choices, then press Import on that preview."""
    return client.post(url, {**data, "previewed": previewed(preview(client, url, data)), "import": ""})
