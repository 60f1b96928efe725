"""The console's TLS certificate: made once, self-signed, and known by its fingerprint.

Off loopback the console serves HTTPS only. Unless the operator names a
certificate (`[console] tls_cert`/`tls_key`), it makes one at its first start
beside its password file: an ECDSA P-256 key (mode 0600) and a self-signed
certificate whose names are the box's host names and addresses. Nobody vouches
for it, so a browser warns once; the SHA-256 fingerprint, in the console's log
and in `se3-bridge status`, is what a person compares before trusting it.

Here, not in the console, because `se3-bridge status` reads the fingerprint
too (without the console's web stack).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

VALID_DAYS = 3650  # nobody renews a box's own certificate; its fingerprint is what counts


class CertificateError(RuntimeError):
    """The certificate cannot be made or read."""


def fingerprint(path: Path) -> str:
    """The SHA-256 fingerprint of the PEM certificate in `path`, as browsers show it
    (`AB:CD:...`); CertificateError when it cannot be read."""
    try:
        pem = path.read_text(encoding="ascii")
        der = ssl.PEM_cert_to_DER_cert(pem)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(f"cannot read the certificate {path}: {exc}") from exc
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def box_names() -> tuple[list[str], list[str]]:
    """(host names, addresses) of this box: its names, localhost, and the address of
    each interface (link-local IPv6 ones, which need a scope, left out)."""
    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses = {"127.0.0.1", "::1"}
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6) and "%" not in entry.address:
                addresses.add(entry.address)
    return sorted(n for n in names if n), sorted(addresses)


def make_self_signed(cert: Path, key: Path, names: Iterable[str],
                     addresses: Iterable[str]) -> None:
    """Write a new key (0600, made exclusively) and a self-signed certificate for
    `names` and `addresses`; CertificateError when they cannot be written."""
    names, addresses = list(names), list(addresses)
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ["se3-console"])[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "se3-console")])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    try:
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key.unlink(missing_ok=True)  # a key left without its certificate: made anew
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        partial = cert.with_name(cert.name + ".new")
        partial.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        partial.replace(cert)  # whole or not at all: its presence says the pair is made
    except OSError as exc:
        raise CertificateError(f"cannot write {key} and {cert}: {exc.strerror or exc}") from exc


def ensure_self_signed(cert: Path, key: Path, host: str) -> bool:
    """Make the pair for this box unless both files exist and name `host` (the listen
    address) where it is one of the box's: a certificate made before the address came
    up (DHCP), or before it changed, is made anew. True when made now."""
    names, addresses = box_names()
    ours = host in addresses or host in names
    if cert.exists() and key.exists() and (not ours or covers(cert, host)):
        return False
    make_self_signed(cert, key, names, addresses)
    logger.warning("new self-signed console certificate %s for %s: SHA-256 fingerprint %s",
                   cert, ", ".join([*names, *addresses]), fingerprint(cert))
    return True


def covers(cert: Path, host: str) -> bool:
    """Whether the certificate in `cert` names `host` (an address or a name)."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        alt = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    try:
        return ipaddress.ip_address(host) in alt.get_values_for_type(x509.IPAddress)
    except ValueError:
        return host.lower() in (n.lower() for n in alt.get_values_for_type(x509.DNSName))
