"""Peer certificates of server streams: trust store, chain check, status for a domain.

The status recorded in ``ServerSession.cert_status`` (RFC 6120 §13.7.2, RFC 9525):
``"valid"``, or why not: ``"none"`` (no certificate), ``"expired"`` (outside its validity
period), ``"untrusted"`` (no chain to the trust store), ``"name-mismatch"`` (trusted, but
not for this domain: :mod:`tercet.protocol.certid`).

The trust store is the system's default CA file and directory plus the operator's
``s2s_cafile`` / ``s2s_capath``. Both directions use it, differently:

* outbound, we are the TLS client and verify nothing during the handshake (a failed check
  must leave dialback possible): the chain the server sent is checked here afterwards,
  with ``cryptography.x509.verification``;
* inbound, only ``CERT_OPTIONAL`` makes OpenSSL ask for a client certificate, and OpenSSL
  then fails the handshake when the certificate does not chain to the trust store (Python
  has no verify callback). A certificate that got through is therefore trusted; the name
  and expiry are checked here. Because of that, our outbound side presents its own
  certificate only when our own trust store validates it (:meth:`TrustStore.validates`):
  a self-signed server that presented its certificate would lose the handshake and with
  it dialback.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tercet.protocol.certid import (
    OID_DNS_SRV,
    OID_XMPP_ADDR,
    CertIdentities,
    der_string,
    matches,
)

log = logging.getLogger("tercet.tls")

#: RFC 5280 §4.2.1.9 / RFC 6125: a bound on the chain length we follow.
MAX_CHAIN_DEPTH = 8


def identities(cert: x509.Certificate) -> CertIdentities:
    """The XMPP-relevant identifiers of ``cert`` (RFC 6120 §13.7.1.2)."""
    dns: list[str] = []
    srv: list[str] = []
    xmpp: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError:  # a malformed extension: no identity at all
        return CertIdentities()
    if san is not None:
        dns = list(san.get_values_for_type(x509.DNSName))
        for other in san.get_values_for_type(x509.OtherName):
            text = der_string(other.value)
            if text is None:
                continue
            if other.type_id.dotted_string == OID_XMPP_ADDR:
                xmpp.append(text)
            elif other.type_id.dotted_string == OID_DNS_SRV:
                srv.append(text)
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return CertIdentities(tuple(dns), tuple(srv), tuple(xmpp), tuple(cns))


def _load_pem_file(path: Path, into: list[x509.Certificate]) -> None:
    try:
        data = path.read_bytes()
    except OSError:
        return
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return
    for block in data.split(b"-----END CERTIFICATE-----")[:-1]:
        try:
            with warnings.catch_warnings():
                # Some system anchors have non-positive serials; cryptography warns.
                warnings.simplefilter("ignore")
                cert = x509.load_pem_x509_certificate(block + b"-----END CERTIFICATE-----\n")
        except ValueError:
            continue  # a certificate cryptography will not parse cannot anchor a chain
        into.append(cert)


class TrustStore:
    """The CA certificates peers' chains must lead to."""

    def __init__(self, cafile: str | None = None, capath: str | None = None, *,
                 system: bool = True) -> None:
        self.cafile = cafile or None
        self.capath = capath or None
        self.system = system
        anchors: list[x509.Certificate] = []
        paths = ssl.get_default_verify_paths()
        files = [paths.cafile] if system and paths.cafile else []
        dirs = [paths.capath] if system and paths.capath else []
        files += [self.cafile] if self.cafile else []
        dirs += [self.capath] if self.capath else []
        for name in files:
            _load_pem_file(Path(name), anchors)
        for name in dirs:
            directory = Path(name)
            if directory.is_dir():
                for path in sorted(directory.iterdir()):
                    if path.is_file():
                        _load_pem_file(path, anchors)
        self._store = Store(anchors) if anchors else None

    def load_into(self, ctx: ssl.SSLContext) -> None:
        """The same anchors for OpenSSL (inbound client certificates)."""
        if self.system:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        if self.cafile or self.capath:
            ctx.load_verify_locations(cafile=self.cafile, capath=self.capath)

    def chain_trusted(self, chain: list[x509.Certificate], now: dt.datetime) -> bool:
        """Whether ``chain`` (leaf first) leads to one of our anchors at ``now``."""
        if self._store is None or not chain:
            return False
        # The leaf's own extensions are the peer's business (a server certificate often
        # lacks clientAuth, or has no SAN but an XmppAddr); the CAs keep the Web PKI rules.
        verifier = (PolicyBuilder().store(self._store).time(now)
                    .max_chain_depth(MAX_CHAIN_DEPTH)
                    .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                        ee_policy=ExtensionPolicy.permit_all())
                    .build_client_verifier())
        try:
            verifier.verify(chain[0], chain[1:])
        except (VerificationError, ValueError):
            return False
        return True

    def validates(self, cert_pem: bytes, domain: str, now: dt.datetime) -> bool:
        """Whether our own certificate file chains to our anchors and is not expired
        (whatever names it holds): what a peer with our anchors lets through the handshake."""
        try:
            chain = x509.load_pem_x509_certificates(cert_pem)
        except ValueError:
            return False
        return status(chain, domain, self, now, chain_verified=False) in (
            "valid", "name-mismatch")


def status(chain: list[x509.Certificate], domain: str | None, trust: TrustStore,
           now: dt.datetime, *, chain_verified: bool) -> str:
    """The ``cert_status`` of a peer that sent ``chain`` (leaf first) and claims
    ``domain``; ``chain_verified`` when OpenSSL already checked the chain."""
    if not chain:
        return "none"
    leaf = chain[0]
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        return "expired"
    if not chain_verified and not trust.chain_trusted(chain, now):
        return "untrusted"
    if domain is None or not matches(identities(leaf), domain):
        return "name-mismatch"
    return "valid"


def peer_chain(sslobj: ssl.SSLObject | None) -> list[x509.Certificate]:
    """The certificates the peer sent, leaf first ([] without a certificate)."""
    if sslobj is None:
        return []
    ders: list[bytes] = []
    # COMPAT: SSLObject.get_unverified_chain() is public from Python 3.13; 3.10-3.12 have
    # it on the private _sslobj. Without it we have the leaf alone.
    inner = getattr(sslobj, "_sslobj", None)
    getter = getattr(sslobj, "get_unverified_chain", None) or getattr(
        inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            for cert in getter() or []:
                ders.append(cert if isinstance(cert, bytes) else cert.public_bytes(
                    ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        except (ValueError, ssl.SSLError):
            ders = []
    if not ders:
        leaf = sslobj.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    chain: list[x509.Certificate] = []
    for der in ders[:MAX_CHAIN_DEPTH]:
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            break
    return chain
