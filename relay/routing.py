from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/relay/", consumers.RelayStatusConsumer.as_asgi()),
]
