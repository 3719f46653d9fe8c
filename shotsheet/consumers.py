"""Live updates of a sheet's table: one Channels group per sheet."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


def sheet_group(slug: str) -> str:
    return f"sheet.{slug}"


class SheetConsumer(AsyncJsonWebsocketConsumer):
    """Joins the sheet's group and forwards what services send to it."""

    async def connect(self) -> None:
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        self.group = sheet_group(self.scope["url_route"]["kwargs"]["slug"])
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def entry_changed(self, event: dict) -> None:
        await self.send_json({"type": "entry", "entry": event["entry"]})
