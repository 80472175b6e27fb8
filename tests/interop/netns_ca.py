"""A private certificate authority for the interop tests (python ``cryptography``).

Every peer server in a test namespace gets a certificate for its domain signed by one CA, and
every peer trusts that CA (Prosody: ``ssl = { cafile = ... }``), so certificate authentication
(SASL EXTERNAL, XEP-0178) succeeds between them. ``untrusted=True`` signs with a second CA that
nobody trusts instead: the certificate names the right domain but its chain is invalid, which is
what a dialback test (XEP-0220) or a refusal under ``s2s_secure_auth`` needs.

Keys are EC P-256: generating them takes microseconds, RSA keys take tens of milliseconds.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

#: id-on-xmppAddr (RFC 6120 §13.7.1.4): the XmppAddr otherName identity.
ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
#: Certificates only have to outlive one test run; the margin absorbs clock skew.
VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Credentials:
    """Where one server's certificate (leaf first, then nothing: the CA is the trust anchor)
    and key are."""

    domain: str
    certificate: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tercet interop tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class CertificateAuthority:
    """A root CA whose certificate is written to ``directory/<label>.pem``."""

    def __init__(self, directory: Path, label: str = "ca") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name(f"Tercet interop {label}")
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{label}.pem"
        self.path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, domain: str, *, names: tuple[str, ...] = (), xmpp_addr: bool = False,
              stem: str | None = None) -> Credentials:
        """A certificate for ``domain`` (DNS-ID, RFC 6125) and any extra DNS ``names``
        (``*.example`` wildcards allowed), usable both as a TLS server certificate and as the
        client certificate an s2s initiator presents. ``xmpp_addr`` adds the domain as an
        XmppAddr identity too. Files: ``<stem or domain>.crt`` and ``.key``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (domain, *names)]
        if xmpp_addr:
            # UTF8String, DER: tag 0x0c, short length (domains are < 128 bytes).
            value = domain.encode()
            sans.append(x509.OtherName(ID_ON_XMPPADDR, bytes([0x0C, len(value)]) + value))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(domain)).issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, key_cert_sign=False,
                crl_sign=False, content_commitment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = stem or domain
        cert_path = self.directory / f"{stem}.crt"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return Credentials(domain, cert_path, key_path)


class PrivatePKI:
    """The CA every peer trusts, and a second one nobody trusts (for invalid chains)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = CertificateAuthority(directory, "ca")
        self._untrusted: CertificateAuthority | None = None

    @property
    def cafile(self) -> Path:
        """The trust anchor to configure in every peer (``[ssl] cafile``)."""
        return self.ca.path

    @property
    def untrusted_cafile(self) -> Path:
        """The CA behind ``untrusted=True`` certificates (for clients that must accept one)."""
        return self._untrusted_ca().path

    def issue(self, domain: str, *, untrusted: bool = False, names: tuple[str, ...] = (),
              xmpp_addr: bool = False) -> Credentials:
        """A certificate for ``domain`` from the trusted CA, or, with ``untrusted``, from a
        CA that no peer trusts (right names, invalid chain)."""
        if not untrusted:
            return self.ca.issue(domain, names=names, xmpp_addr=xmpp_addr)
        return self._untrusted_ca().issue(domain, names=names, xmpp_addr=xmpp_addr,
                                          stem=f"{domain}.untrusted")

    def _untrusted_ca(self) -> CertificateAuthority:
        if self._untrusted is None:
            self._untrusted = CertificateAuthority(self.directory, "untrusted-ca")
        return self._untrusted
