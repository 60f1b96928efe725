"""Why a one-shot command cannot talk to the broker, told at once.

A command run by a person (`status`, `snapshot`, `publish`, `--once`) must not
wait out its whole timeout to say "no answer": a broker that is not running
refuses the TCP connection at once, an unreachable host answers with an ICMP
error or not at all, and a broker that does not like our credentials says so
in its CONNACK. `wait_connected` finds out which and raises `BrokerError`
naming it; the long-running programs keep retrying instead and never use it.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable

from bridge.config import MqttSection
from bridge.errors import BrokerError
from bridge.mqttclient import Connection

_POLL = 0.02  # seconds between looks at the connection's state while waiting


def where(settings: MqttSection) -> str:
    """`host:port` of the broker, as messages name it."""
    return f"{settings.host}:{settings.port}"


def who(settings: MqttSection) -> str:
    return repr(settings.username) if settings.username else "anonymous"


def probe(settings: MqttSection, timeout: float) -> None:
    """BrokerError at once when nothing accepts a TCP connection at the broker's address."""
    at = where(settings)
    try:
        with socket.create_connection((settings.host, settings.port), timeout=timeout):
            return
    except ConnectionRefusedError:
        raise BrokerError(
            f"the MQTT broker at {at} refused the connection: nothing listens there "
            "(the broker is not running, or mqtt.port is wrong)"
        ) from None
    except socket.gaierror as exc:
        raise BrokerError(f"the MQTT broker's host {settings.host!r} is unknown: "
                          f"{exc.strerror or exc}") from None
    except TimeoutError:
        raise BrokerError(
            f"the MQTT broker at {at} is unreachable: no answer to a connection "
            f"within {timeout:g} s (wrong mqtt.host, or a firewall drops it)"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            raise BrokerError(f"the MQTT broker at {at} is unreachable: "
                              f"{exc.strerror or exc}") from None
        raise BrokerError(f"cannot connect to the MQTT broker at {at}: "
                          f"{exc.strerror or exc}") from None


def refusal_message(settings: MqttSection, reason: str) -> str:
    """What a CONNACK refusal means for the user of this config."""
    at, user = where(settings), who(settings)
    lowered = reason.lower()
    check = ("check mqtt.username and mqtt.password_file, or SE3_MQTT_USERNAME and "
             "SE3_MQTT_PASSWORD_FILE")
    if "user name or password" in lowered:
        return (f"the MQTT broker at {at} refused the credentials of user {user} "
                f"(bad user name or password: {check})")
    if "not authori" in lowered:
        # mosquitto's answer to a wrong password or an unknown user under MQTT 3.1.1.
        return (f"the MQTT broker at {at} refused user {user}: not authorised (a wrong "
                f"password, or a user it does not know: {check})")
    return f"the MQTT broker at {at} refused the connection of user {user}: {reason}"


def wait_connected(
    conn: Connection, timeout: float, drive: Callable[[float], None] | None = None
) -> None:
    """Wait until `conn` (started) is connected; BrokerError naming why not, as soon as known.

    Refused (nothing listens), unreachable, bad credentials and not authorised
    are told without waiting out `timeout`; only a broker that accepts the TCP
    connection and then says nothing takes the whole timeout. `drive(seconds)`
    runs the connection's loop for a while when no thread of paho's does
    (`bridge.rim`).
    """
    if conn.connected.is_set():
        return
    settings = conn.settings
    end = time.monotonic() + timeout
    probe(settings, min(timeout, 5.0))
    while not conn.connected.is_set():
        if conn.refusal is not None:
            raise BrokerError(refusal_message(settings, conn.refusal))
        left = end - time.monotonic()
        if left <= 0:
            raise BrokerError(
                f"the MQTT broker at {where(settings)} accepted a connection but gave no MQTT "
                f"answer to user {who(settings)} within {timeout:g} s (is it an MQTT broker? "
                "a TLS-only port?)"
            )
        if drive is None:
            conn.connected.wait(min(left, _POLL))
        else:
            drive(min(left, _POLL))
