"""The namespace fixture itself: its DNS responder answers as real resolvers expect (A, SRV,
NODATA, NXDOMAIN, over UDP and TCP, edits picked up), and nothing is left behind."""

from __future__ import annotations

import subprocess
import sys

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest
from netns import DNS_ADDRESS, NETNS_RUN_DIR, Netns

pytestmark = pytest.mark.interop

TIMEOUT = 2.0


def ask(ns: Netns, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return ns.call(lambda: send(query, DNS_ADDRESS, timeout=TIMEOUT))


def test_dns_responder_answers_from_the_zone(ns: Netns) -> None:
    ns.add_host("xmpp.example-a.test", "127.0.0.2")
    ns.add_srv("example-a.test", "xmpp.example-a.test", 5270)

    srv = ask(ns, "_xmpp-server._tcp.example-a.test", "SRV")
    assert srv.rcode() == dns.rcode.NOERROR and srv.flags & dns.flags.AA
    assert [r.to_text() for r in srv.answer[0]] == ["0 5 5270 xmpp.example-a.test."]
    a = ask(ns, "XMPP.Example-A.test", "A", tcp=True)  # names compare case-insensitively
    assert [r.address for r in a.answer[0]] == ["127.0.0.2"]
    assert str(a.answer[0].name) == "XMPP.Example-A.test."

    nodata = ask(ns, "xmpp.example-a.test", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    # RFC 8020: an empty non-terminal exists; unknown names and services do not.
    assert ask(ns, "_tcp.example-a.test", "SRV").rcode() == dns.rcode.NOERROR
    assert ask(ns, "_xmpps-server._tcp.example-a.test", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(ns, "nowhere.test", "A", tcp=True).rcode() == dns.rcode.NXDOMAIN

    ns.zone.remove("xmpp.example-a.test", "A")  # edits apply to the next query
    assert ask(ns, "xmpp.example-a.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_processes_in_the_namespace_use_its_resolver_and_hosts(ns: Netns) -> None:
    ns.add_host("peer.example-b.test", ns.address())
    # The system resolver of a process started with `ip netns exec` reads our files.
    code = ("import socket, dns.resolver; "
            "print(socket.gethostbyname('peer.example-b.test'), "
            "dns.resolver.resolve('peer.example-b.test', 'A')[0].address)")
    process = ns.spawn("resolve", [sys.executable, "-c", code])
    assert process.popen.wait(10) == 0, process.output()
    assert process.output().split() == ["127.0.0.2", "127.0.0.2"]


def test_close_removes_everything(netns_support: None) -> None:
    ns = Netns().create()
    dns_pid = ns.processes[0].pid
    sleeper = ns.spawn("sleeper", ["sleep", "60"])
    ns.close()
    assert not (NETNS_RUN_DIR / ns.name).exists()
    assert not ns.etc.exists() and not ns.workdir.exists()
    assert not sleeper.running()
    for pid in (dns_pid, sleeper.pid):
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
