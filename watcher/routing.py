from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/watcher/", consumers.WatcherConsumer.as_asgi()),
]
