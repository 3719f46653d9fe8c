from django.urls import path

from . import views

app_name = "shotsheet"
urlpatterns = [
    path("", views.sheet_list, name="sheet_list"),
    path("shot/<str:shot_key>/", views.entry_by_shot, name="entry_by_shot"),
    path("<slug:slug>/", views.sheet_table, name="sheet_table"),
    path("<slug:slug>/new/", views.entry_new, name="entry_new"),
    path("<slug:slug>/shot.json", views.shot_check, name="shot_check"),
    path("<slug:slug>/import/", views.sheet_import, name="sheet_import"),
    path("<slug:slug>/import/<str:token>/", views.sheet_import_preview, name="sheet_import_preview"),
    path("<slug:slug>/export.<str:fmt>", views.export, name="export"),
    path("<slug:slug>/plot.json", views.plot_data, name="plot_data"),
    path("<slug:slug>/grid.json", views.grid_data, name="grid_data"),
    path("<slug:slug>/grid-layout/", views.grid_layout, name="grid_layout"),
    path("<slug:slug>/entries/<str:entry_id>/", views.entry_detail, name="entry_detail"),
    path("<slug:slug>/entries/<str:entry_id>/void/", views.entry_void, name="entry_void"),
]
