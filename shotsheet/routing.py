from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/sheets/<slug:slug>/", consumers.SheetConsumer.as_asgi()),
]
