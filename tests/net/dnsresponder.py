"""A tiny authoritative DNS responder for tests: UDP on 127.0.0.1, a random port.

    async with DnsResponder({("a.test", "A"): ["127.0.0.2"],
                             ("_xmpp-server._tcp.a.test", "SRV"): ["0 5 5269 a.test."]}) as dns:
        resolver = Resolver([dns.nameserver])   # "127.0.0.1:PORT"

Names absent from the zone answer NXDOMAIN; a name with other types answers NOERROR with
no records. Also usable from a server thread (``start_in``/``stop_in`` a given loop).
"""

from __future__ import annotations

import asyncio
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = dict[tuple[str, str], list[str]]


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, queries: list[tuple[str, str]]) -> None:
        self.zone = zone
        self.queries = queries
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return  # not DNS: ignore, as a real server would
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        records = self.zone.get((name, rdtype))
        if records:
            reply.answer.append(dns.rrset.from_text_list(
                question.name, 60, dns.rdataclass.IN, question.rdtype, records))
        elif not any(n == name for n, _ in self.zone):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


class DnsResponder:
    def __init__(self, zone: Zone | None = None) -> None:
        self.zone: Zone = {(n.lower().rstrip("."), t): v for (n, t), v in (zone or {}).items()}
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, records: list[str]) -> None:
        self.zone[(name.lower().rstrip("."), rdtype)] = records

    async def start(self) -> DnsResponder:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self.zone, self.queries), local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> DnsResponder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()
