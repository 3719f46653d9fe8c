import hashlib
import logging
from urllib.parse import urlencode

import orjson
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST
from pymongo.errors import PyMongoError

from watcher import selectors as watcher_selectors

from . import entries, grid, importer, selectors, store, table
from .display import history_items, row_for
from .export import export_rows, to_csv, to_json, to_xlsx
from .forms import ImportForm, ImportOptionsForm, entry_form_class, entry_values, initial_values
from .models import Sheet
from .plot import plot_series
from .query import table_filters, table_query
from .schema import FieldDef, field_defs, save_version, schema_for, version_fields

log = logging.getLogger(__name__)
PAGE_SIZE = 50


def sheet_list(request):
    sheets = [sheet for sheet in Sheet.objects.all() if sheet.allows(request.user, "view")]
    return render(request, "shotsheet/sheet_list.html", {"sheets": sheets})


def sheet_for(request, slug: str, action: str = "view", **filters) -> Sheet:
    sheet = get_object_or_404(Sheet, slug=slug, **filters)
    if not sheet.allows(request.user, action):
        raise PermissionDenied(f"You may not {action} entries of '{sheet.name}'.")
    return sheet


def sheet_table(request, slug):
    sheet = sheet_for(request, slug)
    schema = schema_for(sheet)
    columns = schema.columns
    query, sort, problems = table_query(schema, request.GET)
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    try:
        sheet_table = table.table(sheet.slug)
    except PyMongoError as exc:
        return render(request, "shotsheet/unavailable.html", {"sheet": sheet, "error": type(exc).__name__}, status=503)
    if sheet_table.stale_since:
        problems.append(
            f"MongoDB cannot be reached: this is the table as it was at "
            f"{timezone.localtime(sheet_table.stale_since):%H:%M:%S} "
            f"({timezone.get_current_timezone_name()}); new entries are not shown."
        )
    found = sheet_table.find(query, sort)
    total, shown = len(found), found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    params = request.GET.copy()
    params.pop("page", None)
    grid_params = params.copy()  # the grid's data, plot and layout: the filters and sort without `view`
    grid_params.pop("view", None)
    return render(
        request,
        "shotsheet/sheet_table.html",
        {
            "sheet": sheet,
            "columns": columns,
            "columns_version": schema.newest_version,
            "may_add": sheet.active and sheet.allows(request.user, "add"),
            "numeric_columns": schema.numeric_columns,
            "rows": [row_for(e, columns) for e in shown],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "problems": problems,
            "params": params.urlencode(),
            "sort": request.GET.get("sort", "-created"),
            "filter_groups": table_filters(schema, request.GET),
            "filtered": any(k == "shot" or k.startswith(("f_", "from", "to")) for k in request.GET),
            # The data grid, unless the plain table is asked for (?view=table; also the page without JavaScript)
            "grid": request.GET.get("view") != "table",
            "grid_params": grid_params.urlencode(),
            "grid_columns": grid.grid_columns(schema),
            "grid_layout": grid.layout_for(request.user, sheet),
        },
    )


def grid_data(request, slug):
    """The grid's rows for the table's filters and sort: all of them (`limit` for a first screenful),
    or those of `ids` that match (live rows)."""
    sheet = sheet_for(request, slug)
    schema = schema_for(sheet)
    query, sort, problems = table_query(schema, request.GET)
    try:
        sheet_table = table.table(sheet.slug)
    except PyMongoError as exc:
        return JsonResponse({"error": f"MongoDB cannot be reached ({type(exc).__name__})"}, status=503)
    if "ids" in request.GET:
        ids = [i for i in request.GET["ids"].split(",") if i][: grid.MAX_IDS]
        return HttpResponse(
            grid.rows_json(sheet_table.pick(ids, query), schema, ids=ids), content_type="application/json"
        )
    found = sheet_table.find(query, sort)
    try:
        limit = max(0, int(request.GET.get("limit", len(found))))
    except ValueError:
        return JsonResponse({"errors": [{"parameter": "limit", "problem": "a whole number"}]}, status=400)
    body = grid.rows_json(
        found[:limit], schema, total=len(found), problems=problems, stale=bool(sheet_table.stale_since)
    )
    return HttpResponse(body, content_type="application/json")


@require_POST
def grid_layout(request, slug):
    """Keep the user's column order, widths, hidden columns and density of the sheet's grid."""
    sheet = sheet_for(request, slug)
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        data = None
    problems = grid.save_layout(request.user, sheet, schema_for(sheet), data)
    if problems:
        return JsonResponse({"errors": [{"parameter": "layout", "problem": p} for p in problems]}, status=400)
    return JsonResponse({"saved": True})


def entry_new(request, slug):
    sheet = sheet_for(request, slug, "add", active=True)
    if request.method == "POST":  # a save: the fields as they are now, saved as a version if they are not yet
        version = save_version(sheet)
        fields, version_number = field_defs(version.fields), version.number
    else:  # a page view writes nothing
        schema = schema_for(sheet)
        fields, version_number = schema.fields, schema.version
    form_class = entry_form_class(fields, sheet.decimal_mark)
    relay_key = (entries.relay_shot() or {}).get("shot_key", "")
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            try:  # the shot key as the form shows it: prefilled from the relay, from a link, or typed
                entry = entries.create_entry(
                    sheet,
                    version,
                    entry_values(form, fields),
                    author=request.user.get_username(),
                    shot_key=form.cleaned_data["shot_key"],
                    comment=form.cleaned_data["comment"],
                )
            except entries.NotSaved as exc:
                return render_new_entry_form(
                    request,
                    sheet,
                    version_number,
                    form,
                    relay_key,
                    shot_key_source="sent",
                    not_saved=str(exc),
                    status=503,
                )
            messages.success(request, f"Saved entry {entry.get('shot_key') or entry['_id']}.")
            if "save_next" in request.POST:
                return redirect("shotsheet:entry_new", slug=slug)
            return redirect("shotsheet:sheet_table", slug=slug)
        return render_new_entry_form(request, sheet, version_number, form, relay_key, shot_key_source="sent")
    linked_key = request.GET.get("shot_key", "").strip()  # from a shot's "create one" link
    shot_key = linked_key or relay_key
    from_relay = entries.relay_values(fields, shot_key)
    form = form_class(
        initial={**initial_values(fields), **entries.sticky_values(sheet, fields), **from_relay, "shot_key": shot_key}
    )
    return render_new_entry_form(
        request,
        sheet,
        version_number,
        form,
        relay_key,
        shot_key_source="link" if linked_key else "relay",
        from_relay=sorted(from_relay),
        shot_entries=entry_links(sheet, entries.entries_of_shot(sheet, shot_key)) if shot_key else [],
        first_field=next((f"id_{f.key}" for f in fields if not f.archived and not f.sticky), "id_shot_key"),
    )


def entry_links(sheet: Sheet, found: list[dict]) -> list[dict]:
    return [
        {
            "url": reverse("shotsheet:entry_detail", args=[sheet.slug, e["_id"]]),
            "created": timezone.localtime(e["created"]).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "author": e.get("author") or "",
        }
        for e in found
    ]


def shot_check(request, slug):
    """For the entry form while it is open: this sheet's entries of a shot key (a second entry of
    a shot is allowed, but said), and the values the relay gives for its mapped fields."""
    sheet = sheet_for(request, slug, "add", active=True)
    shot_key = request.GET.get("shot_key", "").strip()[:100]
    fields = schema_for(sheet).fields
    values = entries.relay_values(fields, shot_key)
    form = entry_form_class(fields, sheet.decimal_mark)()
    return JsonResponse(
        {
            "shot_key": shot_key,
            "entries": entry_links(sheet, entries.entries_of_shot(sheet, shot_key)) if shot_key else [],
            # as the form's inputs take them (the sheet's decimal mark, the lab's time)
            "relay_values": {key: form[key].field.prepare_value(value) for key, value in values.items()},
        }
    )


def render_new_entry_form(
    request,
    sheet: Sheet,
    version: int | None,
    form,
    relay_key: str,
    *,
    shot_key_source: str,
    status: int = 200,
    **extra,
) -> HttpResponse:
    """The entry form with the relay badge as things are: the relay's shot when it has one, and the
    shot key follows the relay only when it came from the relay (not from a link or a sent form)."""
    return render(
        request,
        "shotsheet/entry_form.html",
        {
            "sheet": sheet,
            "form": form,
            "version": version,
            "entry": None,
            "relay_shot_key": relay_key,
            "shot_key_source": shot_key_source,
            **extra,
        },
        status=status,
    )


def entry_detail(request, slug, entry_id):
    sheet = sheet_for(request, slug, "change" if request.method == "POST" else "view")
    entry = store.get_entry(entry_id)
    if not entry or entry["sheet"] != sheet.slug:
        raise Http404("No such entry")
    fields = version_fields(sheet, entry["schema_version"])
    form_class = entry_form_class(fields, sheet.decimal_mark)
    conflict, conflict_rows, status = None, [], 200
    opened_rev = entry["rev"]  # the revision the form's values start from
    initial = {**entry["values"], "shot_key": entry.get("shot_key") or "", "comment": entry.get("comment", "")}
    if request.method == "POST":
        form = form_class(request.POST, initial=initial)
        opened_rev = revision(request.POST.get("rev"))
        # Overwriting is a choice made on the comparison, for the revision compared there only.
        expected_rev = revision(request.POST["overwrite"]) if "overwrite" in request.POST else opened_rev
        if form.is_valid():
            values, comment, shot_key = (
                entry_values(form, fields),
                form.cleaned_data["comment"],
                form.cleaned_data["shot_key"],
            )
            try:
                entries.update_entry(
                    sheet,
                    entry,
                    expected_rev,
                    values,
                    author=request.user.get_username(),
                    comment=comment,
                    shot_key=shot_key,
                )
                messages.success(request, "Entry updated.")
                return redirect("shotsheet:entry_detail", slug=slug, entry_id=entry_id)
            except entries.EditConflict as exc:
                conflict, status = str(exc), 409
                entry = store.get_entry(entry_id) or entry  # what they saved, to compare and to overwrite
                conflict_rows = entries.conflict_rows(
                    fields, entry, opened_rev, values, comment=comment, shot_key=shot_key
                )
            except entries.NotSaved as exc:
                conflict, status = str(exc), 503
    else:
        form = form_class(initial=initial)
    catalogue = None
    if apps.is_installed("catalogue"):
        from catalogue import selectors as catalogue_selectors  # its models load only when installed

        try:
            catalogue = catalogue_selectors.entry_status(entry["_id"], entry)
        except (PyMongoError, DatabaseError) as exc:  # the form works without the SciCat status
            log.warning("SciCat status of %s not read: %s", entry["_id"], exc)
    events = []
    if entry.get("shot_key") and apps.is_installed("watcher"):
        try:
            events = watcher_selectors.events_for_shot(entry["shot_key"])
        except PyMongoError as exc:  # the form works without the shot's events
            log.warning("events of shot %s not read: %s", entry["shot_key"], exc)
    return render(
        request,
        "shotsheet/entry_form.html",
        {
            "sheet": sheet,
            "form": form,
            "version": entry["schema_version"],
            "entry": entry,
            "conflict": conflict,
            "conflict_rows": conflict_rows,
            "rev": opened_rev,
            "overwrite_rev": entry["rev"] if conflict_rows else None,
            "history": history_items(entry, fields),
            "events": events[:200],
            "laser_time": entries.laser_time(entry),
            "entry_id": entry["_id"],
            "catalogue": catalogue,
            "may_change": sheet.allows(request.user, "change"),
            "void_reason": request.GET.get("void_reason", ""),
            "void_reason_max": entries.VOID_REASON_MAX,
        },
        status=status,
    )


@require_POST
def entry_void(request, slug, entry_id):
    """Void the entry with a reason (`reason`), or restore it (`restore`); never a delete."""
    sheet = sheet_for(request, slug, "change")
    entry = store.get_entry(entry_id)
    if not entry or entry["sheet"] != sheet.slug:
        raise Http404("No such entry")
    page = reverse("shotsheet:entry_detail", args=[slug, entry_id])
    reason = None if "restore" in request.POST else request.POST.get("reason", "").strip()
    problem = ""
    if reason == "":
        problem = "Give a reason to void this entry (it stays, hidden from the table, with the reason)."
    elif reason and len(reason) > entries.VOID_REASON_MAX:
        problem = f"The reason is {len(reason)} characters long; at most {entries.VOID_REASON_MAX}."
    else:
        try:
            entries.set_voided(
                sheet, entry, revision(request.POST.get("rev")), author=request.user.get_username(), reason=reason
            )
        except entries.EditConflict:
            problem = "Someone changed this entry since you opened it: look at it again, then void it."
        except entries.NotSaved as exc:
            problem = str(exc)
    if problem:  # back to the entry, the reason still typed
        messages.error(request, problem)
        return redirect(f"{page}?{urlencode({'void_reason': reason or ''})}")
    messages.success(request, "Entry voided: hidden from the table and exports." if reason else "Entry restored.")
    return redirect(page)


def revision(raw: str | None) -> int:
    """A revision number from the form (0 for anything else: never a revision, so refused)."""
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def entry_by_shot(request, shot_key):
    """The entry of a shot key; for a shot without one (yet), the forms to create it."""
    links = selectors.entries_of_shot(request.user, shot_key)
    if len(links) == 1:
        return redirect(links[0].url)
    return render(
        request,
        "shotsheet/entry_by_shot.html",
        {
            "shot_key": shot_key,
            "entries": links,
            "new_entry_links": [] if links else selectors.new_entry_links(request.user, shot_key),
        },
    )


def plot_data(request, slug):
    schema = schema_for(sheet_for(request, slug))
    query, _, problems = table_query(schema, request.GET)
    try:
        y_keys = [key for value in request.GET.getlist("y") for key in value.split(",") if key]
        series = plot_series(schema, query, y_keys, request.GET.get("x", "time"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({**series, "problems": problems})


def export(request, slug, fmt):
    sheet = sheet_for(request, slug)
    try:
        stale = table.table(sheet.slug).stale_since
    except PyMongoError as exc:
        stale = exc
    if stale:  # an export must not silently miss entries
        return render(
            request,
            "shotsheet/unavailable.html",
            {"sheet": sheet, "error": "stale table", "what": "export"},
            status=503,
        )
    schema = schema_for(sheet)
    query, sort, problems = table_query(schema, request.GET)
    header, rows = export_rows(schema, query, sort)
    name = slugify(sheet.slug)
    if fmt == "csv":
        response = HttpResponse(to_csv(header, rows), content_type="text/csv; charset=utf-8")
    elif fmt == "xlsx":
        response = HttpResponse(
            to_xlsx(header, rows), content_type=("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        )
    elif fmt == "json":
        response = HttpResponse(to_json(header, rows), content_type="application/json")
    else:
        raise Http404("Export formats: csv, xlsx, json")
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


def sheet_import(request, slug):
    """Step 1 of an import from the browser: the file, kept (under a random name) for the preview."""
    sheet = sheet_for(request, slug, "add", active=True)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            importer.read_grid(upload.file, upload.name)  # a file that cannot be read is not kept
        except importer.ImportRefused as exc:
            form.add_error("file", str(exc))
        else:
            upload.file.seek(0)
            token = importer.keep_upload(upload.chunks(), upload.name)
            request.session.setdefault("imports", {})[token] = {"sheet": sheet.slug, "name": upload.name}
            request.session.modified = True
            return redirect("shotsheet:sheet_import_preview", slug=slug, token=token)
    return render(request, "shotsheet/sheet_import.html", {"sheet": sheet, "form": form})


def sheet_import_preview(request, slug, token):
    """Step 2: where each column goes (changeable), the rows and their errors; then all of them or none."""
    sheet = sheet_for(request, slug, "add", active=True)
    kept = request.session.get("imports", {}).get(token)
    path = importer.kept_upload(token) if kept and kept["sheet"] == sheet.slug else None
    try:
        grid = importer.read_grid(path, kept["name"]) if path else None
    except FileNotFoundError:  # claimed by the other press of Import (or removed) since it was found
        grid = None
    except importer.ImportRefused as exc:
        discard_import(request, token)
        messages.error(request, str(exc))
        return redirect("shotsheet:sheet_import", slug=slug)
    if grid is None:
        return upload_gone(request, slug, token, kept)
    fields = schema_for(sheet).fields  # the preview writes nothing; the import saves the version it uses
    options, problems = import_options(request)
    try:
        plan = importer.plan_import(grid, fields, options)
    except importer.ImportRefused as exc:  # e.g. a header row past the end: show what the file gives itself
        plan = importer.plan_import(grid, fields)
        problems.append(str(exc))
    checked = importer.check_rows(plan, fields)
    if (
        request.method == "POST"
        and "import" in request.POST
        and not problems
        and request.POST.get("previewed") != previewed(plan, fields)
    ):
        problems.append(
            "The choices (or the sheet's fields) changed since this preview: check the preview below, then import."
        )
    may_import = request.method == "POST" and "import" in request.POST and not problems
    problems += plan.problems()
    if may_import and not problems and not checked.problems:
        claimed = importer.claim_upload(token)
        if claimed is None:  # Import pressed twice: the other request imports it
            return upload_gone(request, slug, token, kept)
        try:
            stored = importer.store_rows(
                sheet, save_version(sheet).number, checked.rows, author=request.user.get_username()
            )
        except PyMongoError as exc:
            importer.release_upload(claimed)
            problems = [
                f"Nothing was imported: the database cannot be reached ({type(exc).__name__}). "
                "Import again when it is back."
            ]
        else:
            claimed.unlink(missing_ok=True)
            discard_import(request, token)
            skipped = f"; {plan.empty_rows} empty rows skipped" if plan.empty_rows else ""
            messages.success(request, f"Imported {stored} entries from {kept['name']}{skipped}.")
            return redirect("shotsheet:sheet_table", slug=slug)
    return render(
        request,
        "shotsheet/sheet_import_preview.html",
        {
            "sheet": sheet,
            "name": kept["name"],
            "plan": plan,
            "checked": checked,
            "problems": problems,
            "targets": list(plan.targets.values()),
            "ignore": importer.IGNORE,
            "time_zone": settings.TIME_ZONE,
            "options_form": ImportOptionsForm(
                initial={
                    "header_row": plan.header_row,
                    "shown_header_row": plan.header_row,
                    "decimal_mark": plan.options.decimal_mark,
                    "date_order": plan.options.date_order,
                }
            ),
            "tried": request.method == "POST" and "import" in request.POST,
            "previewed": previewed(plan, fields),
        },
    )


def upload_gone(request, slug: str, token: str, kept: dict | None):
    """Back from a preview whose file is gone: to the table while the other press of Import imports
    it, else to a new upload (it was imported, or expired)."""
    if kept and importer.being_imported(token):
        messages.error(
            request, f"{kept['name']} is being imported already (Import was pressed twice); it is imported once."
        )
        return redirect("shotsheet:sheet_table", slug=slug)
    messages.error(request, "That upload is no longer kept (imported, or older than an hour): upload it again.")
    return redirect("shotsheet:sheet_import", slug=slug)


def previewed(plan: importer.Plan, fields: list[FieldDef]) -> str:
    """A digest of what a preview shows (options, each column's target, the sheet's fields).

    Sent with the preview and compared on Import: a decimal mark, date order or column changed in
    the same submit as Import (or a field changed by the admin meanwhile) was imported unseen."""
    shown = {
        "header_row": plan.header_row,
        "decimal_mark": plan.options.decimal_mark,
        "date_order": plan.options.date_order,
        "fields": [field.as_dict() for field in fields],
        "columns": {column.letter: column.target for column in plan.columns},
    }
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).hexdigest()


def import_options(request) -> tuple[importer.ImportOptions, list[str]]:
    """The preview's choices as posted, and why they cannot be imported as they are (then only shown)."""
    if request.method != "POST":
        return importer.ImportOptions(), []
    form = ImportOptionsForm(request.POST)
    if not form.is_valid():
        return importer.ImportOptions(), [
            f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()
        ]
    data = form.cleaned_data
    options = importer.ImportOptions(data["header_row"], data["decimal_mark"], data["date_order"])
    if data["header_row"] != data["shown_header_row"]:  # other columns now: the choices made do not carry over
        return options, [f"The header is now row {data['header_row']}: check where each column goes, then import."]
    options.choices = {
        f"{importer.LETTER_PREFIX}{key.removeprefix('col_')}": value
        for key, value in request.POST.items()
        if key.startswith("col_")
    }  # by letter only
    return options, []


def discard_import(request, token: str) -> None:
    importer.discard_upload(token)
    request.session.get("imports", {}).pop(token, None)
    request.session.modified = True


def sheet_url(sheet: Sheet) -> str:
    return reverse("shotsheet:sheet_table", args=[sheet.slug])
