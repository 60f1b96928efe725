"""A publisher that writes pre-built MQTT 3.1.1 packets straight to a socket.

The benchmarks need a publisher that is never the slowest party: paho spends
tens of microseconds of Python per message, about what the subscribers under
test spend. Here the PUBLISH packets (QoS 0) are built once into one buffer
and handed to `sendall`, so the broker takes them as fast as it can and TCP
back-pressure sets the pace.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def publish_packet(topic: str, payload: bytes, retain: bool = False) -> bytes:
    """One QoS 0 PUBLISH packet."""
    body = _string(topic.encode()) + payload
    return bytes([0x30 | (1 if retain else 0)]) + _varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive: int = 60) -> bytes:
    flags = 0x02 | 0x80 | 0x40  # clean session, username, password
    variable = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    payload = _string(client_id.encode()) + _string(username.encode()) + _string(password.encode())
    body = variable + payload
    return b"\x10" + _varint(len(body)) + body


class RawPublisher:
    """A connected MQTT client that only publishes pre-built QoS 0 packets."""

    def __init__(self, host: str, port: int, username: str, password: str, client_id: str) -> None:
        self._sock = socket.create_connection((host, port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, username, password))
        ack = self._recv_exact(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise ConnectionRefusedError(f"broker refused {username}: CONNACK {ack.hex()}")
        self._sock.settimeout(None)

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def send(self, packets: bytes | Iterable[bytes]) -> None:
        """Write the packets (one buffer, or an iterable of them) in order."""
        buffer = packets if isinstance(packets, bytes) else b"".join(packets)
        self._sock.sendall(buffer)

    def close(self) -> None:
        """DISCONNECT: the broker has read everything before it, in order."""
        try:
            self._sock.sendall(b"\xe0\x00")
            self._sock.shutdown(socket.SHUT_WR)
            self._sock.settimeout(10)
            while self._sock.recv(4096):
                pass
        except OSError:
            pass
        finally:
            self._sock.close()

    def __enter__(self) -> RawPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
