"""Tests for bridge.rim's buffered reads, with a fake socket read (the loop itself runs
against a real broker in tests/integration/test_rim.py)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from bridge.rim import _BufferedRecv


class Chunks:
    """A non-blocking socket's reads: each call gives the next chunk, or blocks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)[:size]


class TestBufferedRecv:
    def test_small_reads_come_from_one_large_read(self) -> None:
        """paho's 1-byte reads of type and length cost one socket read for many packets."""
        raw = Chunks(b"\x30\x03abc\x30\x01d")
        recv = _BufferedRecv(raw)
        got = [recv(1), recv(1), recv(3), recv(1), recv(1), recv(1)]
        assert got == [b"\x30", b"\x03", b"abc", b"\x30", b"\x01", b"d"]
        assert raw.calls == 1
        assert not recv.pending()

    def test_a_read_across_chunks_is_short_and_the_rest_follows(self) -> None:
        """Like a socket: at most what is there; paho reads the rest of the packet next."""
        recv = _BufferedRecv(Chunks(b"ab", b"cd"))
        assert recv(3) == b"ab"
        assert recv(3) == b"cd"

    def test_nothing_there_raises_blocking_and_end_of_stream_is_empty(self) -> None:
        recv = _BufferedRecv(Chunks(b"x", b""))
        assert recv(1) == b"x"
        assert recv(1) == b""  # the broker closed: paho sees the connection lost
        with pytest.raises(BlockingIOError):
            recv(1)

    def test_clear_drops_what_an_old_connection_left(self) -> None:
        recv = _BufferedRecv(Chunks(b"old-bytes", b"new"))
        assert recv(3) == b"old"
        assert recv.pending()
        recv.clear()
        assert not recv.pending()
        assert recv(3) == b"new"


class TestStart:
    def test_every_connect_is_a_clean_start_as_the_connection_says(self) -> None:
        """The loop connects with the Connection's own arguments: under MQTT 5 paho's
        default would resume the session at each reconnect."""
        import tomllib

        from bridge.config import parse_config
        from bridge.service import Bridge

        config = parse_config(tomllib.loads(
            '[gateway]\nsn = "SN1"\n[mqtt]\nhost = "127.0.0.1"\nport = 1\n'), env={})
        bridge = Bridge(config, announce=False)
        bridge.rim.start()
        try:
            client = bridge.conn.client
            if client._protocol == mqtt.MQTTv5:
                assert client._clean_start is True
            else:
                assert client._clean_session is True
        finally:
            bridge.rim.close(timeout=0.1)
