"""Live updates of a sheet's table: one Channels group per sheet."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.metrics import CountedWebsocket
from relay.live import STATUS_GROUP as RELAY_STATUS_GROUP

from .live import sheet_group


@database_sync_to_async
def may_view(user, slug: str) -> bool:
    from .models import Sheet

    sheet = Sheet.objects.filter(slug=slug).first()
    return bool(sheet and sheet.allows(user, "view"))


class SheetConsumer(CountedWebsocket, AsyncJsonWebsocketConsumer):
    """Joins the sheet's group and forwards what services send to it."""

    async def connect(self) -> None:
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        if not await may_view(self.scope["user"], self.scope["url_route"]["kwargs"]["slug"]):
            await self.close(code=4403)
            return
        self.groups_joined = [sheet_group(self.scope["url_route"]["kwargs"]["slug"]), RELAY_STATUS_GROUP]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def relay_status(self, event: dict) -> None:
        """The relay's current shot, for the entry form (the relay sends at most 2 a second)."""
        await self.send_json({"type": "relay", "last_shot": event["status"].get("last_shot")})

    async def entry_changed(self, event: dict) -> None:
        await self.send_json({"type": "entry", "entry": event["entry"]})
