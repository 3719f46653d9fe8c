from django.urls import path

from . import views

app_name = "watcher"
urlpatterns = [
    path("", views.watcher_page, name="watcher"),
    path("search/", views.search, name="search"),
    path("dead-letters/", views.dead_letter_list, name="dead_letters"),
]
