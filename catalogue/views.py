"""The catalogue page: how many entries SciCat has, what waits, and what it refused (with its
message and, for staff, a button to try again after the fix)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST
from pymongo.errors import PyMongoError

from shotsheet import selectors as shotsheet_selectors

from . import selectors, store
from .models import Rule


def job_link(job: dict) -> str:
    """Where a job's row links to: its entry, or its simulation run (a job with no sheet)."""
    try:
        if job.get("kind") == store.SIMULATION:
            return reverse("simulations:detail", args=[job["entry"]])
        return reverse("shotsheet:entry_detail", args=[job["sheet"], job["entry"]])
    except NoReverseMatch:
        return ""


@login_required
def overview(request):
    try:
        counts, failures, retried = store.counts(), store.failed_jobs(), store.retried_jobs()
        counts["file_checks"] = store.file_checks()
    except PyMongoError as exc:
        unavailable = f"The database cannot be reached ({type(exc).__name__})."
        return render(request, "catalogue/overview.html", {"unavailable": unavailable})
    # a sheet's jobs only to who may view the sheet (SciCat's messages quote names and values)
    visible = {sheet.slug for sheet in shotsheet_selectors.visible_sheets(request.user)}
    failures, retried = (
        [job for job in jobs if not job.get("sheet") or job["sheet"] in visible] for jobs in (failures, retried)
    )
    for job in failures + retried:
        job["link"] = job_link(job)
    rules = Rule.objects.select_related("sheet", "server")
    return render(
        request, "catalogue/overview.html", {"counts": counts, "failures": failures, "retried": retried, "rules": rules}
    )


@login_required
def entry(request, entry_id: str):
    """An entry's SciCat status (the shot sheet's entry page can link here or call the selector)."""
    try:
        found = shotsheet_selectors.entry(entry_id)
        if found and shotsheet_selectors.visible_sheet(request.user, found["sheet"]) is None:
            raise Http404("No such entry.")  # not even whether it exists, as the read API answers
        status = selectors.entry_status(entry_id, found)
    except PyMongoError as exc:
        status, unavailable = None, f"The database cannot be reached ({type(exc).__name__})."
    else:
        unavailable = ""
    return render(request, "catalogue/entry.html", {"entry_id": entry_id, "status": status, "unavailable": unavailable})


@login_required
@require_POST
def requeue(request):
    if not request.user.is_staff:
        raise PermissionDenied("Only staff may re-queue catalogue jobs.")
    job_id = request.POST.get("job", "")
    try:
        done = store.requeue(job_id)
    except PyMongoError as exc:
        messages.error(request, f"Not re-queued: the database cannot be reached ({type(exc).__name__}).")
        return redirect("catalogue:overview")
    if done:
        messages.success(request, f"{job_id}: queued again; catalogue_sync sends it within seconds.")
    else:
        messages.warning(request, f"{job_id}: no refused job of that name (already queued or done).")
    return redirect("catalogue:overview")
