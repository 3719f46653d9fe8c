"""The relay's Prometheus metrics (`manage.py relay --metrics-port`, RELAY_METRICS_PORT).

The relay counts what it does anyway (its stats, each input's and each source's counters, the
shipper's shared values); a collector reads those plain integers when Prometheus scrapes, so the
~30 k msg/s loop pays nothing for them. Only the log write (once per run of up to 64 messages) and
the interval fdatasync are timed into histograms. Labels: an input's endpoint and an envelope's
source, both from the admin's configuration; never a shot key.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.metrics import LATENCY_BUCKETS


class RelayMetrics(Collector):
    """The metrics of one relay; its counts are read from the relay at scrape time."""

    def __init__(self, relay, registry: CollectorRegistry) -> None:
        """`relay`: a services.loop.Relay (not imported here: the loop imports this module)."""
        self.relay = relay
        self.log_write = Histogram(
            "labbook_relay_log_write_seconds",
            "Time to write one run of envelopes (up to 64) to the durable log (one write(2)).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.log_fsync = Histogram(
            "labbook_relay_log_fsync_seconds",
            "Time of each group-commit fdatasync of the durable log (RELAY_LOG_FSYNC=interval).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        registry.register(self)

    def collect(self):
        relay = self.relay
        by_input = [
            CounterMetricFamily(f"labbook_relay_{name}", text, labels=["input"])
            for name, text in (
                ("messages_received", "Messages received from the laser, per input (its endpoint)."),
                ("envelopes_published", "Envelopes published (PUB socket, durable log), per input."),
                ("parse_rejects", "Messages that could not be read (logged as rejected), per input."),
            )
        ]
        for endpoint, counts in list(relay.input_counts.items()):
            for family, value in zip(by_input, (counts.received, counts.published, counts.rejected), strict=True):
                family.add_metric([endpoint], value)
        yield from by_input

        by_source = {
            "shots": CounterMetricFamily("labbook_relay_shots", "Shots relayed, per source.", labels=["source"]),
            "gaps": CounterMetricFamily(
                "labbook_relay_gaps", "Jumps in a source's shot numbers (shots missing).", labels=["source"]
            ),
            "missing": CounterMetricFamily(
                "labbook_relay_missing_shots", "Shot numbers skipped in those gaps.", labels=["source"]
            ),
            "duplicates": CounterMetricFamily(
                "labbook_relay_duplicate_shots", "The last shot sent again by the laser.", labels=["source"]
            ),
            "resets": CounterMetricFamily(
                "labbook_relay_counter_resets", "A source's shot counter starting again (a new run).", labels=["source"]
            ),
        }
        last_number = GaugeMetricFamily(
            "labbook_relay_last_shot_number", "The number of a source's last shot.", labels=["source"]
        )
        last_time = GaugeMetricFamily(
            "labbook_relay_last_laser_time_seconds",
            "The laser's time of a source's last shot (Unix time, s).",
            labels=["source"],
        )
        for source, tracker in list(relay.counters.trackers.items()):
            for key, family in by_source.items():
                family.add_metric([source], getattr(tracker, key))
            if tracker.last is not None:
                last_number.add_metric([source], tracker.last)
            if tracker.last_laser_ts_ns is not None:
                last_time.add_metric([source], tracker.last_laser_ts_ns / 1e9)
        yield from by_source.values()
        yield last_number
        yield last_time

        shipper = relay.shipper
        if shipper is not None:  # Kafka on
            yield GaugeMetricFamily(
                "labbook_relay_kafka_backlog_envelopes",
                "Envelopes published but not yet acknowledged by Kafka (they wait in the durable log).",
                value=max(0, relay.stats.published - shipper.shipped),
            )
            yield CounterMetricFamily(
                "labbook_relay_kafka_shipped", "Envelopes Kafka acknowledged.", value=shipper.shipped
            )
            yield GaugeMetricFamily(
                "labbook_relay_kafka_connected",
                "1 when the shipper's last produce worked.",
                value=int(shipper.connected),
            )
            yield CounterMetricFamily(
                "labbook_relay_kafka_shipper_restarts",
                "Times the Kafka shipper process died and was started again.",
                value=shipper.restarts,
            )
        yield GaugeMetricFamily(
            "labbook_relay_log_unsynced_seconds",
            "Fsync lag: how long the oldest logged line not yet on disk has waited (0: all synced).",
            value=relay.log.unsynced_seconds(),
        )
        if relay.last_message:
            yield GaugeMetricFamily(
                "labbook_relay_heartbeat_age_seconds",
                "Seconds since the relay last sent on its PUB socket (an envelope or a heartbeat).",
                value=time.monotonic() - relay.last_message,
            )
