"""JSON through orjson (times ISO 8601 UTC) and CSV (`?format=csv` or `Accept: text/csv`) with the
web export's cell rules: text a spreadsheet would run as a formula gets a leading `'`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer

from shotsheet import selectors as shotsheet_selectors

JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the JSON shows times (orjson writes it: a third of isoformat's time)."""
    if value.utcoffset():  # another zone than UTC (naive is UTC)
        value = value.astimezone(UTC)
    return orjson.dumps(value, option=JSON_OPTIONS)[1:-1].decode()


def utc_texts(times: list[datetime | None]) -> list[str | None]:
    """Stored times — UTC, as MongoDB and core.times.from_ns give them — as iso_utc writes them, in
    one orjson call (10,000 times: 2 ms, a call per time 6 ms)."""
    return orjson.loads(orjson.dumps(times, option=JSON_OPTIONS))


class JSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 by definition

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        if isinstance(data, Table):
            data = data.as_json()
        return orjson.dumps(data, option=JSON_OPTIONS, default=str)


@dataclass
class Table:
    """What an endpoint answers in CSV: a header and rows of values (typed, converted here)."""

    header: list[str]
    rows: Iterable[list] = ()
    columns: list[Sequence] | None = None  # or column by column, for a long table (no rows built)

    def as_json(self) -> dict:
        rows = list(self.rows) if self.columns is None else [list(row) for row in zip(*self.columns)]
        return {"columns": self.header, "rows": rows}


FORMULA_STARTS = shotsheet_selectors.FORMULA_STARTS


def csv_value(value):
    """A value as the csv module should write it (the cell conversion of shotsheet.selectors.csv_text,
    for a column that is not plain numbers or text). Text goes through the web export's csv_cell only
    when it could be a formula (else csv_cell returns it unchanged); numbers and None go to the csv
    module as they are, which writes them as the export does (a call per cell cost 10,000 rows
    ~100 ms)."""
    kind = type(value)
    if kind is str:
        return shotsheet_selectors.csv_cell(value) if value.startswith(FORMULA_STARTS) else value
    if kind is int or kind is float or value is None:
        return value
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    return shotsheet_selectors.csv_cell(value)


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict) and "errors" in data:  # an error, in the format asked for
            data = Table(["parameter", "problem"], [[e["parameter"], e["problem"]] for e in data["errors"]])
        if not isinstance(data, Table):
            raise TypeError("a CSV response needs a Table")  # a view offering CSV always gives one
        if data.columns is not None:
            return shotsheet_selectors.csv_text_of_columns(data.header, data.columns, csv_value).encode()
        return shotsheet_selectors.csv_text(data.header, data.rows, csv_value).encode()


class Negotiation(DefaultContentNegotiation):
    """`?format=` decides, whatever the Accept header says; an unknown one is a 406 naming the
    formats (DRF's own answer is a bare 404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        format = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if format:
            renderer = self.filter_renderers(renderers, format)[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers, format):
        found = [renderer for renderer in renderers if renderer.format == format]
        if not found:
            raise NotAcceptable(
                f"format '{format}' is not offered here; use one of: {', '.join(r.format for r in renderers)}"
            )
        return found
