"""TLS server contexts per virtual host, chosen by SNI (RFC 6066 §3), TLS >= 1.2.

One ``ssl.SSLContext`` per certificate. The default context carries an SNI callback that
switches the handshake to the host's own context; after the handshake the context in use
tells us which certificate we served, which is what ``tls-server-end-point`` channel
binding (RFC 5929 §4) must hash.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

log = logging.getLogger("tercet.tls")

ALPN_C2S = "xmpp-client"  # XEP-0368 §3
ALPN_S2S = "xmpp-server"


def end_point_hash(cert_pem: bytes) -> bytes:
    """RFC 5929 §4.1: the certificate hashed with its signature hash (SHA-256 for MD5/SHA-1)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    algo = cert.signature_hash_algorithm
    name = "sha256" if algo is None or isinstance(algo, (hashes.MD5, hashes.SHA1)) else algo.name
    from cryptography.hazmat.primitives.serialization import Encoding
    return hashlib.new(name, cert.public_bytes(Encoding.DER)).digest()


@dataclass
class HostTLS:
    host: str
    context: ssl.SSLContext
    cert_path: Path
    key_path: Path
    end_point: bytes


@dataclass
class TLSManager:
    """Holds the contexts; ``server_context()`` is what listeners and STARTTLS use."""

    min_version: str = "1.2"
    hosts: dict[str, HostTLS] = field(default_factory=dict)
    _by_context: dict[int, HostTLS] = field(default_factory=dict)
    _default: HostTLS | None = None

    def add_host(self, host: str, cert_path: Path, key_path: Path) -> None:
        ctx = self._make_context(cert_path, key_path)
        entry = HostTLS(host, ctx, cert_path, key_path, end_point_hash(cert_path.read_bytes()))
        self.hosts[host] = entry
        self._by_context[id(ctx)] = entry
        if self._default is None:
            self._default = entry
            ctx.sni_callback = self._sni

    def _make_context(self, cert_path: Path, key_path: Path) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if self.min_version == "1.3"
                               else ssl.TLSVersion.TLSv1_2)
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.load_cert_chain(str(cert_path), str(key_path))
        ctx.set_alpn_protocols([ALPN_C2S, ALPN_S2S])
        return ctx

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None,
             _ctx: ssl.SSLContext) -> None:
        if server_name:
            entry = self.hosts.get(server_name.lower().rstrip("."))
            if entry is None:
                entry = self._wildcard(server_name.lower())
            if entry is not None and entry is not self._default:
                sslobj.context = entry.context
        return None

    def _wildcard(self, name: str) -> HostTLS | None:
        parent = name.partition(".")[2]
        return self.hosts.get(parent) if parent else None

    @property
    def available(self) -> bool:
        return self._default is not None

    def server_context(self) -> ssl.SSLContext:
        if self._default is None:
            raise RuntimeError("no TLS certificate is configured")
        return self._default.context

    def channel_bindings(self, sslobj: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, bytes]:
        """The channel-binding data available on an established TLS connection."""
        if sslobj is None:
            return {}
        out: dict[str, bytes] = {}
        entry = self._by_context.get(id(sslobj.context))
        if entry is not None:
            out["tls-server-end-point"] = entry.end_point
        # tls-unique is broken on TLS 1.3 (RFC 9266 §1); offer it only on TLS 1.2.
        if sslobj.version() == "TLSv1.2":
            unique = sslobj.get_channel_binding("tls-unique")
            if unique:
                out["tls-unique"] = unique
        # tls-exporter (RFC 9266) needs an exporter API Python's ssl module does not have.
        return out
