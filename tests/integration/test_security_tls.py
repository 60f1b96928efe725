"""HTTPS to the platform: verification on by default, `ca_file` for a private CA, fail closed.

The reference platform runs behind a TLS werkzeug server with certificates
made by trustme. The ACL, anonymous, loopback and file-mode checks of the
broker are in test_broker.py.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bridge.errors import DeliveryError
from bridge.http import HttpSender
from demo.broker import Broker
from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.conftest import collect
from tests.integration.reliability_kit import events, failures
from tests.integration.stack import (
    BASE,
    SPEC_PAYLOAD,
    publish_spec_example,
    running_bridge,
    write_config,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def serve(cert: trustme.LeafCert) -> ReceiverServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return ReceiverServer(create_app(), ssl_context=context).start()


@pytest.fixture
def platform(ca: trustme.CA) -> Iterator[ReceiverServer]:
    """The platform on https://127.0.0.1:PORT with a certificate from the private CA."""
    server = serve(ca.issue_cert("127.0.0.1"))
    yield server
    server.stop()


def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "platform-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


class TestHttps:
    def test_private_ca_in_ca_file_delivers(
        self, tmp_path: Path, broker: Broker, ca: trustme.CA, platform: ReceiverServer
    ) -> None:
        """With `platform.ca_file` naming the private CA, the report arrives over HTTPS."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              ca_file=ca_file(tmp_path, ca))
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            report = platform.state.store.wait_for(lambda r: True, timeout=10)
        assert report is not None
        assert report.payload == SPEC_PAYLOAD

    @pytest.mark.parametrize("case", ["default bundle", "another CA", "wrong host"])
    def test_untrusted_certificate_fails_closed(
        self, tmp_path: Path, broker: Broker, ca: trustme.CA, case: str
    ) -> None:
        """An unverifiable certificate: TLS failures at the https URL only, nothing delivered."""
        if case == "wrong host":
            server = serve(ca.issue_cert("platform.invalid"))
            trusted = ca_file(tmp_path, ca)
        else:
            server = serve(ca.issue_cert("127.0.0.1"))
            trusted = "" if case == "default bundle" else ca_file(tmp_path, trustme.CA())
        url = f"{server.url}/DeviceStatus"
        config = write_config(tmp_path / "b.toml", broker, url, ca_file=trusted)
        publish_spec_example(broker)
        try:
            with collect(broker, f"{BASE}/bridge/report") as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                seen.wait_for(lambda _m: len(failures(seen)) >= 3)
        finally:
            server.stop()
        attempts = events(seen)
        assert {e["target"] for e in attempts} == {url}  # never rewritten to http://
        assert not any(e["ok"] for e in attempts)
        assert all(e["error"].startswith("TLS failure") for e in attempts)
        reason = "match" if case == "wrong host" else "CERTIFICATE_VERIFY_FAILED"
        assert all(reason in e["error"] for e in attempts), attempts
        assert server.state.store.reports() == []


class TestTrustStore:
    """`ca_file` adds to the trusted CAs; the system's store stays trusted.

    The "system store" here is a stand-in made by the test: OpenSSL reads its
    default CA file and directory from SSL_CERT_FILE / SSL_CERT_DIR, the same
    paths `update-ca-certificates` fills on the box.
    """

    @pytest.fixture
    def system_ca(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
        """A CA installed in the (stand-in) system store, as a public CA would be."""
        public = trustme.CA(organization_name="Public Root (test)")
        bundle = tmp_path / "system-ca-certificates.crt"
        public.cert_pem.write_to_path(str(bundle))
        empty = tmp_path / "system-certs"
        empty.mkdir()
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setenv("SSL_CERT_DIR", str(empty))
        return public

    def _post(self, server: ReceiverServer, ca: str | None) -> int:
        sender = HttpSender(timeout=5.0, ca_file=Path(ca) if ca else None)
        try:
            return sender.post(f"{server.url}/DeviceStatus", b"{}", "SN-b-1")
        finally:
            sender.close()

    def test_system_store_is_trusted_without_ca_file(self, system_ca: trustme.CA) -> None:
        """A platform signed by a CA of the system store is reached (not only certifi's)."""
        server = serve(system_ca.issue_cert("127.0.0.1"))
        try:
            assert self._post(server, None) == 200
        finally:
            server.stop()

    def test_ca_file_adds_to_the_system_store(
        self, tmp_path: Path, system_ca: trustme.CA, ca: trustme.CA
    ) -> None:
        """With `ca_file` set, both the private CA's and the system CA's platforms are reached."""
        private = ca_file(tmp_path, ca)
        public_server = serve(system_ca.issue_cert("127.0.0.1"))
        private_server = serve(ca.issue_cert("127.0.0.1"))
        try:
            assert self._post(private_server, private) == 200
            assert self._post(public_server, private) == 200
        finally:
            public_server.stop()
            private_server.stop()

    def test_a_ca_in_neither_is_refused(self, tmp_path: Path, system_ca: trustme.CA) -> None:
        """Adding CAs does not loosen verification: a third CA's certificate fails."""
        stranger = serve(trustme.CA().issue_cert("127.0.0.1"))
        try:
            with pytest.raises(DeliveryError, match="TLS failure"):
                self._post(stranger, ca_file(tmp_path, trustme.CA()))
        finally:
            stranger.stop()
