"""Server-to-server streams (RFC 6120): listeners, STARTTLS both ways, outbound links.

Stanzas for domains not hosted here reach ``route/remote`` (docs/routing.md); they wait in
a bounded queue per destination while a stream is found (RFC 6120 §3.2), secured
(STARTTLS, §5) and authenticated (SASL EXTERNAL with a valid certificate, XEP-0178, in
modules/_s2sauth.py; else the dialback module, XEP-0220, as the trust policy allows), then
leave in order.
A stream without traffic for ``s2s_timeout`` seconds is closed, in either direction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from tercet.module import (
    ClientSession,
    ConnectSpec,
    Element,
    Invalid,
    ListenSpec,
    ModuleApi,
    Option,
    ServerSession,
    ServerStreamEvent,
    StanzaError,
    StanzaEvent,
    StreamError,
    StreamLimits,
    valid_interfaces,
)
from tercet.modules._s2sadmin import S2SAdmin
from tercet.modules._s2sauth import NS_SASL, CertAuth, TrustPolicy
from tercet.modules._s2slib import S2SLinks

GLOBAL = True
META = {"summary": "Server-to-server streams (RFC 6120)", "stage": "alpha",
        "xeps": ["XEP-0368", "XEP-0178"]}
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


def _valid_nameservers(value: list[str]) -> list[Invalid]:
    for text in value:
        host = text[1:].partition("]")[0] if text.startswith("[") else (
            text.partition(":")[0] if text.count(":") == 1 else text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return [Invalid('IP addresses, optionally with a port ("127.0.0.1:5353")',
                            repr(text), "Name the nameserver by its address.")]
    return []


def _ports(name: str, default: list[int], doc: str, cite: str) -> Option[list[int]]:
    return Option(name, list[int], default, doc, min=0, max=65535, scope="global", cite=cite,
                  restart=True)


REQUIRE_ENCRYPTION = Option("s2s_require_encryption", bool, True,
                            "Refuse server streams that do not use TLS.",
                            scope="global", cite="RFC 6120 §5.3.1")
OPTIONS: list[Option[Any]] = [
    _ports("s2s_ports", [5269], "Server-to-server ports with STARTTLS.", "RFC 6120 §14.7"),
    _ports("s2s_direct_tls_ports", [], "Server ports with direct TLS.", "XEP-0368"),
    Option("s2s_interfaces", list[str], ["127.0.0.1", "::1"],
           'Addresses server ports listen on; "*" = all IPv4, "::" = all IPv6.',
           scope="global", validate=valid_interfaces, restart=True),
    Option("s2s_timeout", int, 900,
           "Seconds a server stream (either direction) stays open without traffic.",
           min=1, max=86400, scope="global"),
    Option("s2s_stanza_size_limit", int, 512 * 1024, "Largest stanza from a server, in bytes.",
           min=10000, max=64 * 1024 * 1024, scope="global", cite="RFC 6120 §13.12"),
    REQUIRE_ENCRYPTION,
    Option("s2s_secure_auth", bool, False,
           "Require a valid certificate from every peer (no dialback).",
           scope="global", cite="RFC 6120 §13.7"),
    Option("s2s_cafile", str, "",
           "PEM file of CA certificates trusted for peers' certificates, besides the "
           "system's.", scope="global", cite="RFC 6125"),
    Option("s2s_capath", str, "",
           "Directory of CA certificates (PEM) trusted for peers' certificates, besides "
           "the system's.", scope="global", cite="RFC 6125"),
    Option("s2s_secure_domains", list[str], [],
           "Domains that must present a valid certificate even without s2s_secure_auth.",
           scope="global"),
    Option("s2s_insecure_domains", list[str], [],
           "Domains allowed to authenticate by dialback even with s2s_secure_auth.",
           scope="global"),
    Option("s2s_blocked_domains", list[str], [],
           "Remote domains (and their subdomains) never federated with, in either "
           "direction.", scope="global"),
    Option("dns_nameservers", list[str], [],
           'Nameservers for peer lookups ("ip" or "ip:port"); empty: /etc/resolv.conf.',
           scope="global", validate=_valid_nameservers, cite="RFC 6120 §3.2"),
]


async def load(module: ModuleApi) -> None:
    limits = StreamLimits(stanza_size=module.option("s2s_stanza_size_limit"))
    links = S2SLinks(module, ConnectSpec("s2s", "", "", limits,
                                         tuple(module.option("dns_nameservers"))),
                     float(module.option("s2s_timeout")))
    module.provides("s2s", links)
    tls = StartTLS(module)
    module.hook_global("s2s-features", tls.offer, 100)
    module.hook_global(f"s2s/{NS_TLS}:starttls", tls.starttls)
    module.hook_global("s2s-features-out", tls.features_out, 100)
    module.hook_global(f"s2s/{NS_TLS}:proceed", tls.proceed)
    module.hook_global(f"s2s/{NS_TLS}:failure", tls.failure)
    cert = CertAuth(module, TrustPolicy(module))
    module.hook_global("s2s-features", cert.check_inbound, 200)
    module.hook_global("s2s-features", cert.offer, 50)
    module.hook_global(f"s2s/{NS_SASL}:auth", cert.auth)
    module.hook_global("s2s-features-out", cert.features_out, 50)
    module.hook_global(f"s2s/{NS_SASL}:success", cert.success)
    module.hook_global(f"s2s/{NS_SASL}:failure", cert.failure)
    federation = Federation(module)
    module.hook_global("s2s-features", federation.check_inbound, 300)
    module.hook_global("route/remote", lambda event: route_remote(links, federation, event))
    module.hook_global("s2s-closed", links.closed)
    module.hook_global("s2s-features", _observe(links.opened), 1000)
    module.hook_global("s2s-authenticated", links.adopt)
    S2SAdmin(module, links).register()  # admin/s2s.list, admin/s2s.close
    module.add_timer(min(60.0, links.idle_timeout), links.close_idle)
    interfaces = tuple(module.option("s2s_interfaces"))
    ports = tuple(module.option("s2s_ports"))
    if ports:
        bound = await module.listen(ListenSpec("s2s", ports, interfaces, limits=limits))
        module.log.info("s2s (STARTTLS) on %s", bound)
    tls_ports = tuple(module.option("s2s_direct_tls_ports"))
    if tls_ports and module.tls_available:
        bound = await module.listen(ListenSpec("s2s", tls_ports, interfaces, direct_tls=True,
                                               limits=limits))
        module.log.info("s2s (direct TLS) on %s", bound)


def _observe(seen: Callable[[ServerSession], None]
             ) -> Callable[[ServerStreamEvent], None]:
    """An observer of a stream event: sees the session, never answers."""
    def observer(event: ServerStreamEvent) -> None:
        seen(event.session)
    return observer


def route_remote(links: S2SLinks, federation: Federation, event: StanzaEvent
                 ) -> bool | None:
    """``route/remote``: a stanza for a domain not hosted here."""
    if event.to is None or event.from_ is None:
        return None
    local = event.from_.domain
    if not links.module.is_local_host(local) or local == event.to.domain:
        return None  # we speak only for our own domains (no relaying): bounced
    refusal = federation.refusal(local, event.to.domain)
    if refusal is not None:
        return federation.bounce(event, refusal)
    links.send(local, event.to.domain, event.stanza, event.origin)
    return True


class Federation:
    """Which of our hosts federate (``modules_disabled = ["s2s"]`` in a host table turns
    it off for that host, as in Prosody) and with whom (``s2s_blocked_domains``)."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.blocked = tuple(d.lower().rstrip(".") for d in module.option("s2s_blocked_domains"))

    def is_blocked(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return any(domain == b or domain.endswith("." + b) for b in self.blocked)

    def host_federates(self, host: str) -> bool:
        return "s2s" not in (self.module.option("modules_disabled", host=host) or ())

    def refusal(self, local: str, remote: str) -> str | None:
        """The stanza error condition for a stanza from ``local`` to ``remote``, if any."""
        if not self.host_federates(local):
            return "service-unavailable"  # RFC 6120 §8.3.3.19: no federation here
        if self.is_blocked(remote):
            return "not-allowed"  # §8.3.3.10: refused by local policy
        return None

    def bounce(self, event: StanzaEvent, condition: str) -> bool:
        stanza = event.stanza
        if stanza.get("type") in ("error", "result"):
            return True  # RFC 6120 §8.3.1: errors are never answered
        reply = stanza.error_reply(StanzaError(condition))
        if isinstance(event.origin, ClientSession):
            event.origin.send(reply)  # straight back to the client that sent it
        else:
            self.module.route_detached(event.origin, reply)  # a component, the host
        return True

    def check_inbound(self, event: ServerStreamEvent) -> bool | None:
        """``s2s-features`` (first of all): a stream from a blocked domain, or to a host
        that does not federate, is refused before anything is negotiated."""
        session = event.session
        local, remote = session.local_domain, session.remote_domain
        if local is not None and not self.host_federates(local):
            session.log.info("refusing a stream to %s from %s: federation is off for %s",
                             local, remote, local)
            session.close(StreamError("host-unknown", "no federation for this host"))
            return True
        if remote is not None and self.is_blocked(remote):
            session.log.info("refusing a stream from %s: s2s_blocked_domains", remote)
            session.close(StreamError("policy-violation", "blocked by policy"))
            return True
        return None


class StartTLS:
    """STARTTLS on server streams (RFC 6120 §5), as receiving and as initiating side."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.require = module.option(REQUIRE_ENCRYPTION)

    def offer(self, event: ServerStreamEvent) -> None:
        if not event.session.secure and self.module.tls_available:
            starttls = event.element.tag("starttls", NS_TLS)
            if self.require:
                starttls.tag("required", NS_TLS)  # RFC 6120 §5.3.1
        return None

    async def starttls(self, event: ServerStreamEvent) -> bool:
        session = event.session
        if session.secure or not self.module.tls_available or session.direction != "in":
            session.send_element(Element("failure", NS_TLS))  # RFC 6120 §5.4.2.2
            session.close()
            return True
        session.send_element(Element("proceed", NS_TLS))
        await session.start_tls()
        return True

    def features_out(self, event: ServerStreamEvent) -> bool | None:
        session = event.session
        if session.secure:
            return None
        if event.element.find("starttls", NS_TLS) is not None:
            session.send_element(Element("starttls", NS_TLS))
            return True
        if self.require:
            session.log.info("%s offers no TLS: refused (s2s_require_encryption)",
                             session.remote_domain)
            session.close(StreamError("policy-violation", "encryption required"))
            return True
        return None

    async def proceed(self, event: ServerStreamEvent) -> bool:
        if event.session.direction != "out":
            raise StreamError("unsupported-stanza-type")
        await event.session.start_tls()
        return True

    def failure(self, event: ServerStreamEvent) -> bool:
        event.session.log.info("%s refused STARTTLS", event.session.remote_domain)
        event.session.close()
        return True
