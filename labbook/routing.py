"""Websocket URLs of every app, in one list for the ASGI router."""

from relay.routing import websocket_urlpatterns as relay_ws
from shotsheet.routing import websocket_urlpatterns as shotsheet_ws
from watcher.routing import websocket_urlpatterns as watcher_ws

websocket_urlpatterns = [*shotsheet_ws, *relay_ws, *watcher_ws]
