from django.urls import path

from . import views

app_name = "catalogue"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("requeue/", views.requeue, name="requeue"),
    path("entry/<str:entry_id>/", views.entry, name="entry"),
]
