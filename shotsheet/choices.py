"""Choice lists that come from elsewhere: a MediaWiki page or category (mwclient), or another sheet.

Every fetched list is cached in MongoDB with its fetch time and wiki revision. A form never waits
on a wiki it already has a list of: a stale list is used at once and refreshed in the background;
when the wiki cannot be reached the cached list stays in use and the form says so.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson

with warnings.catch_warnings():  # mwclient's import turns every DeprecationWarning on, process-wide
    import mwclient

from . import store

log = logging.getLogger(__name__)
WIKI_TIMEOUT_SECONDS = 3
LIST_ITEM = re.compile(r"^\s*[*#]+\s*(.+?)\s*$")
WIKI_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
_refreshing: set[str] = set()
_refreshing_lock = threading.Lock()


@dataclass
class ChoiceList:
    values: list[str]
    note: str = ""  # shown beside the field when the list is not fresh from its source


def source_key(source: dict) -> str:
    return orjson.dumps(
        {k: v for k, v in source.items() if k != "refresh_seconds"}, option=orjson.OPT_SORT_KEYS
    ).decode()


def choices_for(source: dict) -> ChoiceList:
    """The list of a source as the form should offer it now; never raises, never blocks on a known list."""
    key = source_key(source)
    cached = store.cached_choices(key)
    if cached is None or "values" not in cached:
        if cached is None or _due(cached, source):
            cached = refresh(source)
    elif _due(cached, source):
        _refresh_in_background(source)
    if "values" not in cached:
        return ChoiceList([], f"No list yet: {cached.get('error')}. Type the value.")
    note = ""
    if cached.get("error"):
        revision = f", revision {cached['revision']}" if cached.get("revision") else ""
        note = (
            f"{_what(source)} unreachable ({cached['error']}); using the list of "
            f"{cached['fetched']:%Y-%m-%d %H:%M} UTC{revision}."
        )
    return ChoiceList(cached["values"], note)


def refresh(source: dict) -> dict:
    """Fetch the list now and cache it; on failure keep the cached list and record the error."""
    key = source_key(source)
    now = datetime.now(UTC)
    try:
        values, revision = fetch(source)
    except Exception as exc:  # the wiki down, a timeout, a page that is gone: entry goes on
        error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("choice list %s not refreshed: %s", key, error)
        store.save_choices(key, {"error": error, "attempted": now})
    else:
        store.save_choices(
            key, {"values": values, "revision": revision, "fetched": now, "attempted": now, "error": None}
        )
    return store.cached_choices(key)


def fetch(source: dict) -> tuple[list[str], int | None]:
    """(values, revision) straight from the source."""
    kind = source["kind"]
    if kind == "sheet_field":
        values = store.distinct_values(source["sheet"], source["field"])
        flat = {
            str(v) for value in values for v in (value if isinstance(value, list) else [value]) if v not in (None, "")
        }
        return sorted(flat), None
    site = wiki_site(source["wiki_url"])
    if kind == "wiki_page":
        page = site.pages[source["title"]]
        if not page.exists:
            raise LookupError(f"no page '{source['title']}' on the wiki")
        return list_items(page.text()), page.revision
    if kind == "wiki_category":
        title = source["title"].removeprefix("Category:")
        category = site.categories[title]
        members = [page.name for page in category.members() if page.namespace != 14]  # 14: subcategories
        return sorted(dict.fromkeys(members)), category.revision or None
    raise ValueError(f"unknown choice source kind '{kind}'")


def wiki_site(url: str) -> mwclient.Site:
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    return mwclient.Site(
        parts.netloc,
        path=path or "/",
        scheme=parts.scheme or "https",
        connection_options={"timeout": WIKI_TIMEOUT_SECONDS},
        max_retries=0,
    )


def list_items(wikitext: str) -> list[str]:
    """The bulleted and numbered list items of a page, links reduced to their text, in page order."""
    items = []
    for line in wikitext.splitlines():
        match = LIST_ITEM.match(line)
        if match:
            text = WIKI_LINK.sub(r"\1", match.group(1)).replace("'''", "").replace("''", "").strip()
            if text and text not in items:
                items.append(text)
    return items


def _due(cached: dict, source: dict) -> bool:
    attempted = cached.get("attempted")
    return attempted is None or datetime.now(UTC) - attempted > timedelta(seconds=source.get("refresh_seconds", 300))


def _refresh_in_background(source: dict) -> None:
    key = source_key(source)
    with _refreshing_lock:
        if key in _refreshing:
            return
        _refreshing.add(key)

    def run():
        try:
            refresh(source)
        finally:
            with _refreshing_lock:
                _refreshing.discard(key)

    threading.Thread(target=run, name="choice-refresh", daemon=True).start()


def _what(source: dict) -> str:
    return "The wiki is" if source["kind"].startswith("wiki") else f"Sheet '{source.get('sheet')}' is"
