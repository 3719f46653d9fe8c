"""Watcher throughput and latency against the running Kafka and MongoDB servers.

    .venv/bin/python benchmarks/watcher.py [--quick]

On one topic pre-filled with envelope messages: (a) a naive consumer doing insert_one per
message, (b) raw insert_many of the same documents (the ceiling), (c) the watcher. Then the
end-to-end latency (produce → document visible) at 1 kHz. The last line is one JSON object.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
# Routes in a throw-away SQLite file (threads share it; the real configuration is untouched).
os.environ["DATABASE_URL"] = f"sqlite:///{Path('/tmp') / f'labbook-bench-{os.getpid()}.sqlite3'}"

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from labbook import mongo  # noqa: E402
from labbook.envelope import make_envelope  # noqa: E402
from labbook.runloop import StopFlag  # noqa: E402
from watcher.models import Route  # noqa: E402
from watcher.services import Watcher  # noqa: E402


def envelope(n: int, **values) -> dict:
    return make_envelope(experiment="BENCH", source="laser", kind="shot", shot_number=n,
                         laser_ts_ns=1_764_000_000_000_000_000 + n * 1000, tz="UTC", seq=n,
                         values={"energy": n / 10, "mode": "ns", **values})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fill_topic(producer, topic: str, count: int) -> None:
    for n in range(count):
        producer.send(topic, orjson.dumps(envelope(n)), key=str(n % 64).encode())
    producer.flush(120)


def naive(topic: str, collection, count: int, seconds: float) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                             group_id=f"bench-naive-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest")
    done, started = 0, None
    for record in consumer:
        started = started or time.perf_counter()
        collection.insert_one(orjson.loads(record.value))
        done += 1
        if done >= count or time.perf_counter() - started > seconds:
            break
    consumer.close()
    return done / (time.perf_counter() - started)


def raw_insert_many(topic: str, collection, count: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                             group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest")
    docs = []
    for record in consumer:
        docs.append(orjson.loads(record.value))
        if len(docs) >= count:
            break
    consumer.close()
    for doc in docs:
        doc["_id"] = doc["event_id"]
    started = time.perf_counter()
    for start in range(0, len(docs), 2000):
        collection.insert_many(docs[start:start + 2000], ordered=False)
    return len(docs) / (time.perf_counter() - started)


def run_watch(count: int) -> tuple[Watcher, threading.Thread]:
    watcher = Watcher(group_id=f"bench-watch-{uuid.uuid4().hex[:6]}", stop=StopFlag(), live=False,
                      route_refresh_seconds=1.0)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 messages and shorter runs")
    args = parser.parse_args()
    count = 20_000 if args.quick else 200_000
    latency_seconds = 5 if args.quick else 20

    call_command("migrate", verbosity=0)
    settings.MONGODB_DB = f"labbook_bench_{uuid.uuid4().hex[:8]}"
    db = mongo.database()
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    topic, live_topic = (f"bench.watch.{uuid.uuid4().hex[:8]}" for _ in range(2))
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(live_topic, 4, 1)])
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, linger_ms=5, acks=1)
    figures: dict = {"messages": count}
    try:
        print(f"filling {topic} with {count} envelope messages…", flush=True)
        fill_topic(producer, topic, count)

        figures["naive_msgs_per_s"] = round(naive(topic, db["naive"], count, 15 if args.quick else 30))
        print(f"(a) naive insert_one consumer: {figures['naive_msgs_per_s']} msg/s", flush=True)
        figures["raw_insert_many_msgs_per_s"] = round(raw_insert_many(topic, db["raw"], count))
        print(f"(b) raw insert_many (ceiling): {figures['raw_insert_many_msgs_per_s']} msg/s", flush=True)

        Route.objects.all().delete()
        Route.objects.create(name="bench", topic=topic, collection="watched")
        watcher, thread = run_watch(count)
        while watcher.stored == 0:
            time.sleep(0.01)
        started, first = time.perf_counter(), watcher.stored
        while watcher.stored < count:
            time.sleep(0.01)
        rate = (count - first) / (time.perf_counter() - started)
        watcher.stop.set()
        thread.join(30)
        figures["watch_msgs_per_s"] = round(rate)
        figures["watch_vs_naive"] = round(rate / figures["naive_msgs_per_s"], 2)
        figures["watch_vs_raw_insert_many"] = round(rate / figures["raw_insert_many_msgs_per_s"], 2)
        print(f"(c) manage.py watch: {figures['watch_msgs_per_s']} msg/s = "
              f"{figures['watch_vs_naive']}x naive, {figures['watch_vs_raw_insert_many']}x raw insert_many "
              f"(targets: >= 10x, >= 0.5x)", flush=True)

        Route.objects.create(name="bench-live", topic=live_topic, collection="live")
        watcher, thread = run_watch(0)
        time.sleep(3)  # joined the group
        latencies: list[float] = []
        collection = db["live"]

        def probe(event_id: str, sent: float) -> None:
            while collection.find_one({"_id": event_id}, {"_id": 1}) is None:
                time.sleep(0.005)
            latencies.append((time.perf_counter() - sent) * 1000)

        with ThreadPoolExecutor(8) as pool:
            interval, next_send, n = 0.001, time.perf_counter(), 0
            end = next_send + latency_seconds
            while next_send < end:
                now = time.perf_counter()
                if now < next_send:
                    time.sleep(min(next_send - now, 0.0005))
                    continue
                event = envelope(count + n)
                producer.send(live_topic, orjson.dumps(event))
                if n % 50 == 0:  # probe a sample: each probe polls MongoDB until the document is there
                    producer.flush()
                    pool.submit(probe, event["event_id"], time.perf_counter())
                n += 1
                next_send += interval
        watcher.stop.set()
        thread.join(30)
        figures["latency_rate_hz"] = round(n / latency_seconds)
        figures["latency_probes"] = len(latencies)
        figures["latency_p50_ms"] = round(percentile(latencies, 50), 1)
        figures["latency_p99_ms"] = round(percentile(latencies, 99), 1)
        print(f"end-to-end latency at {figures['latency_rate_hz']} Hz ({len(latencies)} probes): "
              f"p50 {figures['latency_p50_ms']} ms, p99 {figures['latency_p99_ms']} ms (target p99 < 250 ms)")
    finally:
        producer.close()
        admin.delete_topics([topic, live_topic])
        admin.close()
        mongo.client().drop_database(settings.MONGODB_DB)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
