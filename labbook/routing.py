"""Websocket URLs of every app, in one list for the ASGI router."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from relay.routing import websocket_urlpatterns as relay_ws
from shotsheet.routing import websocket_urlpatterns as shotsheet_ws
from watcher.routing import websocket_urlpatterns as watcher_ws


class UnknownPath(AsyncWebsocketConsumer):
    """Refuses a websocket to a path no app serves (Channels' router would raise: a 500 handshake)."""

    async def connect(self) -> None:
        await self.close(code=4404)


websocket_urlpatterns = [*shotsheet_ws, *relay_ws, *watcher_ws, re_path(r"", UnknownPath.as_asgi())]
