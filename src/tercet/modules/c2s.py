"""Client-to-server listeners: STARTTLS ports and XEP-0368 direct TLS ports."""

from __future__ import annotations

from typing import Any

from tercet.module import ListenSpec, ModuleApi, Option, StreamLimits, valid_interfaces

GLOBAL = True
META = {"summary": "Client connections (RFC 6120)", "stage": "stable",
        "xeps": ["XEP-0368"]}


def _ports(name: str, default: list[int], doc: str, cite: str) -> Option[list[int]]:
    # Port 0 lets the OS choose (used by tests).
    return Option(name, list[int], default, doc, min=0, max=65535, scope="global", cite=cite,
                  restart=True)


OPTIONS: list[Option[Any]] = [
    _ports("c2s_ports", [5222], "Client ports with STARTTLS.", "RFC 6120 §14.7"),
    _ports("c2s_direct_tls_ports", [5223], "Client ports with direct TLS (XEP-0368).", ""),
    Option("c2s_interfaces", list[str], ["127.0.0.1", "::1"],
           'Addresses client ports listen on; "*" = all IPv4, "::" = all IPv6.',
           scope="global", validate=valid_interfaces, restart=True),
    Option("c2s_require_encryption", bool, True, "Refuse clients that do not use TLS.",
           cite="RFC 6120 §5.3.1"),
    Option("c2s_stanza_size_limit", int, 262144, "Largest client stanza in bytes.",
           min=10000, max=16 * 1024 * 1024, scope="global", cite="RFC 6120 §13.12"),
    Option("c2s_timeout", int, 60, "Seconds a client may take to authenticate.",
           min=1, max=3600, scope="global"),
    Option("c2s_max_unauthenticated_per_ip", int, 20,
           "Unauthenticated client connections allowed from one IP address.",
           min=1, max=100000, scope="global"),
]


async def load(module: ModuleApi) -> None:
    interfaces = tuple(module.option("c2s_interfaces"))
    limits = StreamLimits(
        stanza_size=module.option("c2s_stanza_size_limit"),
        auth_timeout=module.option("c2s_timeout"),
        max_unauthenticated_per_ip=module.option("c2s_max_unauthenticated_per_ip"))
    ports = tuple(module.option("c2s_ports"))
    tls_ports = tuple(module.option("c2s_direct_tls_ports"))
    if ports:
        bound = await module.listen(ListenSpec("c2s", ports, interfaces, limits=limits))
        module.log.info("c2s (STARTTLS) on %s", bound)
    if tls_ports:
        if not module.tls_available:
            module.log.error("no certificate: direct TLS ports %s not opened", tls_ports)
            return
        bound = await module.listen(ListenSpec("c2s", tls_ports, interfaces, direct_tls=True,
                                               limits=limits))
        module.log.info("c2s (direct TLS) on %s", bound)
