from django.urls import path

from . import views

app_name = "relay"
urlpatterns = [
    path("", views.status_page, name="status"),
]
