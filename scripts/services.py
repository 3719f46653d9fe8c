"""Install, start, stop and check the real servers labbook needs on this machine.

    python scripts/services.py up|down|status [mongo] [kafka] [redis] [prometheus]

Each service binds to 127.0.0.1 only and keeps its data, logs and pid file under
.services/ (ignored by git). A service whose environment variable (MONGODB_URI,
KAFKA_BOOTSTRAP_SERVERS, REDIS_URL) is set is external: nothing is installed or
started for it, `up` only checks that it answers. `down` stops only processes
whose pid file this script wrote. Ports: LABBOOK_MONGO_PORT (27017), LABBOOK_KAFKA_PORT
(9092), LABBOOK_KAFKA_CONTROLLER_PORT (9093), LABBOOK_REDIS_PORT (6379), LABBOOK_PROMETHEUS_PORT
(9090); settings.py reads the same variables. `up` with no names starts mongo, kafka and redis;
prometheus only when named (scripts/run does).
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("LABBOOK_SERVICES_DIR", ROOT / ".services"))
READY_TIMEOUT = float(os.environ.get("LABBOOK_SERVICES_TIMEOUT", "120"))


class ServiceError(RuntimeError):
    pass


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed:\n{result.stdout}{result.stderr}")


def reachable(address: str) -> None:
    """Fail fast when nothing listens at the first host:port of `address` (clients retry for long)."""
    netloc = address.split("://", 1)[-1].split("/", 1)[0].split(",", 1)[0].rsplit("@", 1)[-1]
    host, _, port = netloc.rpartition(":")
    if host and port.isdigit():
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            pass


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Service:
    name = ""
    env_var = ""
    port = 0

    def __init__(self) -> None:
        self.dir = STATE / self.name
        self.pid_file = self.dir / f"{self.name}.pid"
        self.log_file = self.dir / f"{self.name}.log"

    # --- to be provided by each service -------------------------------------------
    def install(self) -> None: ...

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None: ...

    def ping(self, address: str) -> None:
        """Raise unless the server at `address` answers a real protocol request."""
        raise NotImplementedError

    def local_address(self) -> str:
        raise NotImplementedError

    # --- shared behaviour -----------------------------------------------------------
    @property
    def external(self) -> str | None:
        return os.environ.get(self.env_var) or None

    def pid(self) -> int | None:
        """The pid of the process this script started, if it is still running."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        marker = self.command()[0]
        return pid if marker in cmdline else None

    def answers(self) -> bool:
        try:
            address = self.external or self.local_address()
            reachable(address)
            self.ping(address)
            return True
        except Exception:
            return False

    def up(self) -> str:
        if self.external:
            self.wait_ready(self.external, process=None)
            return f"external at {self.external}"
        if self.pid():
            self.wait_ready(self.local_address(), process=None)
            return f"already running (pid {self.pid()})"
        if port_open(self.port):
            raise ServiceError(
                f"{self.name}: port {self.port} on 127.0.0.1 is used by a process this script did "
                f"not start; stop it, or set {self.env_var} to use that server"
            )
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.install()
        self.prepare()
        log = open(self.log_file, "ab")
        process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,
        )
        self.pid_file.write_text(str(process.pid))
        self.wait_ready(self.local_address(), process)
        return f"started (pid {process.pid}) in {time.monotonic() - started:.1f} s"

    def wait_ready(self, address: str, process: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise ServiceError(
                    f"{self.name} exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{tail}"
                )
            try:
                reachable(address)
                self.ping(address)
                return
            except Exception as exc:  # the server is not answering yet
                last_error = exc
                time.sleep(0.25)
        raise ServiceError(
            f"{self.name} at {address} did not become ready within {READY_TIMEOUT:.0f} s: "
            f"{last_error}" + (f" (log: {self.log_file})" if process else "")
        )

    def down(self) -> str:
        if self.external:
            return f"external at {self.external}, left alone"
        pid = self.pid()
        if not pid:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break  # a zombie of ours: it has exited
            time.sleep(0.1)
        else:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> str:
        where = self.external or self.local_address()
        owner = "external" if self.external else (f"pid {self.pid()}" if self.pid() else "not started here")
        if not self.answers():
            raise ServiceError(f"DOWN at {where} ({owner})")
        return f"up at {where} ({owner})"


class Mongo(Service):
    """FerretDB v1 with its SQLite backend, built from the Go module proxy."""

    name = "mongo"
    env_var = "MONGODB_URI"
    port = int(os.environ.get("LABBOOK_MONGO_PORT", "27017"))
    binary = STATE / "bin" / "ferretdb"

    def local_address(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def install(self) -> None:
        src = ROOT / "services" / "ferretdb"
        built = self.binary.stat().st_mtime if self.binary.exists() else 0
        if all((src / name).stat().st_mtime <= built for name in ("main.go", "go.mod", "go.sum")):
            return  # rebuilt when the wrapper or its dependencies change
        if not shutil.which("go"):
            raise ServiceError("mongo: the `go` command is needed to build FerretDB")
        print("  building FerretDB (about a minute the first time)…", flush=True)
        run(["go", "build", "-o", str(self.binary), "."], cwd=src)

    def command(self) -> list[str]:
        return [str(self.binary), "-listen", f"127.0.0.1:{self.port}", "-data", str(self.dir / "data")]

    def ping(self, address: str) -> None:
        import pymongo

        with pymongo.MongoClient(address, serverSelectionTimeoutMS=1000) as client:
            client.admin.command("ping")


class Kafka(Service):
    """A single-node KRaft Apache Kafka broker assembled from Maven Central jars."""

    name = "kafka"
    env_var = "KAFKA_BOOTSTRAP_SERVERS"
    port = int(os.environ.get("LABBOOK_KAFKA_PORT", "9092"))
    controller_port = int(os.environ.get("LABBOOK_KAFKA_CONTROLLER_PORT", "9093"))

    @property
    def lib(self) -> Path:
        return self.dir / "lib"

    def local_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def install(self) -> None:
        if (self.lib / ".complete").exists():
            return
        for tool in ("mvn", "java"):
            if not shutil.which(tool):
                raise ServiceError(f"kafka: the `{tool}` command is needed")
        print("  fetching Kafka's jars with Maven (first time only)…", flush=True)
        shutil.rmtree(self.lib, ignore_errors=True)
        run(
            [
                "mvn",
                "-B",
                "-q",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self.lib}",
            ],
            cwd=ROOT / "services" / "kafka",
        )
        (self.lib / ".complete").touch()

    def java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={ROOT / 'services' / 'kafka' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            f"{self.lib}/*",
            main_class,
            *args,
        ]

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.dir / "server.properties"))

    def prepare(self) -> None:
        data = self.dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "2097152",
            "auto.create.topics.enable": "true",
        }
        (self.dir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        if not (data / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option
                cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            run(
                self.java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.dir / "server.properties"),
                )
            )

    def ping(self, address: str) -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=3000)
        try:
            admin.describe_cluster()
        finally:
            admin.close()


class Redis(Service):
    """Debian's redis-server, without persistence, for the Channels layer."""

    name = "redis"
    env_var = "REDIS_URL"
    port = int(os.environ.get("LABBOOK_REDIS_PORT", "6379"))

    def local_address(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def install(self) -> None:
        if shutil.which("redis-server"):
            return
        print("  installing redis-server with apt-get (first time only)…", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run([*sudo, "apt-get", "update", "-qq"], env=env)
        run([*sudo, "apt-get", "install", "-y", "-qq", "redis-server"], env=env)

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]

    def ping(self, address: str) -> None:
        import redis

        redis.Redis.from_url(address, socket_timeout=1).ping()


def prometheus_config(targets: dict[str, str], rule_file: str) -> str:
    """Prometheus's configuration: every `targets` job (name → host:port[/path]) scraped each second."""
    lines = [
        "# Written by scripts/services.py (prometheus_config); grafana/prometheus.yml is its output for the",
        "# default ports. Every process scripts/run starts is scraped once a second.",
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        f"  - {rule_file}",
        "scrape_configs:",
    ]
    for job, target in targets.items():
        address, _, path = target.partition("/")
        lines += [f"  - job_name: {job}", f"    metrics_path: /{path or 'metrics'}", "    static_configs:"]
        lines += [f'      - targets: ["{address}"]']
    return "\n".join(lines) + "\n"


def run_targets() -> dict[str, str]:
    """What scripts/run starts, at the ports settings.py reads from the same variables."""
    return {
        "relay": f"127.0.0.1:{os.environ.get('RELAY_METRICS_PORT', '9101')}",
        "watch": f"127.0.0.1:{os.environ.get('WATCHER_METRICS_PORT', '9102')}",
        "web": f"127.0.0.1:{os.environ.get('LABBOOK_WEB_PORT', '8000')}/metrics",
        "prometheus": f"127.0.0.1:{Prometheus.port}",
    }


class Prometheus(Service):
    """Debian's prometheus (2.42), its binary run directly (not its systemd unit), scraping the run's processes."""

    name = "prometheus"
    env_var = "LABBOOK_PROMETHEUS_URL"
    port = int(os.environ.get("LABBOOK_PROMETHEUS_PORT", "9090"))
    rules = ROOT / "grafana" / "alerts.yml"

    def local_address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self) -> None:
        if shutil.which("prometheus"):
            return
        print("  installing prometheus with apt-get (first time only)…", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run([*sudo, "apt-get", "update", "-qq"], env=env)
        run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"], env=env)

    def targets(self) -> dict[str, str]:
        return run_targets()

    def prepare(self) -> None:
        (self.dir / "prometheus.yml").write_text(prometheus_config(self.targets(), str(self.rules)))

    def command(self) -> list[str]:
        return [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=15d",
        ]

    def ping(self, address: str) -> None:
        import urllib.request

        with urllib.request.urlopen(f"{address}/-/ready", timeout=2) as response:
            if response.status != 200:
                raise ServiceError(f"prometheus at {address} is not ready ({response.status})")


SERVICES = {service.name: service for service in (Mongo(), Kafka(), Redis(), Prometheus())}
DEFAULT = ("mongo", "kafka", "redis")  # `up`/`down`/`status` without names


@contextmanager
def exclusive(service: Service):
    """One `up` or `down` of a service at a time on this machine (`scripts/run` and `scripts/test`
    started together): the second waits, then finds the server the first started."""
    service.dir.mkdir(parents=True, exist_ok=True)
    with open(service.dir / f"{service.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "down", "status"):
        print(__doc__)
        return 2
    action, names = argv[0], argv[1:] or list(DEFAULT)
    unknown = set(names) - set(SERVICES)
    if unknown:
        print(f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(SERVICES)}")
        return 2
    failed = False
    for name in names:
        try:
            with exclusive(SERVICES[name]) if action != "status" else nullcontext():
                print(f"{name}: {getattr(SERVICES[name], action)()}", flush=True)
        except ServiceError as exc:
            print(f"{name}: {'' if action == 'status' else 'FAILED: '}{exc}", file=sys.stderr, flush=True)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
