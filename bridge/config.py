"""The TOML configuration shared by the bridge and the collectors (config/example.toml).

One file serves every program: each validates the whole file strictly (an
unknown key or a bad value is a `ConfigError` naming the key) and then asks
`require()` for the keys only it needs. Relative paths are taken from the
working directory, as the service units and `make run` set it.

The MQTT credentials are the one thing that differs per process on a single
box (each role has its own broker user), so `SE3_MQTT_USERNAME` and
`SE3_MQTT_PASSWORD_FILE` override `[mqtt]` for the process that has them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge import rules
from bridge.addresses import canonical_ip, is_loopback
from bridge.errors import ConfigError
from bridge.fields import ExtText, Location, Name, Url, no_control
from bridge.releases import (
    DEFAULT_RELEASE,
    FormatName,
    Release,
    ReleaseName,
    ReportFormat,
    check_format,
    release,
)
from bridge.urls import split_urls

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]

ENV_CONFIG = "SE3_CONFIG"
ENV_MQTT_USERNAME = "SE3_MQTT_USERNAME"
ENV_MQTT_PASSWORD_FILE = "SE3_MQTT_PASSWORD_FILE"  # noqa: S105 - a variable name

_PROBE = re.compile(r"^(rtsp|none|tcp:([1-9][0-9]{0,4}))$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class GatewaySection(_Section):
    sn: str = ""
    sn_file: Path | None = None
    dev_sno: str = ""
    name: str = ""
    interface: str = ""
    sw_version_file: Path | None = None
    sdk_version: str = ""
    sdk_version_file: Path | None = None
    data_path: Path = Path("/data")
    # `gateway_port` of the reports of V2R6C01 on: the port of the box's application;
    # 0: the console's ([console] listen).
    port: Annotated[int, Field(strict=True, ge=0, le=65535)] = 0
    # The V6 system report's `reporter_id`; "": dev_sno (config/reporter_id may set it).
    reporter_id: str = ""

    @field_validator("reporter_id")
    @classmethod
    def _reporter_id(cls, value: str) -> str:
        return rules.reporter_id(value) if value else value

    @field_validator("sn")
    @classmethod
    def _sn(cls, value: str) -> str:
        return rules.serial(value) if value else value

    @field_validator("dev_sno")
    @classmethod
    def _dev_sno(cls, value: str) -> str:
        return rules.dev_sno(value) if value else value  # "": none (config/dev_sno may set it)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return rules.gateway_name(value) if value else value  # "": the host name

    def serial(self) -> str:
        """The gateway serial: `sn`, or the stripped content of `sn_file`."""
        if self.sn:
            return self.sn
        if self.sn_file is None:
            return ""
        try:
            text = self.sn_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"gateway.sn_file: cannot read {self.sn_file}: {exc}") from exc
        try:
            return rules.serial(text)
        except ValueError as exc:
            raise ConfigError(f"gateway.sn_file: {self.sn_file}: a gateway serial {exc}") from None


class MqttSection(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 1883
    # The broker's watchers' listener, where the read-only users (`monitor`, `debug`) may
    # have many sessions at once: `se3-bridge status` and `snapshot` connect there when
    # it is set (on `port` the broker makes the user name the client id, so two of them
    # at once push each other off). The daemons always use `port`.
    watch_port: Annotated[int | None, Field(strict=True, ge=1, le=65535)] = None
    username: str = ""
    password_file: Path | None = None
    topic_prefix: Annotated[str, Field(min_length=1)] = "se3"
    keepalive: Annotated[int, Field(strict=True, ge=5, le=3600)] = 30
    qos: Annotated[int, Field(strict=True, ge=0, le=1)] = 1

    @field_validator("topic_prefix")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain + or # nor start or end with /")
        return value

    def for_looking(self) -> MqttSection:
        """These settings for a read-only tool: on `watch_port` when there is one."""
        if self.watch_port is None:
            return self
        return self.model_copy(update={"port": self.watch_port})

    def password(self) -> str | None:
        """The password from `password_file`, or None for a broker without auth."""
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            where = f"mqtt.password_file: cannot read {self.password_file}"
            raise ConfigError(f"{where}: {exc.strerror or exc}") from exc


class PlatformSection(_Section):
    report_url: list[str] = Field(default_factory=list)
    login_url: str = ""
    # Lower bounds keep a typo (1e-9) from turning the main loop into a busy loop.
    interval: Annotated[float, Field(strict=True, ge=0.1, le=86400)] = 20.0
    # The sub-device report of the two-report releases (V5R7C01, V6): its own URL(s) and
    # period (default: `interval`).
    devices_report_url: list[str] = Field(default_factory=list)
    devices_interval: Annotated[float | None, Field(strict=True, ge=0.1, le=86400)] = None
    min_interval: Annotated[float, Field(strict=True, ge=0, le=3600)] = 1.0
    timeout: Annotated[float, Field(strict=True, gt=0, le=300)] = 10.0
    retry_max: Annotated[float, Field(strict=True, gt=0, le=3600)] = 60.0
    retry_min: Annotated[float, Field(strict=True, ge=0.001, le=3600)] = 1.0
    shutdown_timeout: Annotated[float, Field(strict=True, gt=0, le=60)] = 5.0
    ca_file: Path | None = None
    # The platform's release picks its report(s) and login (bridge.releases); `format`
    # picks a variant the release offers ("v1": its own report). Declared in this
    # order: `format` is checked against `release`.
    release: ReleaseName = DEFAULT_RELEASE
    format: FormatName = "v1"
    # Reports to a login-issued address carry the login's token and dev_sno as query
    # parameters; off for a platform that refuses parameters it does not know.
    send_token: Annotated[bool, Field(strict=True)] = True

    @model_validator(mode="before")
    @classmethod
    def _v2_names_its_release(cls, data: object) -> object:
        """`format = "v2"` alone keeps meaning what it did before releases: V2R1C01's."""
        if isinstance(data, dict) and "release" not in data and data.get("format") == "v2":
            return {**data, "release": "V2R1C01"}
        return data

    @field_validator("format")
    @classmethod
    def _offered(cls, value: str, info: ValidationInfo) -> str:
        chosen = info.data.get("release")
        if chosen is not None:  # else the release itself is refused
            check_format(chosen, value)
        return value

    @property
    def platform_release(self) -> Release:
        """The release in force: its reports and login variant (bridge.releases)."""
        return release(self.release)

    @property
    def gateway_format(self) -> ReportFormat:
        """The format of the report with the gateway, under `format`."""
        return self.platform_release.gateway_format(self.format)

    @field_validator("report_url", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return split_urls(value)
        return value

    @field_validator("devices_report_url", mode="before")
    @classmethod
    def _devices_one_or_many(cls, value: object) -> object:
        return cls._one_or_many(value)

    @field_validator("report_url", "devices_report_url")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return rules.report_urls(value)

    @field_validator("login_url")
    @classmethod
    def _login_http(cls, value: str) -> str:
        return rules.login_url(value) if value else value

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


class BridgeSection(_Section):
    max_devices: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 20_000
    max_payload: Annotated[int, Field(strict=True, ge=256, le=1_048_576)] = 16_384
    # A platform refuses a body past its limit whole: better some devices refused.
    max_report_bytes: Annotated[int, Field(strict=True, ge=65_536, le=1 << 30)] = 16 << 20
    metrics_listen: str = ""

    @field_validator("metrics_listen")
    @classmethod
    def _loopback_port(cls, value: str) -> str:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9530")
        return value


class CollectorsSection(_Section):
    metrics_interval: Annotated[float, Field(strict=True, gt=0, le=3600)] = 10.0
    probe_interval: Annotated[float, Field(strict=True, gt=0, le=3600)] = 30.0
    # At most 10 s: a stop waits for the probes in flight (systemd's TimeoutStopSec=15).
    probe_timeout: Annotated[float, Field(strict=True, gt=0, le=10)] = 3.0
    probe_concurrency: Annotated[int, Field(strict=True, ge=1, le=256)] = 16
    ttl_factor: Annotated[float, Field(strict=True, ge=1.5, le=100)] = 3.0
    # Where the gateway collector reads a Sophon box's TPU and memory regions from
    # (collectors/sophon.py): "/" on the box; "" (default): it does not, and
    # gateway/hardware is left to a local app (docs/hardware.md).
    sophon_root: str = ""


class ReceiverSection(_Section):
    """The reference platform's defaults (`se3-receiver`); its flags override them."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(strict=True, ge=0, le=65535)] = 9528
    strict: Annotated[bool, Field(strict=True)] = False
    # The platform release it plays, and the format its (gateway) report is checked
    # against instead of the release's own; the receiver knows the names (receiver/releases.py).
    release: Annotated[str, Field(pattern=r"^V[0-9]R[0-9]C[0-9]{2}$")] = "V2R2C01"
    format: Annotated[str, Field(pattern=r"^(v1|v2|F[1-8])$")] | None = None
    keep: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 200
    # The report URL(s) its login issues; unset: the release's own path(s).
    login_address: Annotated[str, Field(min_length=1)] | None = None
    login_devices_address: Annotated[str, Field(min_length=1)] | None = None
    login_period: Annotated[int, Field(strict=True, ge=1, le=86_400)] = 20


class ConsoleSection(_Section):
    """The box's management API and web console (`se3-console`)."""

    listen: str = "127.0.0.1:5555"  # the "face" service: the page, the SE3 and face calls
    system_listen: str = "127.0.0.1:8888"  # the "system" service: its monitor calls
    password_file: Path = Path("var/console/admin.pass")
    # Off loopback the console serves HTTPS only: with this certificate and key, else
    # with one it makes beside password_file (bridge.certificate).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False  # plain HTTP off loopback too (a WARNING at each start)

    @field_validator("listen", "system_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:5555")
        return value

    @model_validator(mode="after")
    def _cert_and_key(self) -> ConsoleSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: name both or neither")
        return self

    def listeners(self) -> list[str]:
        """Every HOST:PORT the console listens on (face, then system)."""
        return [self.listen, self.system_listen]

    def certificate_files(self) -> tuple[Path, Path]:
        """(certificate, key): the ones named, else the ones made beside password_file."""
        if self.tls_cert is not None and self.tls_key is not None:
            return self.tls_cert, self.tls_key
        return self.password_file.parent / "tls.crt", self.password_file.parent / "tls.key"

    def https(self, host: str) -> bool:
        """Whether a listener on `host` serves HTTPS: with a certificate named, or off
        loopback unless insecure_http."""
        if self.tls_cert is not None:
            return True
        return not is_loopback(host) and not self.insecure_http


class DeviceEntry(_Section):
    """One `[[devices]]` entry; its fields have the limits of the bridge's record parser."""

    ip: str
    name: Name = ""
    location: Location
    type: Literal["0", "1", "2", "3", "4"]
    url: Url = ""
    probe: str = "none"  # when not given: "rtsp" for an rtsp:// url (see _default_probe)
    sw_version: ExtText = ""  # the device's software version, sent in v2's ep_ext_data
    group_name: ExtText = ""  # the comparison group, likewise

    @model_validator(mode="before")
    @classmethod
    def _default_probe(cls, data: object) -> object:
        """A camera with an rtsp:// url is probed over RTSP unless told otherwise."""
        if isinstance(data, dict) and "probe" not in data:
            url = data.get("url")
            if isinstance(url, str) and url.strip().lower().startswith("rtsp://"):
                return {**data, "probe": "rtsp"}
        return data

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: object, info: ValidationInfo) -> object:
        """As in the records the bridge takes: a device it would refuse fails `check`."""
        return no_control(value, info.field_name or "") if isinstance(value, str) else value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return canonical_ip(value.strip())

    @field_validator("probe")
    @classmethod
    def _probe(cls, value: str) -> str:
        match = _PROBE.fullmatch(value)
        if match is None or (match.group(2) and int(match.group(2)) > 65535):
            raise ValueError("must be rtsp, tcp:PORT or none")
        return value


class Config(_Section):
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    platform: PlatformSection = Field(default_factory=PlatformSection)
    bridge: BridgeSection = Field(default_factory=BridgeSection)
    collectors: CollectorsSection = Field(default_factory=CollectorsSection)
    receiver: ReceiverSection = Field(default_factory=ReceiverSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    devices: list[DeviceEntry] = Field(default_factory=list)

    @field_validator("devices")
    @classmethod
    def _unique_ips(cls, value: list[DeviceEntry]) -> list[DeviceEntry]:
        seen: set[str] = set()
        for device in value:
            if device.ip in seen:
                raise ValueError(f"device ip {device.ip} is listed twice")
            seen.add(device.ip)
        return value

    def gateway_port(self) -> int | None:
        """The reports' `gateway_port`: `gateway.port`, else the console's; None if neither
        is a fixed port."""
        port = self.gateway.port or int(self.console.listen.rpartition(":")[2])
        return port or None

    def require(self, *keys: str) -> None:
        """Raise a ConfigError naming every dotted key in `keys` that is empty."""
        missing = [key for key in keys if not _lookup(self, key)]
        if missing:
            raise ConfigError("; ".join(f"{key}: required by this program" for key in missing))


def _lookup(config: Config, dotted: str) -> object:
    if dotted == "gateway.sn":
        return config.gateway.sn or config.gateway.sn_file
    section, _, key = dotted.partition(".")
    return getattr(getattr(config, section), key)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file named by `path`, else by $SE3_CONFIG."""
    chosen = path if path is not None else os.environ.get(ENV_CONFIG)
    if not chosen:
        raise ConfigError(f"no config file: pass --config PATH or set {ENV_CONFIG}")
    try:
        with open(chosen, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from exc
    return parse_config(raw, source=str(chosen), env=os.environ)


def parse_config(
    raw: Mapping[str, object], source: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed TOML document; errors name the file and the dotted key."""
    data = dict(raw)
    if env:
        overrides = {
            "username": env.get(ENV_MQTT_USERNAME),
            "password_file": env.get(ENV_MQTT_PASSWORD_FILE),
        }
        chosen = {k: v for k, v in overrides.items() if v is not None}
        mqtt = data.get("mqtt", {})
        if chosen and isinstance(mqtt, dict):  # a broken [mqtt] is left for validation
            data["mqtt"] = {**mqtt, **chosen}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_describe(exc.errors()))) from exc


def _describe(errors: Iterable[Mapping[str, object]]) -> list[str]:
    out = []
    for err in errors:
        loc = err.get("loc", ())
        parts = [str(p) for p in loc] if isinstance(loc, tuple) else [str(loc)]
        key = ".".join(parts) or "(top level)"
        if err.get("type") == "extra_forbidden":
            out.append(f"{key}: unknown key")
            continue
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        out.append(f"{key}: {msg}")
    return out
