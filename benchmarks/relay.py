"""Relay throughput, added latency and loss, against a raw pyzmq SUB→PUB forwarder (the ceiling).

    .venv/bin/python benchmarks/relay.py [--quick] [--live] [--base DIR] [--metrics-only] [--rounds N]

Both run as their own processes, fed by the same generator and read by the same sink: the
relay with harmonisation, the durable log and Kafka produce on. `--live` runs the relay's status
thread too (MongoDB and Redis twice a second: the shots recorded and indexed by key, time and
number); `--base DIR` (repeatable) measures the relay of another checkout (e.g. `git archive main`) in
the same run, after this one, and prints its figures beside. Then the relay's burst throughput
with its Prometheus metrics off (`--metrics-port 0`) and on, alternately, best of each
(`--metrics-only`: just that). The last line is one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
import zmq
from bench_common import free_port, scrape_every_second

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def forwarder(inbound: str, outbound: str) -> None:
    """The ceiling: receive and re-publish, nothing else."""
    context = zmq.Context()
    sub, pub = context.socket(zmq.SUB), context.socket(zmq.PUB)
    for socket in (sub, pub):
        socket.setsockopt(zmq.RCVHWM if socket is sub else zmq.SNDHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(inbound)
    pub.bind(outbound)
    while True:
        pub.send_multipart(sub.recv_multipart())


class Sink(threading.Thread):
    """Counts what comes out and the one-way latency (same host clock on both sides)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.socket = zmq.Context.instance().socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"laser")
        self.socket.connect(endpoint)
        self.count, self.first, self.last = 0, None, None
        self.latencies_us: list[float] = []
        self.shots: set[int] = set()
        self.running = True

    def run(self) -> None:
        while self.running:
            if not self.socket.poll(100):
                continue
            frames = self.socket.recv_multipart()
            now = time.time_ns()
            message = orjson.loads(frames[1])
            values = message.get("values", message)
            if values.get("kind") == "probe" or message.get("kind") == "probe":
                continue
            self.count += 1
            self.first = self.first or now
            self.last = now
            if "sent_ns" in values:
                self.latencies_us.append((now - values["sent_ns"]) / 1000)
            shot = message.get("shot_number", message.get("shot"))
            if shot is not None:
                self.shots.add(shot)

    def reset(self) -> None:
        self.count, self.first, self.last = 0, None, None
        self.latencies_us, self.shots = [], set()


def wait_connected(generator, sink: Sink) -> None:
    """PUB/SUB drops until subscriptions propagate: probe until the sink hears something."""
    deadline = time.monotonic() + 20
    seen = sink.count
    while time.monotonic() < deadline:
        generator.send_multipart([b"laser", b'{"kind": "probe"}'])
        time.sleep(0.05)
        if sink.socket.poll(0) or sink.count != seen:
            break
    time.sleep(0.5)
    sink.reset()


def drain(sink: Sink, idle: float = 1.5) -> None:
    last, since = -1, time.monotonic()
    while time.monotonic() - since < idle:
        if sink.count != last:
            last, since = sink.count, time.monotonic()
        time.sleep(0.05)


def burst(generator, count: int) -> None:
    payload = orjson.dumps(
        {"shot": 0, "energy_J": 10.12, "pulse_fs": 29.8, "mode": "single", "ts_ns": 1_764_000_000_000_000_000}
    )
    for n in range(1, count + 1):
        generator.send_multipart([b"laser", payload.replace(b'"shot":0', b'"shot":%d' % n)])


def paced(generator, rate: float, seconds: float, start_shot: int) -> int:
    interval, sent = 1.0 / rate, 0
    started = time.perf_counter()
    while True:
        due = started + sent * interval
        now = time.perf_counter()
        if now - started >= seconds:
            return sent
        if now < due:
            if due - now > 0.0005:
                time.sleep(due - now - 0.0003)
            continue
        generator.send_multipart(
            [b"laser", orjson.dumps({"shot": start_shot + sent, "sent_ns": time.time_ns(), "energy_J": 10.0})]
        )
        sent += 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; its children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def measure(name: str, start_process, count: int, latency_seconds: float, loss_seconds: float | None) -> dict:
    context = zmq.Context.instance()
    generator = context.socket(zmq.PUB)
    generator.setsockopt(zmq.SNDHWM, 0)
    inbound = free_endpoint()
    generator.bind(inbound)
    outbound = free_endpoint()
    process = start_process(inbound, outbound)
    sink = Sink(outbound)
    sink.start()
    try:
        wait_connected(generator, sink)
        cpu_before = cpu_seconds(process.pid)
        burst(generator, count)
        drain(sink)
        elapsed = (sink.last - sink.first) / 1e9 if sink.count > 1 else float("nan")
        figures = {
            f"{name}_throughput_msgs_per_s": round(sink.count / elapsed) if elapsed else 0,
            f"{name}_burst_received": sink.count,
            # its own CPU a message in the burst (the drain's idle second adds a little)
            f"{name}_cpu_us_per_msg": round((cpu_seconds(process.pid) - cpu_before) / max(sink.count, 1) * 1e6, 2),
        }
        sink.reset()
        paced(generator, 1000, latency_seconds, start_shot=10_000_000)
        drain(sink, 1.0)
        figures[f"{name}_latency_p50_us"] = round(pct(sink.latencies_us, 50), 1)
        figures[f"{name}_latency_p99_us"] = round(pct(sink.latencies_us, 99), 1)
        if loss_seconds:
            sink.reset()
            sent = paced(generator, 10_000, loss_seconds, start_shot=20_000_000)
            drain(sink, 2.0)
            figures[f"{name}_10khz_sent"] = sent
            figures[f"{name}_10khz_lost"] = sent - len(sink.shots)
        return figures
    finally:
        sink.running = False
        process.terminate()
        process.wait(60)
        generator.close(0)


def compare_metrics(start_relay, count: int, rounds: int) -> dict:
    """Burst throughput with the metrics off and on, alternately (the machine's load drifts), best of each."""
    best = {"off": 0, "on": 0}
    cpu = {"off": float("inf"), "on": float("inf")}
    for round_ in range(rounds):
        for state in ("off", "on") if round_ % 2 == 0 else ("on", "off"):  # neither always first
            port = free_port() if state == "on" else 0
            scraping = threading.Event()
            if port:  # scraped once a second, as Prometheus does
                threading.Thread(target=scrape_every_second, args=(port, scraping), daemon=True).start()
            try:
                figures = measure("relay", lambda i, o, port=port: start_relay(i, o, port), count, 0.1, None)
            finally:
                scraping.set()
            rate, cpu_us = figures["relay_throughput_msgs_per_s"], figures["relay_cpu_us_per_msg"]
            best[state], cpu[state] = max(best[state], rate), min(cpu[state], cpu_us)
            print(f"  round {round_ + 1}, metrics {state}: {rate} msg/s, its CPU {cpu_us} µs a message", flush=True)
    ratio = round(best["on"] / best["off"], 3) if best["off"] else float("nan")
    print(
        f"relay with metrics on: {best['on']} msg/s, off: {best['off']} msg/s (best of {rounds}): "
        f"ratio {ratio} (target >= 0.95); its own CPU a message on {cpu['on']} µs, off {cpu['off']} µs "
        f"(ratio {cpu['off'] / cpu['on']:.3f})",
        flush=True,
    )
    return {
        "metrics_off_msgs_per_s": best["off"],
        "metrics_on_msgs_per_s": best["on"],
        "metrics_ratio": ratio,
        "metrics_off_cpu_us_per_msg": cpu["off"],
        "metrics_on_cpu_us_per_msg": cpu["on"],
        "metrics_cpu_ratio": round(cpu["off"] / cpu["on"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, 10 s loss run")
    parser.add_argument("--live", action="store_true", help="with the status thread (records and indexes shots)")
    parser.add_argument(
        "--base", type=Path, action="append", default=[], help="also measure the relay of this checkout (repeatable)"
    )
    parser.add_argument("--metrics-only", action="store_true", help="only the metrics off/on comparison")
    parser.add_argument("--rounds", type=int, default=3, help="off/on rounds of the metrics comparison (3)")
    parser.add_argument("--forwarder", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forwarder:
        forwarder(*args.forwarder)
        return
    count = 50_000 if args.quick else 200_000
    latency_seconds = 5 if args.quick else 20
    loss_seconds = 10 if args.quick else 60
    log_dir = Path(tempfile.mkdtemp(prefix="labbook-bench-relay-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labbook.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{log_dir / 'config.sqlite3'}",
        "LABBOOK_LOG_LEVEL": "WARNING",
        "RELAY_KAFKA_TOPIC": f"bench.relay.{uuid.uuid4().hex[:8]}",
    }
    databases = []  # one per relay measured (its shots recorded afresh), dropped at the end

    def start_forwarder(inbound, outbound):
        return subprocess.Popen([PYTHON, __file__, "--forwarder", inbound, outbound])

    def relay_in(root: Path):
        databases.append(f"labbook_bench_relay_{uuid.uuid4().hex[:8]}")
        relay_env = {**env, "MONGODB_DB": databases[-1]}

        def start_relay(inbound, outbound, metrics_port: int = 0):
            # --metrics-port only for this checkout: a --base checkout may predate the option
            metrics = ["--metrics-port", str(metrics_port)] if root == ROOT else []
            return subprocess.Popen(
                [
                    PYTHON,
                    str(root / "manage.py"),
                    "relay",
                    "--input",
                    inbound,
                    "--pub",
                    outbound,
                    "--snapshot",
                    free_endpoint(),
                    "--log-dir",
                    str(log_dir / root.name),
                    *([] if args.live else ["--no-live"]),
                    *metrics,
                ],
                cwd=root,
                env=relay_env,
                stdout=subprocess.DEVNULL,
            )

        return start_relay

    figures = {"messages": count}
    if args.metrics_only:
        figures.update(compare_metrics(relay_in(ROOT), count, args.rounds))
        print(json.dumps(figures))
        return
    print(f"{count} messages in a burst, {latency_seconds} s at 1 kHz, {loss_seconds} s at 10 kHz", flush=True)
    figures.update(measure("forwarder", start_forwarder, count, latency_seconds, None))
    print(
        f"raw SUB→PUB forwarder: {figures['forwarder_throughput_msgs_per_s']} msg/s, latency p50 "
        f"{figures['forwarder_latency_p50_us']} µs p99 {figures['forwarder_latency_p99_us']} µs",
        flush=True,
    )
    figures.update(measure("relay", relay_in(ROOT), count, latency_seconds, loss_seconds))
    figures["throughput_ratio"] = round(
        figures["relay_throughput_msgs_per_s"] / figures["forwarder_throughput_msgs_per_s"], 3
    )
    figures["added_latency_p50_us"] = round(figures["relay_latency_p50_us"] - figures["forwarder_latency_p50_us"], 1)
    figures["added_latency_p99_us"] = round(figures["relay_latency_p99_us"] - figures["forwarder_latency_p99_us"], 1)
    figures["log_lines"] = sum(1 for f in (log_dir / ROOT.name).glob("relay-*.jsonl") for _ in open(f, "rb"))
    figures.update(compare_metrics(relay_in(ROOT), count, args.rounds))
    print(
        f"relay (harmonise + log + Kafka): {figures['relay_throughput_msgs_per_s']} msg/s "
        f"(ratio {figures['throughput_ratio']}, target >= 0.5); latency p50 {figures['relay_latency_p50_us']} µs "
        f"p99 {figures['relay_latency_p99_us']} µs; added p50 {figures['added_latency_p50_us']} µs "
        f"p99 {figures['added_latency_p99_us']} µs (target < 1000 µs); "
        f"10 kHz for {loss_seconds} s: {figures['relay_10khz_lost']} of {figures['relay_10khz_sent']} lost "
        f"(target 0)",
        flush=True,
    )
    for number, base in enumerate(args.base, start=1):
        name = "base_relay" if number == 1 else f"base{number}_relay"
        figures[f"{name}_root"] = str(base)
        figures.update(measure(name, relay_in(base.resolve()), count, latency_seconds, loss_seconds))
        print(
            f"relay of {base}: {figures[f'{name}_throughput_msgs_per_s']} msg/s; latency p50 "
            f"{figures[f'{name}_latency_p50_us']} µs p99 {figures[f'{name}_latency_p99_us']} µs; "
            f"10 kHz: {figures[f'{name}_10khz_lost']} of {figures[f'{name}_10khz_sent']} lost",
            flush=True,
        )
    import pymongo

    client = pymongo.MongoClient(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    for name in databases:
        client.drop_database(name)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
