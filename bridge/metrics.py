"""Prometheus metrics on an opt-in local listener (`[bridge] metrics_listen`).

A custom collector reads one consistent `Stats` snapshot per scrape, so the
numbers never disagree with each other and nothing is counted twice.

The listener serves each connection on a thread of its own, so it bounds them
(bridge.listener): a connection that sends nothing for CONNECTION_TIMEOUT
seconds is closed, a request must arrive within REQUEST_DEADLINE seconds, and
past MAX_CONNECTIONS open at once (MAX_PER_ADDRESS from one address) a new one
is closed at once (logged, damped). Idle or trickling clients then cost at most
that many threads, never the bridge's memory.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bridge.listener import BoundedRequests, CappedThreads, RequestLimits
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
        # `report`: gateway, or devices (the sub-device report of V5R7C01 and V6)
        labels = ["target", "report"]
        sent = CounterMetricFamily("se3_reports_sent", "reports delivered", labels=labels)
        failed = CounterMetricFamily(
            "se3_reports_failed", "report delivery attempts that failed", labels=labels
        )
        last = GaugeMetricFamily(
            "se3_report_last_success_timestamp_seconds",
            "Unix time of the last delivered report", labels=labels,
        )
        for key in sorted(set(snap.sent) | set(snap.failed)):
            report, target = key
            sent.add_metric([target, report], snap.sent[key])
            failed.add_metric([target, report], snap.failed[key])
            if key in snap.last_success:
                last.add_metric([target, report], snap.last_success[key])
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


CONNECTION_TIMEOUT = 5.0  # seconds a connection may stay silent (each read)
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte to its end
MAX_CONNECTIONS = 8  # served at once; a scraper needs one
MAX_PER_ADDRESS = 4


class _Handler(BoundedRequests, WSGIRequestHandler):
    def request_limits(self) -> RequestLimits:
        # Read at each connection (tests shorten them).
        return RequestLimits(idle=CONNECTION_TIMEOUT, deadline=REQUEST_DEADLINE)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _Server(CappedThreads, ThreadingMixIn, WSGIServer):
    daemon_threads = True
    label = "metrics listener"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Read at each start (tests lower it).
        super().__init__(*args, max_connections=MAX_CONNECTIONS,
                         max_per_address=MAX_PER_ADDRESS, **kwargs)


def serve(stats: Stats, connected: Callable[[], bool], listen: str) -> WSGIServer:
    """Start the metrics listener on `HOST:PORT` in a daemon thread."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, connected))
    family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (_Server,), {"address_family": family})
    server: WSGIServer = make_server(host, int(port), make_wsgi_app(registry), server_class,
                                     _Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("metrics on http://%s/metrics", listen)
    return server
