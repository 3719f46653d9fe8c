"""labbook's URLs and a view that fails: the 500 page through both ASGI handlers (tests/api/test_asgi.py)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from labbook.urls import urlpatterns as labbook_urlpatterns


@login_not_required
def fails(request):
    raise RuntimeError("a view's bug")


urlpatterns = [*labbook_urlpatterns, path("fails/", fails)]
