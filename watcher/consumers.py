"""The watcher page's live stream: aggregated status from every watch process."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.metrics import CountedWebsocket

from .live import LIVE_GROUP


class WatcherConsumer(CountedWebsocket, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def watcher_status(self, event: dict) -> None:
        await self.send_json({"type": "status", "status": event["status"]})
