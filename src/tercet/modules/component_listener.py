"""The listener external components (XEP-0114) connect to: ``component_ports``.

Loaded by module ``component`` when a host first needs it, so the port is open only while
some external component is configured. The connections themselves are net/component.py;
each component's host decides its handshake (module ``component``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tercet.module import Invalid, ListenSpec, ModuleApi, Option, StreamLimits, valid_interfaces

GLOBAL = True
META = {"summary": "Listener for external components (XEP-0114)", "stage": "beta",
        "xeps": ["XEP-0114"]}


def _loopback_only(value: list[str]) -> list[Invalid]:
    """Validator: listening addresses, with a warning for any that is not loopback."""
    problems = valid_interfaces(value)
    if problems:
        return problems
    for address in value:
        if address in ("*", "::") or not ipaddress.ip_address(address).is_loopback:
            # XEP-0114 §5: the stream is not encrypted, the handshake only hashed.
            return [Invalid("loopback addresses (component streams are not encrypted)",
                            f'"{address}"', "Keep the default and run components on this "
                            "machine, or reach them over a VPN or SSH tunnel.",
                            severity="warning")]
    return []


PORTS = Option("component_ports", list[int], [5347],
               "Ports external components connect to (port 0: the OS chooses).",
               min=0, max=65535, scope="global", cite="XEP-0114 §3", restart=True)
INTERFACES = Option("component_interfaces", list[str], ["127.0.0.1", "::1"],
                    "Addresses component ports listen on; loopback, as the streams are "
                    "not encrypted.", scope="global", validate=_loopback_only,
                    cite="XEP-0114 §5", restart=True)
STANZA_SIZE = Option("component_stanza_size_limit", int, 262144,
                     "Largest stanza from a component in bytes, counted while parsing.",
                     min=10000, max=16 * 1024 * 1024, scope="global", cite="RFC 6120 §13.12")
OPTIONS: list[Option[Any]] = [PORTS, INTERFACES, STANZA_SIZE]


async def load(module: ModuleApi) -> None:
    ports = tuple(module.option(PORTS))
    if not ports:
        module.log.info("component_ports is empty: external components cannot connect")
        return
    limits = StreamLimits(stanza_size=module.option(STANZA_SIZE))
    spec = ListenSpec("component", ports, tuple(module.option(INTERFACES)), limits=limits)
    bound = await module.listen(spec)
    module.log.info("external components (XEP-0114) on %s", bound)
