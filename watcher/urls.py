from django.urls import path

from . import views

app_name = "watcher"
urlpatterns = [
    path("", views.watcher_page, name="watcher"),
    path("search/", views.search, name="search"),
    path("shot/<str:shot_key>/", views.shot_events, name="shot_events"),
    path("dead-letters/", views.dead_letter_list, name="dead_letters"),
]
