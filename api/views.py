"""The read API's endpoints (thin: parameters in, selectors, plain dicts out) and the tokens page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from shotsheet import selectors as shotsheet_selectors

from . import docs, sheets, tokens
from .exceptions import Unavailable
from .forms import TokenForm
from .models import ApiToken
from .pagination import paginate
from .params import Params
from .renderers import CSVRenderer, JSONRenderer


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
