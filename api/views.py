"""The read API's endpoints (thin: parameters in, selectors, plain dicts out) and the tokens page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from core.matching import lookup
from core.times import from_ns
from relay import selectors as relay_selectors
from shotsheet import selectors as shotsheet_selectors
from watcher import selectors as watcher_selectors

from . import docs, docs_data, pagination, sheets, shots, timeseries, tokens
from .exceptions import Unavailable
from .forms import TokenForm
from .models import ApiToken
from .pagination import paginate
from .params import Params
from .renderers import CSVRenderer, JSONRenderer, Table


class ReadOnlyView(APIView):
    """Every API view: GET (and HEAD, OPTIONS) only; any other method is a 405, whatever the token."""

    http_method_names = ["get", "head", "options"]


def visible_sheet(request, slug: str):
    """The sheet, or 404 whether it is missing or the caller may not view it (never say which)."""
    sheet = shotsheet_selectors.visible_sheet(request.user, slug)
    if sheet is None:
        raise Http404("No such sheet.")
    return sheet


def wants_csv(request) -> bool:
    return request.accepted_renderer.format == CSVRenderer.format


class SheetList(ReadOnlyView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="sheets_list",
        summary="Sheets you may view",
        description="Newest first, each with its current fields (key, label, type, unit, choices).",
        parameters=docs.LIST_PARAMETERS,
        responses={200: docs.SHEET_PAGE, **docs.ERRORS},
    )
    def get(self, request):
        params = Params(request.query_params, set())
        size = params.page_size()
        params.done()
        visible = shotsheet_selectors.visible_sheets(request.user)
        visible.sort(key=lambda sheet: (sheet.created, sheet.pk), reverse=True)
        page = paginate(
            request, params, visible, lambda s: [s.created.timestamp(), s.pk], [["created", -1], ["id", -1]], size
        )
        items = [(sheet, shotsheet_selectors.sheet_schema(sheet)) for sheet in page.items]
        if wants_csv(request):
            return Response(sheets.sheets_table(items))
        return Response(
            {"count": page.count, "next": page.next, "results": [sheets.sheet_json(s, schema) for s, schema in items]}
        )


class SheetDetail(ReadOnlyView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="sheet_detail",
        summary="One sheet: its fields now and every schema version",
        parameters=[docs.SLUG],
        responses={200: docs.SHEET_DETAIL, **docs.ERRORS},
    )
    def get(self, request, slug: str):
        Params(request.query_params, set()).done()
        sheet = visible_sheet(request, slug)
        schema = shotsheet_selectors.sheet_schema(sheet)
        return Response(sheets.sheet_json(sheet, schema, versions=shotsheet_selectors.schema_versions(sheet)))


class EntryList(ReadOnlyView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="entries_list",
        summary="Entries of a sheet, with the web table's filters",
        description=docs.ENTRIES_DESCRIPTION,
        parameters=[docs.SLUG, *docs.ENTRY_PARAMETERS, *docs.LIST_PARAMETERS],
        responses={(200, "application/json"): docs.ENTRY_PAGE, (200, "text/csv"): OpenApiTypes.STR, **docs.ERRORS},
    )
    def get(self, request, slug: str):
        sheet = visible_sheet(request, slug)
        schema = shotsheet_selectors.sheet_schema(sheet)
        params = Params(request.query_params, shotsheet_selectors.filter_names(schema) | sheets.ENTRY_PARAMETERS)
        columns = chosen_columns(params, schema)
        since, until = params.time_range()
        time = params.choice("time", ("entry", "shot"), "entry")
        size = params.page_size()
        params.done()
        found = shotsheet_selectors.entries(schema, request.query_params, since=since, until=until, time=time)
        for problem in found.problems:
            params.problem(problem.parameter, str(problem))
        params.done()
        if found.stale_since is not None:  # a program must not take a stale table for the whole
            raise Unavailable()
        order = [[path, direction] for path, direction in found.sort]
        page = paginate(
            request,
            params,
            found.entries,
            lambda entry: shotsheet_selectors.entry_position(entry, found.sort),
            order,
            size,
        )
        if wants_csv(request):
            return Response(sheets.entries_table(page, columns))
        return Response(sheets.entries_page_json(page, columns))


def chosen_columns(params: Params, schema) -> list:
    """The columns `fields=a,b` names (every column when not given); an unknown key is a problem."""
    raw = params.text("fields")
    if not raw:
        return schema.columns
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    unknown = [key for key in keys if key not in schema.by_key]
    if unknown:
        params.problem(
            "fields", f"no such field: {', '.join(k[:60] for k in unknown)} (fields: {', '.join(schema.by_key)})"
        )
    return [schema.by_key[key] for key in keys if key in schema.by_key]


class EntryDetail(ReadOnlyView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="entry_detail",
        summary="One entry with its history",
        parameters=[docs.SLUG, docs.ENTRY_ID],
        responses={200: docs.ENTRY_DETAIL, **docs.ERRORS},
    )
    def get(self, request, slug: str, entry_id: str):
        Params(request.query_params, set()).done()
        sheet = visible_sheet(request, slug)
        entry = shotsheet_selectors.entry_with_history(sheet, entry_id)
        if entry is None:
            raise Http404("No such entry in this sheet.")
        return Response(sheets.entry_detail_json(entry, shotsheet_selectors.sheet_schema(sheet).columns))


# --- the tokens page (a normal Django page: login, CSRF) ------------------------------------------------
@require_http_methods(["GET", "POST"])
def token_list(request):
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, plain = tokens.create_token(request.user, form.cleaned_data["name"], form.cleaned_data["expires"])
        # Shown once, on this response only: not in a message or the session, where it would be kept.
        return tokens_page(request, TokenForm(), new=plain, new_token=token)
    return tokens_page(request, form)


def tokens_page(request, form: TokenForm, **extra):
    return render(
        request,
        "api/tokens.html",
        {"tokens": ApiToken.objects.filter(user=request.user), "form": form, "time_zone": settings.TIME_ZONE, **extra},
    )


@require_http_methods(["POST"])
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    tokens.revoke(token)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) revoked.")
    return redirect("api:tokens")


# --- shots, the shot join, events and time series (relay, watcher and shot sheet selectors) -----------
SHOT_ORDERS = {"time": [["laser_time", -1], ["shot_key", -1]], "number": [["run", -1], ["shot_number", -1]]}
EVENT_ORDER = [["_ts", -1], ["_id", -1]]
MAX_EVENT_PAGE = 1000  # the watcher's search answers at most this many
ONE_MICROSECOND = timedelta(microseconds=1)


def to_ns(when: datetime) -> int:
    return shotsheet_selectors.to_ns(when)


def plain_text(params: Params, name: str) -> str:
    """A text compared for equality: never something that reads as an operator or JSON."""
    value = params.text(name)
    if value.startswith(shots.OPERATOR_LOOKING):
        params.problem(
            name, f"'{value[:50]}' looks like an operator or JSON; values are plain text, numbers or true/false"
        )
        return ""
    if len(value) > 200:
        params.problem(name, "longer than 200 characters")
        return ""
    return value


def cursor_position(params: Params, order: list, types: tuple[type, ...]) -> list | None:
    """The position a `cursor` names in this query's order (a 400 if it is not this query's)."""
    cursor = params.text("cursor")
    if not cursor:
        return None
    position = pagination.decode(cursor, order)
    if position is None or not all(isinstance(value, kind) for value, kind in zip(position, types, strict=True)):
        params.problem("cursor", "not a cursor of this query (take the `next` link of the previous page)")
        return None
    return position


def next_link(request, order: list, position: list) -> str:
    return replace_query_param(request.build_absolute_uri(), "cursor", pagination.encode(position, order))


def require_app(name: str) -> None:
    if not apps.is_installed(name):
        raise Http404(f"The {name} is not part of this installation.")


class ShotList(ReadOnlyView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="shots_list",
        summary="Shots from the relay, by laser time or shot number",
        description=docs_data.SHOTS_DESCRIPTION,
        parameters=[*docs_data.SHOTS_PARAMETERS, *docs.LIST_PARAMETERS],
        responses={(200, "application/json"): docs_data.SHOT_PAGE, (200, "text/csv"): OpenApiTypes.STR, **docs.ERRORS},
    )
    def get(self, request):
        require_app("relay")
        params = Params(request.query_params, {"since", "until", "number_min", "number_max", "experiment"})
        since, until = params.time_range()
        number_min = params.integer("number_min", low=0)
        number_max = params.integer("number_max", low=0)
        if number_min is not None and number_max is not None and number_min > number_max:
            params.problem("number_max", "must not be below number_min")
        experiment = plain_text(params, "experiment")
        size = params.page_size()
        by = "number" if number_min is not None or number_max is not None else "time"
        position = cursor_position(params, SHOT_ORDERS[by], (object, str))
        params.done()
        page = relay_selectors.shots(
            relay_selectors.ShotQuery(
                since=since,
                until=until,
                number_min=number_min,
                number_max=number_max,
                experiment=experiment,
                limit=size,
                after=position[1] if position else "",
            )
        )
        if wants_csv(request):
            return Response(shots.shots_table(page.shots))
        following = None
        if (page.more or not page.complete) and page.shots:
            last = page.shots[-1]
            following = next_link(
                request,
                SHOT_ORDERS[by],
                [last["laser_ts_ns"] if by == "time" else last["shot_number"], last["shot_key"]],
            )
        return Response(
            {
                "next": following,
                "search": {"complete": page.complete, "indexed": page.indexed, "lookups": page.lookups},
                "results": [shots.shot_json(shot) for shot in page.shots],
            }
        )


def simulation_selectors():
    from simulations import selectors  # an optional app: imported only when installed

    return selectors


class ShotDetail(ReadOnlyView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        operation_id="shot_join",
        summary="Everything known of one shot: relay record, sheet entries, ingested events",
        description=docs_data.SHOT_JOIN_DESCRIPTION,
        parameters=[docs_data.SHOT_KEY],
        responses={200: docs_data.SHOT_JOIN, **docs.ERRORS},
    )
    def get(self, request, shot_key: str):
        params = Params(request.query_params, set())
        if len(shot_key) > 200:
            params.problem("shot_key", "longer than 200 characters: not a shot key")
        params.done()
        record = relay_selectors.shot_record(shot_key) if apps.is_installed("relay") else None
        entries_limit, events_limit = settings.API_SHOT_JOIN_MAX_ENTRIES, settings.API_SHOT_JOIN_MAX_EVENTS
        sheets_found = shotsheet_selectors.entries_for_shot(request.user, shot_key)
        events = watcher_selectors.events_for_shot(shot_key, events_limit + 1) if apps.is_installed("watcher") else []
        runs = simulation_selectors().runs_of_shot(shot_key) if apps.is_installed("simulations") else []
        if record is None and not sheets_found and not events and not runs:
            raise Http404("Nothing is known of this shot key (no relay record, no entry you may view, no event).")
        return Response(shots.shot_join_json(shot_key, record, sheets_found, entries_limit, events, events_limit, runs))


class EventList(ReadOnlyView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="events_list",
        summary="Events of a routed collection: the watcher's search",
        description=docs_data.EVENTS_DESCRIPTION,
        parameters=[docs_data.COLLECTION, *docs_data.EVENTS_PARAMETERS, *docs.LIST_PARAMETERS],
        responses={(200, "application/json"): docs_data.EVENT_PAGE, (200, "text/csv"): OpenApiTypes.STR, **docs.ERRORS},
    )
    def get(self, request, collection: str):
        require_app("watcher")
        if collection not in watcher_selectors.routed_collections():
            raise Http404("No route writes this collection.")
        params = Params(request.query_params, {"since", "until", "source", "kind", "shot_key", "field", "value"})
        since, until = params.time_range()
        texts = {name: plain_text(params, name) for name in ("source", "kind", "shot_key", "value")}
        field = params.text("field")
        if field and not watcher_selectors.FIELD_PATH.match(field):
            params.problem(
                "field", f"'{field[:50]}' is not a field name (letters, digits, _ and dots, e.g. values.energy)"
            )
        if bool(field) != bool(params.text("value")):
            params.problem("field" if not field else "value", "field and value go together")
        size = params.integer("page_size", settings.API_PAGE_SIZE, low=1, high=MAX_EVENT_PAGE)
        position = cursor_position(params, EVENT_ORDER, (int, str))
        params.done()
        query = watcher_selectors.EventQuery(
            collection=collection,
            since=since,
            until=until - ONE_MICROSECOND if until else None,  # the search's until is included, the API's not
            field=field,
            limit=min(size + 1, MAX_EVENT_PAGE),
            **texts,
        )
        if position:
            query.after_ts, query.after_id = from_ns(position[0]), position[1]
        result = watcher_selectors.search(query)
        events = result.events[:size]
        if wants_csv(request):
            return Response(shots.events_table(events))
        following = None
        if events and (len(result.events) > size or len(events) == MAX_EVENT_PAGE or not result.complete):
            following = next_link(request, EVENT_ORDER, [to_ns(events[-1]["_ts"]), str(events[-1]["_id"])])
        return Response(
            {
                "next": following,
                "search": {
                    "complete": result.complete,
                    "indexed": result.indexed,
                    "examined": result.examined,
                    "fetched": result.fetched,
                    **watcher_selectors.search_limits(),
                },
                "results": events,
            }
        )


class TimeSeries(ReadOnlyView):
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="timeseries",
        summary="One numeric field over time as rows of time,value (for dashboards)",
        description=docs_data.TIMESERIES_DESCRIPTION,
        parameters=docs_data.TIMESERIES_PARAMETERS,
        responses={(200, "application/json"): docs_data.TIMESERIES, (200, "text/csv"): OpenApiTypes.STR, **docs.ERRORS},
    )
    def get(self, request):
        params = Params(
            request.query_params, {"sheet", "collection", "field", "since", "until", "time", "interval", "reduce"}
        )
        sheet_slug, collection, field = params.text("sheet"), params.text("collection"), params.text("field")
        if bool(sheet_slug) == bool(collection):
            params.problem("sheet", "give either sheet or collection (one of them)")
        if not field:
            params.problem("field", "required: the field whose values to plot")
        since, until = self.time_range(params)
        interval = None
        if raw := params.text("interval"):
            interval = timeseries.parse_interval(raw)
            if interval is None:
                params.problem("interval", f"'{raw[:50]}' is not an interval such as 500ms, 10s, 1m, 2h or 1d")
        reduce = params.choice("reduce", tuple(timeseries.REDUCERS), "mean")
        if params.text("reduce") and not params.text("interval"):
            params.problem("reduce", "only with an interval")
        time = params.choice("time", ("entry", "shot"), "entry")
        if collection and params.text("time"):
            params.problem("time", "only for sheets (events are at their `_ts`)")
        params.done()
        if sheet_slug:
            series, fields = self.sheet_series(request, params, sheet_slug, field, since, until, time)
        else:
            series, fields = self.event_series(params, collection, field, since, until)
        rows = timeseries.reduce_rows(series.rows, interval, reduce) if interval else series.rows
        if interval:
            fields["value"]["reduce"], fields["value"]["interval"] = reduce, params.text("interval")
            if reduce == "count":
                fields["value"]["unit"] = ""
        if wants_csv(request):
            return Response(Table(["time", "value"], rows))
        return Response(
            {
                "fields": fields,
                "rows": [{"time": when, "value": value} for when, value in rows],
                "skipped": series.skipped,
                "missing": series.missing,
                "read": series.read,
                "complete": series.complete,
            }
        )

    @staticmethod
    def time_range(params: Params) -> tuple:
        since, until = params.time("since"), params.time("until")
        until = until or datetime.now(UTC)
        since = since or until - timedelta(hours=1)
        if since >= until:
            params.problem("until", "must be after since")
        elif until - since > timedelta(days=settings.API_TIMESERIES_MAX_DAYS):
            params.problem("since", f"the range is longer than {settings.API_TIMESERIES_MAX_DAYS:g} days: narrow it")
        return since, until

    @staticmethod
    def sheet_series(request, params: Params, slug: str, key: str, since, until, time: str):
        sheet = visible_sheet(request, slug)
        schema = shotsheet_selectors.sheet_schema(sheet)
        column = schema.by_key.get(key)
        if column is None:
            params.problem("field", f"no such field: {key[:60]} (fields: {', '.join(schema.by_key)})")
        elif column.type not in shotsheet_selectors.NUMERIC_TYPES:
            params.problem("field", f"'{key}' is a {column.type} field, not a number")
        params.done()
        found = shotsheet_selectors.entries(schema, {}, since=since, until=until, time=time)
        if found.stale_since is not None:
            raise Unavailable()
        points = (
            (
                entry["created"] if time == "entry" else from_ns(entry["laser_ts_ns"]),
                (entry.get("values") or {}).get(key),
            )
            for entry in found.entries
        )
        fields = {
            "time": {"unit": "UTC", "of": "entry time" if time == "entry" else "shot laser time"},
            "value": {"sheet": slug, "field": key, "label": column.label, "type": column.type, "unit": column.unit},
        }
        return timeseries.collect(points), fields

    @staticmethod
    def event_series(params: Params, collection: str, path: str, since, until):
        require_app("watcher")
        if collection not in watcher_selectors.routed_collections():
            raise Http404("No route writes this collection.")
        if not watcher_selectors.FIELD_PATH.match(path):
            params.problem(
                "field", f"'{path[:50]}' is not a field name (letters, digits, _ and dots, e.g. values.energy)"
            )
        params.done()
        found = watcher_selectors.events_in_range(collection, since, until, path, settings.API_TIMESERIES_MAX_EVENTS)
        points = ((event["_ts"], lookup(event, path)) for event in found.events)
        fields = {
            "time": {"unit": "UTC", "of": "event time (_ts)"},
            "value": {"collection": collection, "field": path, "unit": None},
        }
        return timeseries.collect(points, complete=found.complete), fields
