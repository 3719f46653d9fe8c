from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import views

app_name = "api"


def api(view_class):
    """An API view: it authenticates by token or session itself (a 401, not the login page). DRF
    marks its views so already; said here so it holds whatever DRF's version does."""
    return login_not_required(view_class.as_view())


urlpatterns = [
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("v1/schema/", api(SpectacularAPIView), name="schema"),
    # The docs page is for browsers: not logged in, it goes to the login page (DRF's views are
    # exempt from LoginRequiredMiddleware: they answer 401 themselves).
    path(
        "v1/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html")),
        name="docs",
    ),
    path("v1/sheets/", api(views.SheetList), name="sheet_list"),
    path("v1/sheets/<slug:slug>/", api(views.SheetDetail), name="sheet_detail"),
    path("v1/sheets/<slug:slug>/entries/", api(views.EntryList), name="entry_list"),
    path("v1/sheets/<slug:slug>/entries/<str:entry_id>/", api(views.EntryDetail), name="entry_detail"),
]
urlpatterns += [
    path("v1/shots/", api(views.ShotList), name="shot_list"),
    path("v1/shots/<str:shot_key>/", api(views.ShotDetail), name="shot_detail"),
    path("v1/events/<str:collection>/", api(views.EventList), name="event_list"),
    path("v1/timeseries/", api(views.TimeSeries), name="timeseries"),
]
