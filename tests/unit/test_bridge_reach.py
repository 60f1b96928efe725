"""Tests for bridge.reach: a broker problem is named at once, and named right."""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

import pytest

from bridge.config import MqttSection
from bridge.errors import BrokerError
from bridge.reach import probe, refusal_message, wait_connected
from demo.broker import free_port

SETTINGS = MqttSection(host="127.0.0.1", port=1883, username="app")


class TestProbe:
    def test_nothing_listening_is_refused(self) -> None:
        """A port nobody listens on: 'refused the connection: nothing listens there'."""
        settings = MqttSection(host="127.0.0.1", port=free_port())
        with pytest.raises(BrokerError, match="refused the connection: nothing listens there"):
            probe(settings, 2.0)

    @pytest.mark.parametrize(("raised", "words"), [
        (TimeoutError(), "is unreachable: no answer to a connection within 2 s"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "is unreachable: No route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "is unreachable"),
        (socket.gaierror(-2, "Name or service not known"), "host '127.0.0.1' is unknown"),
    ])
    def test_unreachable_and_unknown(
        self, monkeypatch: pytest.MonkeyPatch, raised: Exception, words: str
    ) -> None:
        """An unreachable host (ICMP error or silence) and an unknown name say so."""
        def connect(*_args: Any, **_kwargs: Any) -> socket.socket:
            raise raised

        monkeypatch.setattr(socket, "create_connection", connect)
        with pytest.raises(BrokerError, match=words):
            probe(SETTINGS, 2.0)


class TestRefusal:
    @pytest.mark.parametrize(("reason", "words"), [
        ("Bad user name or password", "refused the credentials of user 'app'"),
        ("Not authorized", "refused user 'app': not authorised (a wrong password"),
        ("Server unavailable", "refused the connection of user 'app': Server unavailable"),
    ])
    def test_connack_reasons(self, reason: str, words: str) -> None:
        """Each CONNACK refusal is told in words that say what to check."""
        assert words in refusal_message(SETTINGS, reason)


class _FakeConnection:
    def __init__(self, settings: MqttSection) -> None:
        self.settings = settings
        self.connected = threading.Event()
        self.refusal: str | None = None


class TestWaitConnected:
    def test_refusal_is_raised_without_waiting(self) -> None:
        """A CONNACK refusal ends the wait at once, not at the timeout."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            conn = _FakeConnection(MqttSection(host="127.0.0.1", port=server.getsockname()[1],
                                               username="app"))
            conn.refusal = "Not authorized"
            with pytest.raises(BrokerError, match="not authorised"):
                wait_connected(conn, 60.0)  # type: ignore[arg-type]

    def test_silent_listener_times_out_with_its_own_words(self) -> None:
        """A port that accepts TCP but never answers MQTT: said after the timeout."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            conn = _FakeConnection(MqttSection(host="127.0.0.1", port=server.getsockname()[1]))
            with pytest.raises(BrokerError, match="gave no MQTT answer"):
                wait_connected(conn, 0.2)  # type: ignore[arg-type]
