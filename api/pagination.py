"""A stable cursor over a list in a total order (its last sort key is unique, e.g. the entry id).

The cursor holds the position of the page's last item in that order, not an offset: entries
added or removed meanwhile neither repeat nor skip any on the next page. Positions are lists of
JSON values compared item by item, each ascending or descending.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from .params import Params


@dataclass(frozen=True)
class Page:
    items: Sequence
    count: int  # all items matching, over every page
    next: str | None  # the next page's URL


class Position:
    __slots__ = ("values", "directions")

    def __init__(self, values: list, directions: list[int]):
        self.values, self.directions = values, directions

    def __lt__(self, other: Position) -> bool:
        for mine, theirs, direction in zip(self.values, other.values, self.directions, strict=True):
            if mine != theirs:
                return mine < theirs if direction > 0 else mine > theirs
        return False


def encode(position: list, order: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"p": position, "o": order})).decode().rstrip("=")


def decode(cursor: str, order: list) -> list | None:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or data.get("o") != order or not isinstance(data.get("p"), list):
        return None
    position = data["p"]
    return position if len(position) == len(order) else None


def paginate(
    request: Request, params: Params, items: Sequence, position: Callable[[object], list], order: list[list], size: int
) -> Page:
    """One page of `items` (sorted by `order`: [[name, 1 or -1], ...]) after the request's cursor,
    `size` of them (`params.page_size()`). A bad cursor is refused (BadParameters)."""
    directions = [direction for _, direction in order]
    start = 0
    if cursor := params.text("cursor"):
        after = decode(cursor, order)
        if after is None:
            params.problem("cursor", "not a cursor of this query (take the `next` link of the previous page)")
            params.done()
        else:
            try:
                start = bisect.bisect_right(
                    items, Position(after, directions), key=lambda item: Position(position(item), directions)
                )
            except TypeError:  # a made-up cursor whose values do not compare with the items'
                params.problem("cursor", "not a cursor of this query (take the `next` link of the previous page)")
                params.done()
    shown = items[start : start + size]
    next_url = None
    if start + size < len(items) and shown:
        next_url = replace_query_param(request.build_absolute_uri(), "cursor", encode(position(shown[-1]), order))
    return Page(shown, len(items), next_url)
