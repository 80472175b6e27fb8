"""Client-to-server listeners: STARTTLS ports and XEP-0368 direct TLS ports."""

from __future__ import annotations

from tercet.core.moduleapi import ModuleApi

GLOBAL = True
META = {"summary": "Client connections (RFC 6120)", "stage": "stable",
        "xeps": ["XEP-0368"]}


async def load(module: ModuleApi) -> None:
    interfaces = module.global_option("c2s_interfaces", ["127.0.0.1", "::1"], type=list)
    ports = module.global_option("c2s_ports", [5222], type=list)
    tls_ports = module.global_option("c2s_direct_tls_ports", [5223], type=list)
    if ports:
        bound = await module.listen("c2s", ports, interfaces)
        module.log.info("c2s (STARTTLS) on %s", bound)
    if tls_ports:
        if not module.tls_available:
            module.log.error("no certificate: direct TLS ports %s not opened", tls_ports)
            return
        bound = await module.listen("c2s", tls_ports, interfaces, direct_tls=True)
        module.log.info("c2s (direct TLS) on %s", bound)
