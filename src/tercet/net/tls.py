"""TLS server contexts per virtual host, chosen by SNI (RFC 6066 §3), TLS >= 1.2.

One ``ssl.SSLContext`` per certificate. The default context carries an SNI callback that
switches the handshake to the host's own context; after the handshake the context in use
tells us which certificate we served, which is what ``tls-server-end-point`` channel
binding (RFC 5929 §4) must hash.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tercet.net.certverify import TrustStore

log = logging.getLogger("tercet.tls")

ALPN_C2S = "xmpp-client"  # XEP-0368 §3
ALPN_S2S = "xmpp-server"

#: Distinct (certificate, version, cipher) combinations whose session_info is shared;
#: past it each session gets its own dict (TLS 1.3 has five cipher suites, RFC 8446 §B.4).
MAX_SHARED_INFOS = 64


class TLSConnection(socket.socket):
    """A socket with one TLS connection on it, which shows what ``ssl.SSLObject`` shows
    (``version``, ``cipher``, ``getpeercert``, ``get_channel_binding``,
    ``selected_alpn_protocol``, and ``context``, which an SNI callback sets), over
    OpenSSL's connection object: made with the socket, ``wrap`` starts TLS on it.

    The TLS layer (net/tlslayer.py) makes these rather than ``ssl.SSLSocket``s, whose
    wrapper keeps a dict of eight attributes per connection (~0.4 kB of an idle session).
    OpenSSL's object refers back weakly to its socket and to its owner (the SNI callback
    receives the owner): both are this object, so one weak reference serves both, where
    an owner of its own cost 128 bytes per session."""

    __slots__ = ("_sslobj",)

    def wrap(self, context: ssl.SSLContext, *, server_side: bool,
             server_hostname: str | None = None) -> None:
        """Start TLS on this (non-blocking) socket; the handshake is the caller's."""
        # What SSLSocket and SSLObject do to make theirs (Python 3.11-3.13): the name
        # IDNA-encoded, the socket's own timeout (0: non-blocking) for every call.
        hostname = context._encode_hostname(server_hostname)  # type: ignore[attr-defined]
        self._sslobj: Any = context._wrap_socket(  # type: ignore[attr-defined]
            self, server_side, hostname, owner=self, session=None)

    @property
    def context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = self._sslobj.context
        return context

    @context.setter
    def context(self, context: ssl.SSLContext) -> None:
        self._sslobj.context = context

    @property
    def server_side(self) -> bool:
        return bool(self._sslobj.server_side)

    def version(self) -> str | None:
        version: str | None = self._sslobj.version()
        return version

    def cipher(self) -> tuple[str, str, int] | None:
        cipher: tuple[str, str, int] | None = self._sslobj.cipher()
        return cipher

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._sslobj.getpeercert(binary_form)

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        if cb_type not in ssl.CHANNEL_BINDING_TYPES:
            raise ValueError(f"{cb_type} channel binding type not implemented")
        binding: bytes | None = self._sslobj.get_channel_binding(cb_type)
        return binding

    def selected_alpn_protocol(self) -> str | None:
        protocol: str | None = self._sslobj.selected_alpn_protocol()
        return protocol


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
    #: What ``channel_bindings`` gives on TLS 1.3 with this host's certificate: one dict
    #: for every session (readers copy it), not one per connection.
    bindings: dict[str, bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.bindings = {"tls-server-end-point": self.end_point}


@dataclass
class TLSManager:
    """Holds the contexts; ``server_context()`` is what listeners and STARTTLS use."""

    min_version: str = "1.2"
    hosts: dict[str, HostTLS] = field(default_factory=dict)
    _by_context: dict[int, HostTLS] = field(default_factory=dict)
    _default: HostTLS | None = None
    #: Anchors for peers' certificates on server streams (set by the s2s layer).
    trust: TrustStore | None = None
    # host -> its server context for s2s streams: asks for a client certificate.
    _s2s: dict[str, ssl.SSLContext] = field(default_factory=dict)
    _s2s_requests: bool = False
    # (id of a host's bindings dict, version, cipher) -> the shared session_info dict of
    # that combination, which holds the bindings dict: its id cannot be reused meanwhile.
    _infos: dict[tuple[int, str | None, str | None], dict[str, Any]] = field(
        default_factory=dict)

    def add_host(self, host: str, cert_path: Path, key_path: Path) -> None:
        ctx = self._make_context(cert_path, key_path)
        entry = HostTLS(host, ctx, cert_path, key_path, end_point_hash(cert_path.read_bytes()))
        self.hosts[host] = entry
        self._by_context[id(ctx)] = entry
        if self._default is None:
            self._default = entry
            ctx.sni_callback = self._sni

    def _make_context(self, cert_path: Path, key_path: Path,
                      trust: TrustStore | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if trust is not None:
            # RFC 6120 §13.7.2.1 / XEP-0178: request, not require, a client certificate.
            # OpenSSL fails the handshake on one that does not chain to ``trust``
            # (net/certverify.py explains what that means for dialback).
            ctx.verify_mode = ssl.CERT_OPTIONAL
            trust.load_into(ctx)
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

    def s2s_server_context(self, trust: TrustStore, *,
                           request_certificate: bool) -> ssl.SSLContext:
        """The server context of s2s streams: the host's certificate chosen by SNI and,
        with ``request_certificate``, a request for the peer's certificate, checked
        against ``trust``.

        Python's ssl cannot let a handshake go on past a client certificate that does not
        verify, so requesting one cuts off every peer presenting a self-signed or unknown
        certificate, dialback included. Only a policy that refuses such peers anyway
        (s2s_secure_auth, s2s_secure_domains) asks for it."""
        if self._default is None:
            raise RuntimeError("no TLS certificate is configured")
        wanted = trust if request_certificate else None
        if trust is not self.trust or not self._s2s or self._s2s_requests != request_certificate:
            self.trust = trust
            self._s2s_requests = request_certificate
            self._s2s = {host: self._make_context(entry.cert_path, entry.key_path, wanted)
                         for host, entry in self.hosts.items()}
            self._s2s[self._default.host].sni_callback = self._sni_s2s
        return self._s2s[self._default.host]

    def _sni_s2s(self, sslobj: ssl.SSLObject, server_name: str | None,
                 _ctx: ssl.SSLContext) -> None:
        if server_name:
            entry = self.hosts.get(server_name.lower().rstrip(".")) or self._wildcard(
                server_name.lower())
            if entry is not None and entry is not self._default:
                sslobj.context = self._s2s[entry.host]
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

    def channel_bindings(self, sslobj: TLSConnection | ssl.SSLObject | None) -> dict[str, bytes]:
        """The channel-binding data available on an established TLS connection.

        Read-only: on TLS 1.3 every session of a host shares the same dict (it is kept
        for each session's lifetime; readers copy it, as SASL does)."""
        if sslobj is None:
            return {}
        entry = self._by_context.get(id(sslobj.context))
        # tls-unique is broken on TLS 1.3 (RFC 9266 §1); offer it only on TLS 1.2.
        if sslobj.version() != "TLSv1.2":
            return entry.bindings if entry is not None else {}
        out: dict[str, bytes] = {}
        if entry is not None:
            out["tls-server-end-point"] = entry.end_point
        unique = sslobj.get_channel_binding("tls-unique")
        if unique:
            out["tls-unique"] = unique
        # tls-exporter (RFC 9266) needs an exporter API Python's ssl module does not have.
        return out

    def session_info(self, sslobj: TLSConnection | ssl.SSLObject | None) -> dict[str, Any]:
        """``version``, ``cipher`` and ``channel_bindings`` of an established connection,
        for ``session.tls_info``. Read-only: on TLS 1.3 the sessions of one host, version
        and cipher share one dict (a few per server, not one per session)."""
        version = sslobj.version() if sslobj is not None else None
        cipher = sslobj.cipher() if sslobj is not None else None
        name = cipher[0] if cipher else None
        bindings = self.channel_bindings(sslobj)
        entry = self._by_context.get(id(sslobj.context)) if sslobj is not None else None
        if entry is None or bindings is not entry.bindings:
            return {"version": version, "cipher": name, "channel_bindings": bindings}
        key = (id(bindings), version, name)
        info = self._infos.get(key)
        if info is None:
            # Interned: the same few names for every session, not two strings each.
            info = {"version": sys.intern(version) if version else None,
                    "cipher": sys.intern(name) if name else None,
                    "channel_bindings": bindings}
            if len(self._infos) < MAX_SHARED_INFOS:
                self._infos[key] = info
        return info
