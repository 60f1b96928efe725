"""HTTPS off loopback (console.tls, bridge.certificate): which listener serves it, the
certificate made at the first start, its fingerprint, and the server's handshakes."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from cryptography import x509
from flask import Flask

from bridge.certificate import box_names, fingerprint, make_self_signed
from bridge.config import ConsoleSection
from bridge.statustext import console_listeners, format_console
from console import server as console_server
from console.server import ConsoleServer
from console.tls import server_context
from tests.conftest import wait_until


def section(tmp_path: Path, **values: object) -> ConsoleSection:
    return ConsoleSection.model_validate(
        {"password_file": str(tmp_path / "state" / "admin.pass"), **values})


class TestWhichListenerServesHttps:
    @pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
    def test_loopback_may_serve_plain_http(self, tmp_path: Path, host: str) -> None:
        assert server_context(section(tmp_path), host) is None
        assert not (tmp_path / "state").exists()  # no certificate made for it

    @pytest.mark.parametrize("host", ["192.0.2.10", "0.0.0.0", "::", "box.lan"])
    def test_any_other_address_serves_https_with_a_certificate_made_once(
            self, tmp_path: Path, host: str, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO)
        config = section(tmp_path)
        assert isinstance(server_context(config, host), ssl.SSLContext)
        cert, key = config.certificate_files()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        made = cert.read_bytes()
        print_ = fingerprint(cert)
        assert print_ in caplog.text  # the fingerprint is in the log
        assert len(print_.split(":")) == 32
        server_context(config, host)
        assert cert.read_bytes() == made  # made at the first start only

    def test_insecure_http_is_a_warning_at_every_start(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        config = section(tmp_path, insecure_http=True)
        for _ in range(2):
            assert server_context(config, "192.0.2.10") is None
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                    and "plain HTTP" in r.getMessage()]
        assert len(warnings) == 2

    def test_a_named_certificate_is_used_on_any_address(self, tmp_path: Path) -> None:
        """An operator's certificate from their own CA (its chain in the file) is served
        as it is, on loopback too, and nothing is made."""
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "box.example")
        cert, key = tmp_path / "mine.crt", tmp_path / "mine.key"
        leaf.private_key_pem.write_to_path(str(key))
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        config = section(tmp_path, tls_cert=str(cert), tls_key=str(key))
        assert config.certificate_files() == (cert, key)
        context = server_context(config, "127.0.0.1")
        assert context is not None
        assert not (tmp_path / "state").exists()
        app = Flask(__name__)
        app.add_url_rule("/", "index", lambda: "ok")
        srv = ConsoleServer(app, tls=context).start()
        try:
            with ca.cert_pem.tempfile() as trusted:
                assert requests.get(srv.url + "/", verify=trusted, timeout=5).text == "ok"
        finally:
            srv.stop()

    def test_cert_without_key_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
            section(tmp_path, tls_cert=str(tmp_path / "x.crt"))


def test_the_certificate_names_the_box(tmp_path: Path) -> None:
    """The made certificate's SAN holds the box's names and addresses."""
    config = section(tmp_path)
    server_context(config, "0.0.0.0")
    cert, _ = config.certificate_files()
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    alt = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names, addresses = box_names()
    assert set(alt.get_values_for_type(x509.DNSName)) == set(names)
    assert {str(a) for a in alt.get_values_for_type(x509.IPAddress)} == {
        str(ipaddress.ip_address(a)) for a in addresses}
    assert socket.gethostname() in names
    assert "127.0.0.1" in addresses


def test_status_shows_each_listener_and_the_fingerprint(tmp_path: Path) -> None:
    config = section(tmp_path, listen="0.0.0.0:5555")
    assert "no certificate yet" in format_console(config)
    server_context(config, "0.0.0.0")
    cert, _ = config.certificate_files()
    assert format_console(config) == (
        f"  console     https://0.0.0.0:5555, certificate SHA-256 {fingerprint(cert)}\n"
        f"  console     http://127.0.0.1:8888 (loopback)")
    assert console_listeners(config)[0] == {  # what `status --json` says
        "url": "https://0.0.0.0:5555", "certificate_sha256": fingerprint(cert), "note": None}
    insecure = section(tmp_path, system_listen="192.0.2.10:8888", insecure_http=True)
    assert format_console(insecure) == (
        "  console     http://127.0.0.1:5555 (loopback)\n"
        "  console     http://192.0.2.10:8888 (insecure_http: readable on the network)")


# -- the server over TLS ---------------------------------------------------------------


@pytest.fixture
def https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ConsoleServer, Path]]:
    monkeypatch.setattr(console_server, "CONNECTION_TIMEOUT", 2.0)
    monkeypatch.setattr(console_server, "MAX_PER_ADDRESS", 3)
    config = section(tmp_path, listen="0.0.0.0:0")
    context = server_context(config, "0.0.0.0")
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    srv = ConsoleServer(app, tls=context).start()  # on 127.0.0.1, as the test may
    try:
        yield srv, config.certificate_files()[0]
    finally:
        srv.stop()


def test_served_over_https_with_the_fingerprint_logged(
        https: tuple[ConsoleServer, Path]) -> None:
    srv, cert = https
    assert srv.url.startswith("https://127.0.0.1:")
    assert requests.get(srv.url + "/", verify=str(cert), timeout=5).text == "ok"
    served = ssl.get_server_certificate(("127.0.0.1", srv.port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()
    assert fingerprint(cert).replace(":", "") == digest


def test_plain_http_to_the_https_port_gets_no_page_and_logs_no_traceback(
        https: tuple[ConsoleServer, Path], capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Plain HTTP, or a browser refusing the self-signed certificate, is a failed
    handshake: one log line, the connection closed, no traceback on stderr."""
    caplog.set_level(logging.INFO, logger="bridge.listener")
    srv, _ = https
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    assert b"ok" not in answer
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.url + "/", timeout=5)  # the system's CAs: unknown to them
    wait_until(lambda: caplog.text.count("TLS handshake with 127.0.0.1 failed") == 2,
               what="both failed handshakes logged")
    assert "Traceback" not in capfd.readouterr().err


def test_a_stalled_handshake_does_not_stop_other_clients(
        https: tuple[ConsoleServer, Path]) -> None:
    """A client that connects and never says hello holds its own thread, not the
    server's accepting one: others are served meanwhile."""
    srv, cert = https
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
        assert requests.get(srv.url + "/", verify=str(cert), timeout=5).text == "ok"


def test_a_certificate_made_before_the_address_came_up_is_made_anew(tmp_path: Path) -> None:
    """A box whose LAN address came up after the console's first start (DHCP), or
    changed since: the certificate is made anew to name it (a new fingerprint)."""
    config = section(tmp_path)
    cert, key = config.certificate_files()
    make_self_signed(cert, key, ["old-name"], ["192.0.2.99"])
    old = fingerprint(cert)
    server_context(config, "192.0.2.10")  # not this box's address: nothing to fix
    assert fingerprint(cert) == old
    server_context(config, "127.0.0.1")  # loopback: no certificate wanted
    assert fingerprint(cert) == old
    server_context(section(tmp_path, tls_cert=str(cert), tls_key=str(key)), "::1")
    assert fingerprint(cert) == old  # named by the operator: never touched
    server_context(config, socket.gethostname())
    assert fingerprint(cert) != old
