"""The XMPP certificate identity matcher (RFC 6120 §13.7.1.2, RFC 9525 §6.3), sans-I/O."""

from __future__ import annotations

import pytest

from tercet.protocol.certid import (
    CertIdentities,
    a_label,
    der_string,
    dns_id_matches,
    matches,
    srv_id_matches,
    xmpp_addr_matches,
)


@pytest.mark.parametrize(("pattern", "domain", "expected"), [
    ("example.com", "example.com", True),
    ("EXAMPLE.com.", "example.com", True),
    ("example.com", "www.example.com", False),
    ("*.example.com", "chat.example.com", True),
    ("*.example.com", "example.com", False),           # one label, not zero
    ("*.example.com", "a.b.example.com", False),       # one label, not two
    ("f*.example.com", "foo.example.com", False),      # no partial-label wildcards
    ("*o.example.com", "foo.example.com", False),
    ("chat.*.com", "chat.example.com", False),         # only the left-most label
    ("*.*.example.com", "a.b.example.com", False),
    ("*.com", "example.com", False),                   # too broad
    ("*", "example", False),
    ("*.xn--bcher-kva.example", "chat.xn--bcher-kva.example", True),
    ("*.bücher.example", "chat.xn--bcher-kva.example", True),
])
def test_dns_id(pattern: str, domain: str, expected: bool) -> None:
    assert dns_id_matches(pattern, domain) is expected


@pytest.mark.parametrize(("srv_id", "expected"), [
    ("_xmpp-server.example.com", True),
    ("_XMPP-Server.Example.com", True),
    ("_xmpp-client.example.com", False),               # another service
    ("_xmpp-server.other.example", False),
    ("_xmpp-server.*.com", False),                     # no wildcards in SRV-IDs
    ("xmpp-server.example.com", False),
])
def test_srv_id(srv_id: str, expected: bool) -> None:
    assert srv_id_matches(srv_id, "example.com") is expected


@pytest.mark.parametrize(("addr", "expected"), [
    ("example.com", True),
    ("user@example.com", False),                       # a server is a bare domain JID
    ("example.com/res", False),
    ("*.com", False),
])
def test_xmpp_addr(addr: str, expected: bool) -> None:
    assert xmpp_addr_matches(addr, "example.com") is expected


def test_idna_u_labels_and_a_labels_meet() -> None:
    assert a_label("Bücher.Example.") == "xn--bcher-kva.example"
    ids = CertIdentities(xmpp_addrs=("bücher.example",))   # XmppAddr is UTF-8
    assert matches(ids, "xn--bcher-kva.example")
    assert matches(CertIdentities(dns_ids=("xn--bcher-kva.example",)), "bücher.example")
    assert not matches(CertIdentities(dns_ids=("example",)), "exa..mple")


def test_each_identifier_kind_counts_for_s2s() -> None:
    assert matches(CertIdentities(dns_ids=("a.test",)), "a.test")
    assert matches(CertIdentities(srv_ids=("_xmpp-server.a.test",)), "a.test")
    assert matches(CertIdentities(xmpp_addrs=("a.test",)), "a.test")
    assert not matches(CertIdentities(srv_ids=("_xmpp-client.a.test",)), "a.test")


def test_common_name_only_without_subject_alt_names() -> None:
    assert not matches(CertIdentities(dns_ids=("b.test",), common_names=("a.test",)),
                       "a.test")
    assert not matches(CertIdentities(xmpp_addrs=("b.test",), common_names=("a.test",)),
                       "a.test")
    assert matches(CertIdentities(common_names=("a.test",)), "a.test")  # COMPAT
    assert not matches(CertIdentities(), "a.test")


def test_der_strings() -> None:
    assert der_string(b"\x0c\x06a.test") == "a.test"
    assert der_string(b"\x16\x06a.test") == "a.test"
    long = "x" * 200
    assert der_string(b"\x0c\x81\xc8" + long.encode()) == long
    assert der_string(b"\x04\x06a.test") is None       # an OCTET STRING is no name
    assert der_string(b"\x0c\x07a.test") is None       # length mismatch
    assert der_string(b"\x16\x02\xc3\xbc") is None      # IA5String is ASCII
    assert der_string(b"") is None
