from django.urls import path

from . import views

app_name = "simulations"
urlpatterns = [
    path("", views.simulation_list, name="list"),
    path("<str:run_id>/", views.simulation_detail, name="detail"),
]
