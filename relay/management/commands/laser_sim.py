"""`manage.py laser_sim`: a simulated drive laser publishing shot metadata over ZeroMQ."""

import random
import time

import msgpack
import orjson
import zmq
from django.conf import settings
from django.core.management.base import BaseCommand

from core.runloop import StopFlag, stop_on_signals


def shot_message(shot: int) -> dict:
    return {
        "shot": shot,
        "ts_ns": time.time_ns(),
        "energy_J": round(random.gauss(10.0, 0.4), 3),
        "pulse_fs": round(random.gauss(30.0, 1.5), 2),
        "mode": random.choice(["single", "single", "burst"]),
    }


def encode(message: dict, fmt: str) -> bytes:
    if fmt == "msgpack":
        return msgpack.packb(message)
    if fmt == "kv":
        return " ".join(f"{k}={v}" for k, v in message.items()).encode()
    return orjson.dumps(message)


class Command(BaseCommand):
    help = "Publish simulated drive-laser shots; can inject gaps, duplicates, malformed messages, a reset."

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", default=settings.RELAY_DEFAULT_INPUT["endpoint"])
        parser.add_argument("--rate", type=float, default=1.0, help="shots per second")
        parser.add_argument("--count", type=int, default=0, help="stop after this many (0: run until stopped)")
        parser.add_argument("--start", type=int, default=1, help="first shot number")
        parser.add_argument("--format", default="json", choices=["json", "msgpack", "kv"])
        parser.add_argument("--topic", default="laser")
        parser.add_argument("--gap-every", type=int, default=0, help="skip a shot number every N shots")
        parser.add_argument("--duplicate-every", type=int, default=0, help="send every Nth shot twice")
        parser.add_argument("--malformed-every", type=int, default=0, help="send garbage every N shots")
        parser.add_argument("--reset-after", type=int, default=0, help="restart the counter at 1 after N shots")

    def handle(self, *args, **o):
        context = zmq.Context()
        pub = context.socket(zmq.PUB)
        pub.bind(o["endpoint"])
        time.sleep(0.3)  # let subscribers connect
        shot, sent, interval = o["start"], 0, 1.0 / o["rate"]
        next_send = time.monotonic()
        with stop_on_signals(StopFlag()) as stop:
            while not stop.is_set() and (not o["count"] or sent < o["count"]):
                stop.wait(max(0.0, next_send - time.monotonic()))
                next_send += interval
                frames = [o["topic"].encode(), encode(shot_message(shot), o["format"])]
                pub.send_multipart(frames)
                sent += 1
                if o["duplicate_every"] and sent % o["duplicate_every"] == 0:
                    pub.send_multipart(frames)
                if o["malformed_every"] and sent % o["malformed_every"] == 0:
                    pub.send_multipart([o["topic"].encode(), b"\x00garbage{"])
                shot += 2 if o["gap_every"] and sent % o["gap_every"] == 0 else 1
                if o["reset_after"] and sent == o["reset_after"]:
                    shot = 1
        time.sleep(0.2)
        pub.close(linger=1000)
        context.term()
        self.stdout.write(f"laser_sim: {sent} shots sent to {o['endpoint']}")
