"""The gateway collector: the box's identity and metrics, retained for the bridge.

`gateway/info` (IP, name, dev_sno, sw_version, sdk_version, MAC) is published
when it changes and after every (re)connect; the retained `config/dev_sno`
topic, when set, replaces `gateway.dev_sno` and is republished at once; `gateway/metrics` every
`collectors.metrics_interval` seconds with `ts` and
`ttl = ttl_factor * metrics_interval`, and with them, where `collectors.sophon_root`
names the Sophon files' root, `gateway/hardware` (collectors.sophon). All carry
`source: "gateway"`; the collector's last will is on `collectors/gateway/status`.

The build files (`sw_version_file`, `sdk_version_file`) are read once at start:
they change with a firmware update, which restarts the services anyway. The
address is looked up every cycle, because DHCP may change it at any time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil

from bridge.config import Config
from bridge.errors import ConfigError, NotReadyError, RecordError
from bridge.mqttclient import Connection, ReplayFence
from bridge.records import parse_record
from bridge.settings import dev_sno_value
from bridge.topics import Kind, Topics
from collectors.host import Address, AddrLike, HostReader, PsutilReader, choose_address, measure
from collectors.session import client_id, connect_once, wait_published
from collectors.sophon import read_hardware
from collectors.ticker import Ticker

logger = logging.getLogger(__name__)

NAME = SOURCE = "gateway"
ROUTE_FILE = Path("/proc/net/route")


def info_record(
    address: Address, name: str, dev_sno: str, sw_version: str, sdk_version: str
) -> dict[str, str]:
    """The `gateway/info` record; optional keys are left out when unknown."""
    record = {
        "gateway_ip": address.ip,
        "gateway_name": name,
        "dev_sno": dev_sno,
        "sw_version": sw_version,
    }
    if sdk_version:
        record["sdk_version"] = sdk_version
    if address.mac:
        record["gateway_mac"] = address.mac
    record["source"] = SOURCE
    return record


def metrics_record(values: Mapping[str, object], ts: float, ttl: float) -> dict[str, object]:
    """A measured record (`gateway/metrics`, `gateway/hardware`): the values, `ts`, `ttl`
    and `source`."""
    return {**values, "ts": ts, "ttl": ttl, "source": SOURCE}


def read_file(path: Path | None, key: str, strip: bool = False) -> str:
    """The UTF-8 text of the file named by config `key`, verbatim unless `strip`.

    ConfigError when no file is named or it is not text; NotReadyError when it
    cannot be read (yet).
    """
    if path is None:
        raise ConfigError(f"{key}: required by this program")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:  # perhaps not mounted yet: worth another try, unlike bad content
        raise NotReadyError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: {path} is not UTF-8 text: {exc}") from exc
    return text.strip() if strip else text


class GatewayCollector:
    """Publishes `gateway/info` and `gateway/metrics`: `run()` until `stop()`, or `once()`."""

    def __init__(
        self,
        config: Config,
        reader: HostReader | None = None,
        interfaces: Callable[[], Mapping[str, Sequence[AddrLike]]] = psutil.net_if_addrs,
        route_file: Path = ROUTE_FILE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config.require("gateway.sn", "gateway.dev_sno", "gateway.sw_version_file")
        gateway = config.gateway
        self._config = config
        self._topics = Topics(config.mqtt.topic_prefix, gateway.serial())
        self._name = gateway.name or socket.gethostname()
        self._sw_version = read_file(gateway.sw_version_file, "gateway.sw_version_file")
        self._sdk_version = gateway.sdk_version
        if not self._sdk_version and gateway.sdk_version_file is not None:
            key = "gateway.sdk_version_file"
            self._sdk_version = read_file(gateway.sdk_version_file, key, strip=True)
        self._reader = reader if reader is not None else PsutilReader()
        self._interfaces = interfaces
        self._route_file = route_file
        self._clock = clock
        self._ttl = config.collectors.ttl_factor * config.collectors.metrics_interval
        self._warned: set[str] = set()
        self._last_info = b""
        self._dev_sno_topic: str | None = None  # config/dev_sno, when set
        self._dev_sno_pending: bytes | None = None  # the topic's latest payload, not yet taken
        self.ticker = Ticker(config.collectors.metrics_interval)
        try:
            parse_record(Kind.GATEWAY_INFO, self.info_payload())
        except RecordError as exc:
            raise ConfigError(f"gateway: the info record would be refused: {exc}") from exc

    def info_payload(self) -> bytes:
        """The current `gateway/info` record as JSON."""
        return self._info()[1]

    def _info(self) -> tuple[Address, bytes]:
        configured = self._config.gateway.interface
        address = choose_address(configured, self._read_routes(), self._interfaces())
        if configured and address.interface != configured:
            self._warn_once(
                "interface",
                "gateway.interface %s is absent or has no IPv4 address; using %s",
                configured, address.interface,
            )
        gateway = self._config.gateway
        dev_sno = self._dev_sno_topic or gateway.dev_sno
        record = info_record(address, self._name, dev_sno, self._sw_version, self._sdk_version)
        return address, orjson.dumps(record)

    def metrics_payload(self) -> bytes:
        """A fresh measurement as the `gateway/metrics` record in JSON."""
        data_path = str(self._config.gateway.data_path)
        values = measure(self._reader, data_path)
        if "disk_size" not in values:
            self._warn_once(
                "disk", "gateway.data_path %s is not available: disk sizes left out", data_path
            )
        return orjson.dumps(metrics_record(values, round(self._clock(), 3), self._ttl))

    def run(self) -> None:
        """Publish until `stop()`, then say `offline` on the status topic."""
        status = self._topics.collector_status(NAME)
        ident = client_id(NAME, self._config.gateway.serial())
        conn = Connection(self._config.mqtt, ident, status)
        conn.on_connected(self._subscribe)
        conn.client.on_message = self._on_message
        self.ticker.attach(conn)
        logger.info(
            "gateway collector: metrics every %g s", self._config.collectors.metrics_interval
        )
        conn.start()
        try:
            self.ticker.run(lambda fresh: self._cycle(conn, fresh),
                            lambda: self._take_dev_sno(conn))
        finally:
            conn.close()

    def _subscribe(self, client: mqtt.Client) -> None:
        client.subscribe(self._topics.dev_sno, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        # paho's network thread: keep the payload and wake the loop, nothing more.
        if msg.topic != self._topics.dev_sno:
            return
        self._dev_sno_pending = bytes(msg.payload)
        self.ticker.poke()

    def _take_dev_sno(self, conn: Connection | None) -> None:
        """Apply a new config/dev_sno and republish gateway/info with it at once (with `conn`).
        """
        payload, self._dev_sno_pending = self._dev_sno_pending, None
        if payload is None:
            return
        try:
            value = dev_sno_value(payload)
        except RecordError as exc:
            logger.warning("config/dev_sno refused, %s kept: %s",
                           "the previous one" if self._dev_sno_topic else "gateway.dev_sno", exc)
            return
        if value != self._dev_sno_topic:
            self._dev_sno_topic = value
            logger.info("dev_sno %s", f"set by config/dev_sno to {value}" if value
                        else "back to gateway.dev_sno (config/dev_sno cleared)")
            if conn is not None:
                self._cycle(conn, fresh=False, metrics=False)

    def stop(self) -> None:
        self.ticker.stop()

    def once(self, timeout: float) -> None:
        """Publish info and metrics once and wait for the broker's acknowledgement.

        No status, no will and no `offline` (see `collectors.session`): the
        daemon's status is its own user's.
        """
        self._reader.cpu_percent()  # starts the CPU interval: a one-shot has no earlier one
        replayed = threading.Event()
        fence = ReplayFence(self._topics.dev_sno, f"{self._topics.base}/collectors/{NAME}/fence",
                            replayed.set)

        def before_start(conn: Connection) -> None:
            conn.client.on_message = self._on_message
            conn.client.on_subscribe = fence.on_subscribe
            conn.on_connected(fence.subscribe)

        conn = connect_once(self._config.mqtt, NAME, timeout, before_start=before_start)
        try:
            # The retained config/dev_sno first, so that a one-shot run does not put
            # the file's code back over the operator's.
            if not replayed.wait(timeout):
                logger.warning("config/dev_sno not read within %g s: gateway.dev_sno used",
                               timeout)
            self._take_dev_sno(None)
            info, metrics = self.info_payload(), self.metrics_payload()
            sent = [
                conn.publish(self._topics.gateway_info, info, retain=True),
                conn.publish(self._topics.gateway_metrics, metrics, retain=True),
            ]
            hardware = self.hardware_payload()
            if hardware is not None:
                sent.append(conn.publish(self._topics.gateway_hardware, hardware, retain=True))
            wait_published(sent, timeout)
        finally:
            conn.close()

    def _cycle(self, conn: Connection, fresh: bool, metrics: bool = True) -> None:
        address, info = self._info()
        if fresh or info != self._last_info:
            if info != self._last_info:
                logger.info(
                    "gateway identity: %s %s on %s", address.ip, address.mac, address.interface
                )
            conn.publish(self._topics.gateway_info, info, retain=True)
            self._last_info = info
        if metrics:
            conn.publish(self._topics.gateway_metrics, self.metrics_payload(), retain=True)
            hardware = self.hardware_payload()
            if hardware is not None:
                conn.publish(self._topics.gateway_hardware, hardware, retain=True)

    def hardware_payload(self) -> bytes | None:
        """The `gateway/hardware` record read from the Sophon files, when asked to
        (`collectors.sophon_root`) and they give anything; else None (nothing published)."""
        root = self._config.collectors.sophon_root
        if not root:
            return None
        values = read_hardware(Path(root))
        if not values:
            self._warn_once("sophon", "collectors.sophon_root %s: no Sophon TPU or memory "
                            "files there; gateway/hardware not published", root)
            return None
        return orjson.dumps(metrics_record(values, round(self._clock(), 3), self._ttl))

    def _read_routes(self) -> str:
        try:
            return self._route_file.read_text(encoding="ascii", errors="replace")
        except OSError:
            # Not Linux, or no /proc: the interface table alone decides.
            return ""

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(msg, *args)
