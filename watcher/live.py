"""The watcher page's live stream: its channel group and the send (the web process imports this,
never the watcher's process code)."""

from core import live

LIVE_GROUP = "watcher.live"


def send_status(status: dict) -> bool:
    """The aggregated status of one watch process (never single messages)."""
    return live.send(LIVE_GROUP, {"type": "watcher.status", "status": status})
