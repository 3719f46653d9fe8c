"""The relay's live status: its channel group and the send (the web process imports this, never
the relay's process code)."""

from core import live

STATUS_GROUP = "relay.status"


def send_status(status: dict) -> bool:
    """Browsers' relay status and the entry forms' current shot (at most twice a second)."""
    return live.send(STATUS_GROUP, {"type": "relay.status", "status": status})
