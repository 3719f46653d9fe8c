"""Shared SIGINT/SIGTERM handling for the long-running commands (relay, watch, laser_sim)."""

import signal
import threading
from contextlib import contextmanager


class StopFlag(threading.Event):
    """Set when the process is asked to stop; loops check it between batches."""


@contextmanager
def stop_on_signals(stop: StopFlag):
    """Turn SIGINT/SIGTERM into `stop.set()` for the duration of the block.

    Loops then finish their batch, flush and return, so the command exits 0.
    Only the main thread may install handlers; elsewhere (tests) this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
