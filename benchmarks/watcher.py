"""Watcher throughput and latency against the running Kafka and MongoDB servers.

    .venv/bin/python benchmarks/watcher.py [--quick] [--messages N] [--metrics-only]

On one topic pre-filled with envelope messages: (a) a naive consumer doing insert_one per
message, (b) raw insert_many of the same documents (the ceiling: documents already decoded,
2,000 per call), (c) `manage.py watch` as its own process (validation, provenance, shot
and time index, offset commits). With the CPU time per message of each consumer and, when it
is the FerretDB scripts/services.py started, of the server. Then the end-to-end latency
(produce → document visible to a reader) at 1 kHz through the same watch process. The last
line is one JSON object. Last, `manage.py watch` over the same topic into fresh collections with
its Prometheus metrics off (`--metrics-port 0`) and on (scraped every second), alternately, best
of each (`--metrics-only`: just that).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORKDIR = Path(tempfile.mkdtemp(prefix="labbook-bench-watcher-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ["DATABASE_URL"] = f"sqlite:///{WORKDIR / 'config.sqlite3'}"  # shared with the watch process
os.environ["MONGODB_DB"] = f"labbook_bench_{uuid.uuid4().hex[:8]}"

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from bench_common import free_port, scrape_every_second  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from core import mongo  # noqa: E402
from core.envelope import make_envelope  # noqa: E402
from watcher import store  # noqa: E402
from watcher.models import Route  # noqa: E402


def envelope(n: int) -> dict:
    return make_envelope(
        experiment="BENCH",
        source="laser",
        kind="shot",
        shot_number=n,
        laser_ts_ns=1_764_000_000_000_000_000 + n * 1_000_000,
        tz="UTC",
        seq=n,
        values={"energy": n / 10, "mode": "ns"},
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_ferretdb_pid() -> int | None:
    """The FerretDB that scripts/services.py started, when the benchmark uses it."""
    try:
        pid = int((ROOT / ".services" / "mongo" / "mongo.pid").read_text())
        running = b"ferretdb" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if running and "MONGODB_URI" not in os.environ else None


SERVER_PID = local_ferretdb_pid()
SERVER_US: dict[str, float] = {}  # the server's CPU time per message in each consumer's run (µs)


def server_cpu() -> float:
    """CPU seconds the MongoDB server has used so far (0 when it is not ours to measure)."""
    return cpu_seconds(SERVER_PID) if SERVER_PID else 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def consumer_for(topic: str, name: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=f"bench-{name}-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
        max_poll_records=2000,
    )


def fill_topic(producer: KafkaProducer, topic: str, count: int) -> None:
    for n in range(count):
        producer.send(topic, orjson.dumps(envelope(n)), key=str(n % 64).encode())
    producer.flush(300)


def naive(topic: str, count: int, seconds: float) -> tuple[float, int, float]:
    """insert_one per message, as a first-try consumer does (bluesky-kafka's MongoConsumer).
    Also returns this process's CPU time per message meanwhile (µs)."""
    collection = mongo.database()["naive"]
    consumer = consumer_for(topic, "naive")
    done, started, cpu_started, server_started = 0, None, 0.0, 0.0
    for record in consumer:
        if started is None:
            started, cpu_started, server_started = time.perf_counter(), time.process_time(), server_cpu()
        collection.insert_one(orjson.loads(record.value))
        done += 1
        if done >= count or time.perf_counter() - started > seconds:
            break
    cpu_us = (time.process_time() - cpu_started) / done * 1e6
    SERVER_US["naive"] = (server_cpu() - server_started) / done * 1e6
    consumer.close()
    return done / (time.perf_counter() - started), done, cpu_us


def raw_insert_many(topic: str, count: int) -> float:
    consumer = consumer_for(topic, "raw")
    docs = []
    for record in consumer:
        doc = orjson.loads(record.value)
        doc["_id"] = doc["event_id"]
        docs.append(doc)
        if len(docs) >= count:
            break
    consumer.close()
    collection = mongo.database()["raw"]
    started, server_started = time.perf_counter(), server_cpu()
    for start in range(0, len(docs), 2000):
        collection.insert_many(docs[start : start + 2000], ordered=False)
    SERVER_US["raw_insert_many"] = (server_cpu() - server_started) / len(docs) * 1e6
    return len(docs) / (time.perf_counter() - started)


def committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    offsets = admin.list_group_offsets(group).get(group, {})
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def watch_throughput(
    admin: KafkaAdminClient, watch: subprocess.Popen, group: str, topic: str, count: int
) -> tuple[float, float]:
    """Messages per second from the first committed batch to the last (startup excluded), and
    the watch process's own CPU time per message meanwhile (µs). When the first commit already
    covers half the topic or more (a small topic, a fast machine), from the process's start
    instead: start-up included, so slower, never a division by next to nothing."""
    launched, cpu_launched, server_launched = time.perf_counter(), cpu_seconds(watch.pid), server_cpu()
    first = 0
    while first == 0:
        if watch.poll() is not None:
            raise RuntimeError("manage.py watch exited early")
        first = committed(admin, group, topic)
        time.sleep(0.02)
    started, cpu_started, server_started = time.perf_counter(), cpu_seconds(watch.pid), server_cpu()
    if first >= count / 2:
        first, started, cpu_started, server_started = 0, launched, cpu_launched, server_launched
    done = first
    while done < count:
        time.sleep(0.02)
        done = committed(admin, group, topic)
    SERVER_US["watch"] = (server_cpu() - server_started) / (count - first) * 1e6
    return (count - first) / (time.perf_counter() - started), (cpu_seconds(watch.pid) - cpu_started) / (
        count - first
    ) * 1e6


def latency(
    producer: KafkaProducer, topic: str, probe_topic: str, seconds: float, start: int
) -> tuple[list[float], int]:
    """Send at 1 kHz; every 100th event goes to a probe topic and is looked up until visible.

    The probes share the watch process, its batches and its writer with the 1 kHz stream, but
    land in a small collection of their own: FerretDB answers a find by `_id` that misses by
    reading the whole collection, so probing the big one would measure the probe, not the watcher.
    """
    collection = mongo.database()["probe"]
    pending: list[tuple[str, float]] = []
    latencies: list[float] = []
    lock, sending = threading.Lock(), threading.Event()
    sending.set()

    def probe() -> None:
        while sending.is_set() or pending:
            with lock:
                waiting = list(pending)
            for event_id, sent in waiting:
                if collection.find_one({"_id": event_id}, {"_id": 1}) is not None:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    with lock:
                        pending.remove((event_id, sent))
            time.sleep(0.002)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    n, next_send = 0, time.perf_counter()
    end = next_send + seconds
    while next_send < end:
        now = time.perf_counter()
        if now < next_send:
            time.sleep(min(next_send - now, 0.0005))
            continue
        event = envelope(start + n)
        if n % 100 == 0:
            producer.send(probe_topic, orjson.dumps(event))
            with lock:
                pending.append((event["event_id"], time.perf_counter()))
        else:
            producer.send(topic, orjson.dumps(event))
        n += 1
        next_send += 0.001
    producer.flush(30)
    sending.clear()
    prober.join(60)
    return latencies, n


def metrics_cost_us_per_message(batch: int = 2000, repeats: int = 100) -> float:
    """What counting a written batch costs the writer thread a message (µs), in this process,
    free of the machine's load: the throughput comparison above swings with it."""
    import timeit
    from types import SimpleNamespace

    from core.metrics import process_registry
    from watcher.metrics import WatcherMetrics
    from watcher.services.writer import WriteOutcome

    metrics = WatcherMetrics(process_registry(), "bench", "bench")
    route, now = SimpleNamespace(name="bench"), datetime.now(UTC)
    items = [SimpleNamespace(route=route, record=SimpleNamespace(topic="t"), document={"_ts": now})] * batch
    outcome = WriteOutcome(stored=batch)
    return timeit.timeit(lambda: metrics.count_written(items, outcome, 0.01), number=repeats) / repeats / batch * 1e6


def compare_metrics(admin: KafkaAdminClient, topic: str, count: int, rounds: int) -> dict:
    """watch's throughput with the metrics off and on, alternately, each run into a fresh collection."""
    best = {"off": 0.0, "on": 0.0}
    cpu = {"off": float("inf"), "on": float("inf")}  # the watch process's own CPU a message, µs
    for round_ in range(rounds):
        for state in ("off", "on") if round_ % 2 == 0 else ("on", "off"):  # neither always first
            Route.objects.all().delete()
            Route.objects.create(
                name="bench", topic=topic, collection=f"metrics_{state}_{round_}", timestamp_field="laser_ts_ns"
            )
            port = free_port() if state == "on" else 0
            group = f"bench-metrics-{uuid.uuid4().hex[:6]}"
            watch = subprocess.Popen(
                [sys.executable, "manage.py", "watch", "--group", group, "--no-live", "--metrics-port", str(port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            scraping = threading.Event()
            if port:
                threading.Thread(target=scrape_every_second, args=(port, scraping), daemon=True).start()
            try:
                rate, cpu_us = watch_throughput(admin, watch, group, topic, count)
            finally:
                scraping.set()
                watch.send_signal(signal.SIGTERM)
                watch.wait(60)
            best[state], cpu[state] = max(best[state], rate), min(cpu[state], cpu_us)
            print(
                f"  round {round_ + 1}, metrics {state}: {rate:,.0f} msg/s, its CPU {cpu_us:.1f} µs a message",
                flush=True,
            )
    ratio = round(best["on"] / best["off"], 3)
    cost = metrics_cost_us_per_message()
    print(f"counting a batch of 2,000 written events: {cost:.2f} µs a message (in-process, no load)", flush=True)
    print(
        f"watch with metrics on: {best['on']:,.0f} msg/s, off: {best['off']:,.0f} msg/s (best of {rounds}): "
        f"ratio {ratio} (target >= 0.95); its own CPU a message on {cpu['on']:.1f} µs, off {cpu['off']:.1f} µs "
        f"(ratio {cpu['off'] / cpu['on']:.3f})",
        flush=True,
    )
    return {
        "metrics_off_msgs_per_s": round(best["off"]),
        "metrics_on_msgs_per_s": round(best["on"]),
        "metrics_ratio": ratio,
        "metrics_off_cpu_us_per_msg": round(cpu["off"], 1),
        "metrics_on_cpu_us_per_msg": round(cpu["on"], 1),
        "metrics_cpu_ratio": round(cpu["off"] / cpu["on"], 3),
        "metrics_count_us_per_msg": round(cost, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 messages and a 5 s latency run")
    parser.add_argument("--messages", type=int, help="messages in the pre-filled topic (default 200,000)")
    parser.add_argument("--watch-log", type=Path, help="write the watch process's log to this file")
    parser.add_argument("--metrics-only", action="store_true", help="only the metrics off/on comparison")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds of the metrics comparison (2)")
    args = parser.parse_args()
    count = args.messages or (20_000 if args.quick else 200_000)
    latency_seconds = 5 if args.quick else 20

    call_command("migrate", verbosity=0)
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    topic, live_topic, probe_topic = (f"bench.watch.{uuid.uuid4().hex[:8]}" for _ in range(3))
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(live_topic, 4, 1), NewTopic(probe_topic, 1, 1)])
    producer = KafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, linger_ms=2, acks=1, enable_idempotence=False
    )
    figures: dict = {"messages": count}
    watch = None
    print("Note: the machine (2 cores) may be shared with other work; figures vary with its load.")
    try:
        print(f"filling {topic} (4 partitions) with {count} envelope messages…", flush=True)
        started = time.perf_counter()
        fill_topic(producer, topic, count)
        print(f"  filled in {time.perf_counter() - started:.1f} s", flush=True)
        if args.metrics_only:
            figures.update(compare_metrics(admin, topic, count, args.rounds))
            print(json.dumps(figures))
            return  # (the finally below cleans up)

        rate, done, naive_cpu_us = naive(topic, count, 15 if args.quick else 30)
        figures["naive_msgs_per_s"] = round(rate)
        figures["naive_messages_timed"] = done
        figures["naive_cpu_us_per_msg"] = round(naive_cpu_us, 1)
        print(
            f"(a) naive insert_one consumer: {figures['naive_msgs_per_s']} msg/s ({done} messages; "
            f"its own CPU {figures['naive_cpu_us_per_msg']} µs a message)",
            flush=True,
        )
        figures["raw_insert_many_msgs_per_s"] = round(raw_insert_many(topic, count))
        print(f"(b) raw insert_many (ceiling): {figures['raw_insert_many_msgs_per_s']} msg/s", flush=True)

        Route.objects.all().delete()
        Route.objects.create(name="bench", topic=topic, collection="watched", timestamp_field="laser_ts_ns")
        group = f"bench-watch-{uuid.uuid4().hex[:6]}"
        watch = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "watch",
                "--group",
                group,
                "--name",
                "bench",
                "--metrics-port",
                str(free_port()),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            stderr=args.watch_log.open("w") if args.watch_log else subprocess.DEVNULL,
        )
        rate, cpu_us = watch_throughput(admin, watch, group, topic, count)
        figures["watch_msgs_per_s"] = round(rate)
        figures["watch_cpu_us_per_msg"] = round(cpu_us, 1)
        figures["watch_vs_naive"] = round(rate / figures["naive_msgs_per_s"], 2)
        figures["watch_vs_raw_insert_many"] = round(rate / figures["raw_insert_many_msgs_per_s"], 2)
        print(
            f"(c) manage.py watch: {figures['watch_msgs_per_s']} msg/s = "
            f"{figures['watch_vs_naive']}x naive, {figures['watch_vs_raw_insert_many']}x raw insert_many "
            f"(targets: >= 10x, >= 0.5x)",
            flush=True,
        )
        print(
            f"    the watch process's own CPU: {figures['watch_cpu_us_per_msg']} µs a message "
            f"(on a server that cost nothing, at most {1e6 / cpu_us:,.0f} msg/s on one core, "
            f"{naive_cpu_us / cpu_us:.1f}x naive's CPU-bound {1e6 / naive_cpu_us:,.0f})",
            flush=True,
        )
        if SERVER_PID:
            figures.update({f"server_cpu_us_per_msg_{name}": round(us, 1) for name, us in SERVER_US.items()})
            print(
                "    the MongoDB server's CPU a message: "
                + ", ".join(f"{name} {us:.1f} µs" for name, us in SERVER_US.items())
                + f" (so the server alone caps any batching consumer at "
                f"{SERVER_US['naive'] / SERVER_US['raw_insert_many']:.1f}x naive)",
                flush=True,
            )

        # Searching what was just stored: through the time index, and the same find on the server.
        window = (datetime(2025, 11, 24, 16, 0, 30, tzinfo=UTC), datetime(2025, 11, 24, 16, 0, 40, tzinfo=UTC))
        for name, query in [
            ("newest", store.EventQuery(collection="watched", source="laser")),
            ("range", store.EventQuery(collection="watched", since=window[0], until=window[1])),
        ]:
            started = time.perf_counter()
            result = store.search(query)
            figures[f"search_{name}_ms"] = round((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            bare = list(mongo.database()["watched"].find(query.mongo_filter()).sort("_ts", -1).limit(query.limit))
            figures[f"search_{name}_bare_find_ms"] = round((time.perf_counter() - started) * 1000)
            assert [d["_id"] for d in result.events] == [d["_id"] for d in bare] and result.indexed
        print(
            f"search, newest 100 by source: {figures['search_newest_ms']} ms (the same find on the server: "
            f"{figures['search_newest_bare_find_ms']} ms); 10 s time range ({len(result.events)} events): "
            f"{figures['search_range_ms']} ms (find: {figures['search_range_bare_find_ms']} ms)",
            flush=True,
        )

        # The same watch process picks the new route up without a restart.
        Route.objects.create(name="bench-live", topic=live_topic, collection="live")
        Route.objects.create(name="bench-probe", topic=probe_topic, collection="probe")
        producer.send(probe_topic, orjson.dumps(envelope(count + 10_000_000)))
        producer.flush()
        probe_id = envelope(count + 10_000_000)["event_id"]
        deadline = time.monotonic() + 60
        while mongo.database()["probe"].find_one({"_id": probe_id}) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies, sent = latency(producer, live_topic, probe_topic, latency_seconds, count)
        figures["latency_rate_hz"] = round(sent / latency_seconds)
        figures["latency_probes"] = len(latencies)
        figures["latency_p50_ms"] = round(percentile(latencies, 50), 1)
        figures["latency_p99_ms"] = round(percentile(latencies, 99), 1)
        figures["latency_max_ms"] = round(max(latencies), 1)
        # Every message, not just the probes: envelope stamped (just before send) → watcher wrote it.
        lags = [
            (doc["_ingest"]["at"].timestamp() * 1e9 - doc["relay_ts_ns"]) / 1e6
            for doc in mongo.database()["live"].find({}, {"_ingest.at": 1, "relay_ts_ns": 1})
            if doc.get("relay_ts_ns")
        ]
        figures["ingest_lag_p50_ms"] = round(percentile(lags, 50), 1)
        figures["ingest_lag_p99_ms"] = round(percentile(lags, 99), 1)
        print(
            f"end-to-end latency at {figures['latency_rate_hz']} Hz ({len(latencies)} probes): "
            f"p50 {figures['latency_p50_ms']} ms, p99 {figures['latency_p99_ms']} ms, "
            f"max {figures['latency_max_ms']} ms (target p99 < 250 ms)",
            flush=True,
        )
        print(
            f"  all {len(lags)} messages, produced → batch handed to MongoDB: p50 {figures['ingest_lag_p50_ms']} ms, "
            f"p99 {figures['ingest_lag_p99_ms']} ms",
            flush=True,
        )

        watch.send_signal(signal.SIGTERM)
        summary = watch.communicate(timeout=60)[0].strip().splitlines()
        figures["watch_exit_code"] = watch.returncode
        print(f"watch exited {watch.returncode}: {summary[-1] if summary else ''}")
        figures.update(compare_metrics(admin, topic, count, args.rounds))
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
        producer.close()
        admin.delete_topics([topic, live_topic, probe_topic])
        admin.close()
        mongo.drop_databases()
        for path in WORKDIR.iterdir():
            path.unlink()
        WORKDIR.rmdir()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
