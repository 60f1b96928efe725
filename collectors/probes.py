"""Is a sub-device there? One bounded network check per device kind.

`rtsp` sends a real RTSP `OPTIONS` request and wants an RTSP status below 500
back: 200, and also 401 (a camera that wants a login for everything is up) or
404 (up, though the stream path is wrong). A camera whose TCP port answers but
whose RTSP server is wedged (5xx, silence, garbage) counts as offline.
`tcp:PORT` only connects. `none` is always online (devices the box cannot
reach but an operator wants listed).

Probes never raise: a refused connection, a timeout, a reset or a garbage
answer all mean "offline", and the caller has nothing to catch. `probe_all`
runs them on a thread pool and yields each result as soon as it is known.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, as_completed
from urllib.parse import urlsplit, urlunsplit

from bridge.config import DeviceEntry
from bridge.urltext import redact

logger = logging.getLogger(__name__)

RTSP_PORT = 554
_MAX_STATUS_LINE = 1024


def probe_tcp(ip: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ip:port is accepted within `timeout` seconds."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except (OSError, ValueError, OverflowError) as exc:
        logger.debug("tcp probe %s:%s failed: %s", ip, port, exc)
        return False


def rtsp_url(ip: str) -> str:
    """The URL probed for a device without its own `url`: the default RTSP port."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"rtsp://{host}:{RTSP_PORT}/"


def probe_rtsp(url_or_ip: str, timeout: float) -> bool:
    """Whether an RTSP server answers `OPTIONS` (status < 500) within `timeout` s in all."""
    url = url_or_ip if "://" in url_or_ip else rtsp_url(url_or_ip)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or RTSP_PORT
        if parts.scheme.lower() != "rtsp" or not host:
            logger.debug("rtsp probe: %r is not an rtsp:// URL", redact(url))
            return False
        # Credentials in a URL are for the stream client, never for a request line.
        netloc = parts.netloc.rpartition("@")[2]
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        request = f"OPTIONS {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()
        deadline = time.monotonic() + timeout
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            line = _read_line(sock, deadline)
    except (OSError, ValueError, UnicodeError, OverflowError) as exc:
        logger.debug("rtsp probe %s failed: %s", redact(url), exc)
        return False
    ok = rtsp_answered(line)
    if not ok:
        logger.debug("rtsp probe %s answered %r", redact(url), line[:80])
    return ok


def rtsp_answered(status_line: bytes) -> bool:
    """Whether `status_line` is an RTSP answer from a working server (status < 500)."""
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"RTSP/"):
        return False
    code = fields[1]
    return len(code) == 3 and code.isdigit() and 100 <= int(code) < 500


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    """The first line of the answer, read before `deadline` (TimeoutError after it)."""
    data = b""
    while b"\n" not in data and len(data) < _MAX_STATUS_LINE:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete status line in time")
        sock.settimeout(remaining)
        chunk = sock.recv(_MAX_STATUS_LINE - len(data))
        if not chunk:
            break
        data += chunk
    return data.partition(b"\n")[0].rstrip(b"\r")


def probe_device(device: DeviceEntry, timeout: float) -> bool:
    """Run the probe configured for `device`."""
    kind, _, port = device.probe.partition(":")
    if kind == "tcp":
        return probe_tcp(device.ip, int(port), timeout)
    if kind == "rtsp":
        url = device.url if device.url.lower().startswith("rtsp://") else rtsp_url(device.ip)
        return probe_rtsp(url, timeout)
    return True


def probe_all(
    devices: Iterable[DeviceEntry], pool: Executor, timeout: float
) -> Iterator[tuple[DeviceEntry, bool]]:
    """Probe every device on `pool`; yield (device, online) in order of completion."""
    futures = {pool.submit(probe_device, device, timeout): device for device in devices}
    for future in as_completed(futures):
        yield futures[future], future.result()
