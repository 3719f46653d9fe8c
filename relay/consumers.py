"""Live relay status for browsers (the relay publishes it at most twice a second)."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.metrics import CountedWebsocket

from .live import STATUS_GROUP


class RelayStatusConsumer(CountedWebsocket, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(STATUS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(STATUS_GROUP, self.channel_name)

    async def relay_status(self, event: dict) -> None:
        await self.send_json({"type": "status", "status": event["status"]})
