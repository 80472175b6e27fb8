"""Whether a certificate speaks for an XMPP domain (RFC 6120 §13.7.1.2, RFC 9525, XEP-0178).

Sans-I/O: the caller parses the certificate (``tercet.net.certverify``) and hands over the
identifiers it holds; this file decides. Three kinds count for a server (RFC 6120
§13.7.1.2.1, RFC 9525 §6.3):

* DNS-ID: subjectAltName ``dNSName``; a wildcard only as the whole left-most label, standing
  for exactly one label (``*.example.com`` matches ``chat.example.com``, not
  ``example.com`` nor ``a.b.example.com``; ``f*.example.com`` matches nothing);
* SRV-ID: the ``id-on-dnsSRV`` otherName (RFC 4985), ``_xmpp-server.example.com``, no
  wildcards;
* XmppAddr: the ``id-on-xmppAddr`` otherName (RFC 6120 §13.7.1.4), a bare domain JID.

Names compare as lower-case A-labels (IDNA, RFC 5890). The subject's common name is
never used when the certificate has any of these identifiers (RFC 9525 §6.3 retires it).
"""

from __future__ import annotations

from dataclasses import dataclass

import idna

#: RFC 6120 §13.7.1.2.1 / RFC 4985: the SRV-ID service of server-to-server streams.
SERVICE_S2S = "xmpp-server"
#: Object identifiers of the two otherName forms (RFC 6120 §13.7.1.4, RFC 4985 §2).
OID_XMPP_ADDR = "1.3.6.1.5.5.7.8.5"
OID_DNS_SRV = "1.3.6.1.5.5.7.8.7"
#: Universal tags of the DER strings these otherNames carry.
_UTF8_STRING, _IA5_STRING = 0x0C, 0x16


@dataclass(frozen=True, slots=True)
class CertIdentities:
    """The identifiers of one certificate, as found in it (not yet normalised)."""

    dns_ids: tuple[str, ...] = ()
    srv_ids: tuple[str, ...] = ()
    xmpp_addrs: tuple[str, ...] = ()
    # COMPAT: only for certificates without any of the identifiers above.
    common_names: tuple[str, ...] = ()

    @property
    def has_san(self) -> bool:
        return bool(self.dns_ids or self.srv_ids or self.xmpp_addrs)


def a_label(name: str) -> str | None:
    """``name`` as lower-case A-labels without a trailing dot, or None if it is no valid
    domain name."""
    name = name.strip().rstrip(".").lower()
    if not name or ".." in name:
        return None
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def dns_id_matches(dns_id: str, domain: str) -> bool:
    """RFC 9525 §6.3: ``domain`` (lower-case A-labels) against one DNS-ID."""
    pattern = a_label(dns_id) if "*" not in dns_id else dns_id.strip().rstrip(".").lower()
    if pattern is None:
        return False
    if "*" not in pattern:
        return pattern == domain
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        # Partial-label wildcards (``f*.example``), wildcards past the left-most label and
        # wildcards right under a top-level domain (``*.com``) match nothing.
        return False
    head, _, tail = domain.partition(".")
    return bool(head) and tail == a_label(rest)


def srv_id_matches(srv_id: str, domain: str, service: str = SERVICE_S2S) -> bool:
    """RFC 4985 / RFC 9525 §6.3: ``_service.domain``, compared exactly (no wildcard)."""
    label, _, name = srv_id.strip().partition(".")
    if label.lower() != "_" + service or "*" in name:
        return False
    return a_label(name) == domain


def xmpp_addr_matches(addr: str, domain: str) -> bool:
    """RFC 6120 §13.7.1.4: an XmppAddr naming the bare domain JID."""
    if "@" in addr or "/" in addr or "*" in addr:
        return False
    return a_label(addr) == domain


def matches(ids: CertIdentities, domain: str, service: str = SERVICE_S2S) -> bool:
    """Whether a certificate with identifiers ``ids`` is valid for the XMPP ``domain``."""
    wanted = a_label(domain)
    if wanted is None:
        return False
    if any(srv_id_matches(s, wanted, service) for s in ids.srv_ids):
        return True
    if any(xmpp_addr_matches(a, wanted) for a in ids.xmpp_addrs):
        return True
    if any(dns_id_matches(d, wanted) for d in ids.dns_ids):
        return True
    if not ids.has_san:
        return any(dns_id_matches(cn, wanted) for cn in ids.common_names)
    return False


def der_string(value: bytes) -> str | None:
    """The text of a DER UTF8String or IA5String (the content of an otherName), or None
    if ``value`` is anything else. X.690 §8.1: tag, length (short or long form), bytes."""
    if len(value) < 2 or value[0] not in (_UTF8_STRING, _IA5_STRING):
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(value) < 2 + count:
            return None
        length = int.from_bytes(value[2:2 + count], "big")
        offset = 2 + count
    body = value[offset:]
    if len(body) != length:
        return None
    try:
        return body.decode("utf-8" if value[0] == _UTF8_STRING else "ascii")
    except UnicodeDecodeError:
        return None
