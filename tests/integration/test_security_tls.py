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
