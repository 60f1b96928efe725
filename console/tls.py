"""Which listener serves HTTPS, and its TLS context (the certificate: bridge.certificate).

On loopback the console may serve plain HTTP (an SSH tunnel encrypts it); on any
other address it serves HTTPS only, with the certificate `[console] tls_cert` /
`tls_key` name, else with one it makes at its first start. Plain HTTP off
loopback only with `[console] insecure_http = true`, a WARNING at every start:
the password and the session cookie would cross the network readable.
"""

from __future__ import annotations

import logging
import ssl

from bridge.addresses import is_loopback
from bridge.certificate import CertificateError, covers, ensure_self_signed, fingerprint
from bridge.config import ConsoleSection

logger = logging.getLogger(__name__)

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # all addresses: covered by none


def server_context(section: ConsoleSection, host: str) -> ssl.SSLContext | None:
    """The TLS context for a listener on `host`, or None for plain HTTP; logs which and
    the certificate's fingerprint. CertificateError when it cannot be made or loaded."""
    if not section.https(host):
        if not is_loopback(host):
            logger.warning("console on %s serves plain HTTP ([console] insecure_http = true): "
                           "the admin password and session cookies cross the network "
                           "readable", host)
        return None
    cert, key = section.certificate_files()
    if section.tls_cert is None:
        ensure_self_signed(cert, key, host)
        if host not in _WILDCARDS and not covers(cert, host):
            logger.warning("the console's certificate %s does not name %s (made for the box's "
                           "addresses at its first start): browsers warn about the name too; "
                           "delete %s and %s to make a new one", cert, host, cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot load the certificate {cert} with its key {key}: "
                               f"{exc}") from exc
    logger.info("console on %s serves HTTPS: certificate %s, SHA-256 fingerprint %s", host,
                cert, fingerprint(cert))
    return context
