from django.urls import path

from . import views

app_name = "shotsheet"
urlpatterns = [
    path("", views.sheet_list, name="sheet_list"),
]
