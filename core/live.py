"""Live updates to open pages: one best-effort send to a Channels group, the same in every app.

A page's live view is a convenience: a missing Redis, or a send from a thread that runs an event
loop, must never stop a save, the relay or the watcher. A failed send is logged once per group
until a send to it works again (a relay sends twice a second: one line per outage, not thousands).
"""

import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

_failing: set[str] = set()  # groups whose last send failed, so the next failure stays quiet
_failing_lock = threading.Lock()


def send(group: str, message: dict) -> bool:
    """Send `message` (a Channels event: `type` names the consumer's handler) to `group`.

    True when the channel layer took it; False when it did not (logged once until it works again).
    """
    try:
        async_to_sync(get_channel_layer().group_send)(group, message)
    except Exception as exc:  # whatever the layer raises (Redis down, no event loop, ...): live views are best effort
        with _failing_lock:
            first = group not in _failing
            _failing.add(group)
        if first:
            log.warning("live updates to %s not sent (%s); logged again once they work", group, exc)
        return False
    with _failing_lock:
        recovered = group in _failing
        _failing.discard(group)
    if recovered:
        log.info("live updates to %s sent again", group)
    return True
