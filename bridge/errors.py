"""The bridge's exception family.

    Se3Error
    ├── ConfigError        the config file is missing, unreadable or invalid (exit 2)
    ├── RecordError        an MQTT message was refused (docs/reliability.md, bad input)
    └── DeliveryError      one POST to one target did not succeed
        └── RetryAfter     ... and the platform asked us to wait

Lower libraries' errors (requests, paho, pydantic) are translated into these at
the one place that calls them, with `raise ... from exc`.
"""

from __future__ import annotations


class Se3Error(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(Se3Error):
    """The configuration is unusable; the message names the key."""


class RecordError(Se3Error):
    """An MQTT message that is not a valid record; `reason` says why.

    `code` is a short, bounded category (a field name, `json`, `size`,
    `topic`, ...) fit for a metric label.
    """

    def __init__(self, reason: str, field: str = "", code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.code = code or field or "invalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class DeliveryError(Se3Error):
    """A report was not accepted by one target.

    `status` is the HTTP status when the platform answered, else None
    (connection refused, timeout, TLS failure).
    """

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class RetryAfter(DeliveryError):
    """The platform answered (429, 503, ...) with a Retry-After of `delay` seconds."""

    def __init__(self, message: str, status: int, delay: float, body: str = "") -> None:
        super().__init__(message, status, body)
        self.delay = delay


class BrokerError(Se3Error):
    """The MQTT broker did not answer, replay its retained state, or confirm a publish
    in time: a one-shot command exits 1 with this message."""


class NotReadyError(Se3Error):
    """Something a program needs is not there yet (a file on a partition mounted
    later): exit 1, so that a service manager tries again, unlike a config error."""
