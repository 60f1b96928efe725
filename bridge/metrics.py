"""Prometheus metrics on an opt-in local listener (`[bridge] metrics_listen`).

A custom collector reads one consistent `Stats` snapshot per scrape, so the
numbers never disagree with each other and nothing is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bridge.stats import Stats

logger = logging.getLogger(__name__)


class StatsCollector(Collector):
    def __init__(self, stats: Stats, connected: Callable[[], bool]) -> None:
        self._stats = stats
        self._connected = connected

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snap = self._stats.snapshot()
        yield CounterMetricFamily(
            "se3_records_accepted", "MQTT records accepted", value=snap.accepted
        )
        rejected = CounterMetricFamily(
            "se3_records_rejected", "MQTT messages rejected, by reason", labels=["reason"]
        )
        for reason, count in sorted(snap.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        sent = CounterMetricFamily("se3_reports_sent", "reports delivered", labels=["target"])
        failed = CounterMetricFamily(
            "se3_reports_failed", "report delivery attempts that failed", labels=["target"]
        )
        last = GaugeMetricFamily(
            "se3_report_last_success_timestamp_seconds",
            "Unix time of the last delivered report", labels=["target"],
        )
        for target in sorted(set(snap.sent) | set(snap.failed)):
            sent.add_metric([target], snap.sent[target])
            failed.add_metric([target], snap.failed[target])
            if target in snap.last_success:
                last.add_metric([target], snap.last_success[target])
        yield sent
        yield failed
        yield last
        devices = GaugeMetricFamily(
            "se3_devices", "sub-devices in the last report, by status", labels=["status"]
        )
        devices.add_metric(["online"], snap.devices_online)
        devices.add_metric(["offline"], snap.devices_offline)
        yield devices
        yield GaugeMetricFamily(
            "se3_broker_connected", "1 while connected to the MQTT broker",
            value=1 if self._connected() else 0,
        )


def serve(stats: Stats, connected: Callable[[], bool], listen: str) -> WSGIServer:
    """Start the metrics listener on `HOST:PORT` in a daemon thread."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, connected))
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    logger.info("metrics on http://%s/metrics", listen)
    return server
